//! The functions the gateway serves: their names and how much work one call
//! costs. Owns parsing of the `--functions` spec and of the JSON functions
//! file; it does no I/O beyond reading that file in [`load_file`].

use std::path::Path;

use serde::Deserialize;

/// One function the gateway serves.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FunctionSpec {
    /// OpenFaaS-style name: lowercase letters, digits, `-` and `.`.
    pub name: String,
    /// CPU time burned by one call (or time waited, with `wait`), in
    /// milliseconds.
    pub work_ms: u64,
    /// Calls worked on at once; further calls wait in the queue.
    #[serde(default = "default_workers")]
    pub workers: usize,
    /// Calls allowed to wait for a worker; `None` takes the gateway default.
    #[serde(default)]
    pub queue: Option<usize>,
    /// A worker waits `work_ms` instead of burning CPU (an I/O-bound
    /// function): its capacity, `workers × 1000 / work_ms` calls per
    /// second, then does not depend on what else runs on the machine.
    #[serde(default)]
    pub wait: bool,
}

/// Workers per function when the spec names none.
pub const DEFAULT_WORKERS: usize = 2;

fn default_workers() -> usize {
    DEFAULT_WORKERS
}

/// Why a functions spec was refused.
#[derive(Debug, thiserror::Error)]
pub enum SpecError {
    #[error("function entry '{entry}': expected name=work_ms[:workers[:queue[:wait]]]")]
    Shape { entry: String },
    #[error("function entry '{entry}': {field} '{value}' is not a non-negative integer")]
    Number {
        entry: String,
        field: &'static str,
        value: String,
    },
    #[error("function '{name}': {reason}")]
    Invalid { name: String, reason: &'static str },
    #[error("function '{name}' is listed twice")]
    Duplicate { name: String },
    #[error("no functions given")]
    Empty,
    #[error("cannot read functions file {path}: {source}")]
    Read {
        path: String,
        source: std::io::Error,
    },
    #[error(
        "functions file {path} is not a JSON list of {{name, work_ms, workers?, queue?, wait?}}: {source}"
    )]
    Json {
        path: String,
        source: serde_json::Error,
    },
}

/// Parses `name=work_ms[:workers[:queue[:wait]]][,...]` (a last field
/// `wait` makes the work a wait, see [`FunctionSpec::wait`]).
pub fn parse_spec(spec: &str) -> Result<Vec<FunctionSpec>, SpecError> {
    let mut out = Vec::new();
    for entry in spec.split(',').map(str::trim).filter(|e| !e.is_empty()) {
        let (name, rest) = entry.split_once('=').ok_or_else(|| SpecError::Shape {
            entry: entry.to_owned(),
        })?;
        let mut parts = rest.split(':');
        let number = |field: &'static str, value: Option<&str>| -> Result<Option<u64>, SpecError> {
            match value {
                None => Ok(None),
                Some(v) => v
                    .trim()
                    .parse::<u64>()
                    .map(Some)
                    .map_err(|_| SpecError::Number {
                        entry: entry.to_owned(),
                        field,
                        value: v.to_owned(),
                    }),
            }
        };
        let work_ms = number("work_ms", parts.next())?.ok_or_else(|| SpecError::Shape {
            entry: entry.to_owned(),
        })?;
        let workers = number("workers", parts.next())?;
        let queue = number("queue", parts.next())?;
        let wait = match parts.next().map(str::trim) {
            None => false,
            Some("wait") => true,
            Some(_) => {
                return Err(SpecError::Shape {
                    entry: entry.to_owned(),
                })
            }
        };
        if parts.next().is_some() {
            return Err(SpecError::Shape {
                entry: entry.to_owned(),
            });
        }
        out.push(FunctionSpec {
            name: name.trim().to_owned(),
            work_ms,
            workers: workers.map_or(DEFAULT_WORKERS, |w| w as usize),
            queue: queue.map(|q| q as usize),
            wait,
        });
    }
    validate(out)
}

/// Reads a JSON list of function specs.
pub fn load_file(path: &Path) -> Result<Vec<FunctionSpec>, SpecError> {
    let shown = path.display().to_string();
    let text = std::fs::read_to_string(path).map_err(|source| SpecError::Read {
        path: shown.clone(),
        source,
    })?;
    let specs: Vec<FunctionSpec> =
        serde_json::from_str(&text).map_err(|source| SpecError::Json {
            path: shown,
            source,
        })?;
    validate(specs)
}

fn validate(specs: Vec<FunctionSpec>) -> Result<Vec<FunctionSpec>, SpecError> {
    if specs.is_empty() {
        return Err(SpecError::Empty);
    }
    let mut seen = std::collections::BTreeSet::new();
    for spec in &specs {
        if let Some(reason) = name_problem(&spec.name) {
            return Err(SpecError::Invalid {
                name: spec.name.clone(),
                reason,
            });
        }
        if spec.workers == 0 {
            return Err(SpecError::Invalid {
                name: spec.name.clone(),
                reason: "workers must be at least 1",
            });
        }
        if !seen.insert(spec.name.as_str()) {
            return Err(SpecError::Duplicate {
                name: spec.name.clone(),
            });
        }
    }
    Ok(specs)
}

fn name_problem(name: &str) -> Option<&'static str> {
    if name.is_empty() || name.len() > 63 {
        return Some("name must be 1..63 characters");
    }
    if !name
        .bytes()
        .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-' || b == b'.')
    {
        return Some("name may hold only lowercase letters, digits, '-' and '.'");
    }
    let edge_ok = |b: u8| b.is_ascii_lowercase() || b.is_ascii_digit();
    if !edge_ok(name.as_bytes()[0]) || !edge_ok(name.as_bytes()[name.len() - 1]) {
        return Some("name must start and end with a letter or digit");
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_all_three_forms() {
        let specs = parse_spec("figlet=20, env=5:4 ,nodeinfo=100:1:3").unwrap();
        assert_eq!(
            specs,
            vec![
                FunctionSpec {
                    name: "figlet".into(),
                    work_ms: 20,
                    workers: DEFAULT_WORKERS,
                    queue: None,
                    wait: false
                },
                FunctionSpec {
                    name: "env".into(),
                    work_ms: 5,
                    workers: 4,
                    queue: None,
                    wait: false
                },
                FunctionSpec {
                    name: "nodeinfo".into(),
                    work_ms: 100,
                    workers: 1,
                    queue: Some(3),
                    wait: false
                },
            ]
        );
    }

    #[test]
    fn a_last_field_wait_makes_the_work_a_wait() {
        let specs = parse_spec("io=25:1:0:wait").unwrap();
        assert!(specs[0].wait);
        assert_eq!(
            (specs[0].work_ms, specs[0].workers, specs[0].queue),
            (25, 1, Some(0))
        );
        assert!(!parse_spec("cpu=25:1:0").unwrap()[0].wait);
        assert!(parse_spec("io=25:1:0:sleep").is_err());
        assert!(parse_spec("io=25:1:0:wait:x").is_err());
    }

    #[test]
    fn refuses_bad_entries() {
        for bad in [
            "",
            "figlet",
            "figlet=x",
            "figlet=1:0",
            "Fig=1",
            "-a=1",
            "a=1,a=2",
            "a=1:2:3:4",
            "a b=1",
        ] {
            assert!(parse_spec(bad).is_err(), "{bad:?} was accepted");
        }
    }

    #[test]
    fn reads_json_file() {
        let dir = std::env::temp_dir().join(format!("dfaas-gw-spec-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("f.json");
        std::fs::write(
            &path,
            r#"[{"name":"env","work_ms":3},{"name":"figlet","work_ms":7,"workers":3,"queue":9}]"#,
        )
        .unwrap();
        let specs = load_file(&path).unwrap();
        assert_eq!(specs[0].workers, DEFAULT_WORKERS);
        assert_eq!(
            specs[1],
            FunctionSpec {
                name: "figlet".into(),
                work_ms: 7,
                workers: 3,
                queue: Some(9),
                wait: false
            }
        );
        std::fs::write(&path, r#"[{"name":"env","work_ms":3,"extra":1}]"#).unwrap();
        assert!(matches!(load_file(&path), Err(SpecError::Json { .. })));
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
