//! Loading an output directory for the report: the CSV datasets through
//! the readers of [`crate::output`], and what the per-iteration artifacts
//! tell (names, times, the k6 duration in the scripts).
//!
//! Two layouts are read:
//! - a campaign directory (this program, lb's Python plugin): `results.csv`,
//!   `skipped.csv`, `index.csv`, `metrics/`, `summaries/`, `k6_scripts/`;
//! - the legacy sampler's: one `results-<date>_<time>-<batch>-<duration>.csv`
//!   and `skipped-….csv` per function combination (headers naming only that
//!   combination's functions), index.csv pointing at them, no artifacts.
//!
//! Nothing here draws or judges; problems that do not stop the report
//! (a torn last line, an index entry naming a missing file) become notes.

use std::collections::BTreeSet;
use std::fs;
use std::path::{Path, PathBuf};
use std::time::SystemTime;

use crate::output::index::{read_index, IndexRecord};
use crate::output::records::{read_results, read_skipped, ResultRecord};
use crate::output::table::RESULTS_FILE;
use crate::output::OutputError;
use crate::plan::ConfigKey;

#[derive(Debug, thiserror::Error)]
pub enum DatasetError {
    #[error("{0}: not a directory")]
    NotADirectory(PathBuf),
    #[error(
        "{0} holds no dataset (no results.csv, skipped.csv, index.csv, results-*.csv or skipped-*.csv)"
    )]
    Empty(PathBuf),
    #[error(transparent)]
    Output(#[from] OutputError),
    #[error("cannot list {path}: {source}")]
    List {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
}

/// Which writer's layout the directory has.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Layout {
    /// results.csv / skipped.csv / index.csv (this program, lb's plugin).
    Campaign,
    /// Per-combination results-*.csv files (the legacy sampler).
    Legacy,
}

/// A per-iteration artifact file name, parsed.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct ArtifactName {
    pub config_id: String,
    pub iteration: u32,
    /// `None` when the writer had no repetition (lb's export writes `repNone`).
    pub repetition: Option<u32>,
}

/// What `metrics/`, `summaries/` and `k6_scripts/` hold.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Artifacts {
    pub metrics: Vec<ArtifactName>,
    pub summaries: Vec<ArtifactName>,
    pub scripts: usize,
    /// Earliest and latest modification time of the per-iteration files.
    pub first_modified: Option<SystemTime>,
    pub last_modified: Option<SystemTime>,
    /// k6 durations found in the scripts (`duration: "30s"`).
    pub script_durations: BTreeSet<String>,
}

/// A legacy results file name: `results-2025-12-22_16-55-34-0-30s.csv`.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct LegacyName {
    /// `2025-12-22_16-55-34`
    pub started: String,
    pub batch: u64,
    pub duration: String,
}

impl LegacyName {
    /// Parses `<prefix>-<date>_<time>-<batch>-<duration>.csv`.
    pub(crate) fn parse(file_name: &str, prefix: &str) -> Option<LegacyName> {
        let rest = file_name.strip_prefix(prefix)?.strip_prefix('-')?;
        let rest = rest.strip_suffix(".csv")?;
        // date_time is 19 characters: YYYY-MM-DD_HH-MM-SS
        let started = rest.get(..19)?;
        let valid = started.bytes().enumerate().all(|(i, b)| match i {
            4 | 7 | 13 | 16 => b == b'-',
            10 => b == b'_',
            _ => b.is_ascii_digit(),
        });
        if !valid {
            return None;
        }
        let (batch, duration) = rest.get(19..)?.strip_prefix('-')?.split_once('-')?;
        Some(LegacyName {
            started: started.to_string(),
            batch: batch.parse().ok()?,
            duration: duration.to_string(),
        })
    }
}

/// One results file read.
#[derive(Debug, Clone, PartialEq)]
pub struct ResultsSource {
    /// Name relative to the output directory.
    pub name: String,
    pub rows: usize,
}

/// Everything the report draws from.
#[derive(Debug, Clone, PartialEq)]
pub struct Dataset {
    pub dir: PathBuf,
    pub layout: Layout,
    /// Every function named by a header or the index, sorted.
    pub functions: Vec<String>,
    /// results rows, file by file in campaign order.
    pub rows: Vec<ResultRecord>,
    pub results_files: Vec<ResultsSource>,
    /// skipped rows in file order (duplicates kept).
    pub skipped: Vec<ConfigKey>,
    pub skipped_files: Vec<String>,
    pub index: Vec<IndexRecord>,
    pub has_index: bool,
    pub artifacts: Artifacts,
    /// Legacy file names (start time, duration), in campaign order.
    pub legacy_names: Vec<LegacyName>,
    /// Problems that did not stop the report.
    pub notes: Vec<String>,
}

/// Reads the output directory `dir`.
pub fn load(dir: &Path) -> Result<Dataset, DatasetError> {
    if !dir.is_dir() {
        return Err(DatasetError::NotADirectory(dir.to_path_buf()));
    }
    let names = list_names(dir)?;
    let mut notes = Vec::new();

    let index_path = dir.join("index.csv");
    let has_index = index_path.is_file();
    let index_file = read_index(&index_path)?;
    if let Some(torn) = &index_file.torn {
        notes.push(torn.to_string());
    }

    // Results files: results.csv, then the legacy per-combination files in
    // campaign order (start time, then batch number).
    let mut legacy: Vec<(LegacyName, String)> = names
        .iter()
        .filter_map(|n| LegacyName::parse(n, "results").map(|l| (l, n.clone())))
        .collect();
    legacy.sort();
    let mut results_names: Vec<String> = Vec::new();
    if names.iter().any(|n| n == RESULTS_FILE) {
        results_names.push(RESULTS_FILE.to_string());
    }
    results_names.extend(legacy.iter().map(|(_, n)| n.clone()));
    let mut missing = BTreeSet::new();
    for record in &index_file.records {
        let name = &record.results_file;
        if results_names.contains(name) || missing.contains(name) {
            continue;
        }
        let inside = !name.is_empty()
            && !Path::new(name).is_absolute()
            && !name.split(['/', '\\']).any(|part| part == "..");
        if inside && dir.join(name).is_file() {
            results_names.push(name.clone());
        } else {
            missing.insert(name.clone());
        }
    }
    for name in &missing {
        notes.push(format!(
            "index.csv names the results file {name:?}, which is not in the directory: its rows are not in the report"
        ));
    }

    let mut functions: BTreeSet<String> = BTreeSet::new();
    let mut rows = Vec::new();
    let mut results_files = Vec::new();
    for name in &results_names {
        let Some(file) = read_results(&dir.join(name))? else {
            continue;
        };
        if let Some(torn) = &file.torn {
            notes.push(torn.to_string());
        }
        functions.extend(file.functions.iter().cloned());
        results_files.push(ResultsSource {
            name: name.clone(),
            rows: file.rows.len(),
        });
        rows.extend(file.rows);
    }

    let mut skipped_names: Vec<String> = Vec::new();
    if names.iter().any(|n| n == "skipped.csv") {
        skipped_names.push("skipped.csv".to_string());
    }
    let mut legacy_skipped: Vec<(LegacyName, String)> = names
        .iter()
        .filter_map(|n| LegacyName::parse(n, "skipped").map(|l| (l, n.clone())))
        .collect();
    legacy_skipped.sort();
    skipped_names.extend(legacy_skipped.into_iter().map(|(_, n)| n));
    let mut skipped = Vec::new();
    for name in &skipped_names {
        if let Some(file) = read_skipped(&dir.join(name))? {
            if let Some(torn) = &file.torn {
                notes.push(torn.to_string());
            }
            for key in &file.keys {
                functions.extend(key.functions().iter().cloned());
            }
            skipped.extend(file.keys);
        }
    }
    for record in &index_file.records {
        functions.extend(record.key.functions().iter().cloned());
    }

    if results_files.is_empty() && skipped_names.is_empty() && !has_index {
        return Err(DatasetError::Empty(dir.to_path_buf()));
    }
    let layout = if !legacy.is_empty() && !names.iter().any(|n| n == RESULTS_FILE) {
        Layout::Legacy
    } else {
        Layout::Campaign
    };
    let artifacts = read_artifacts(dir, &mut notes);
    Ok(Dataset {
        dir: dir.to_path_buf(),
        layout,
        functions: functions.into_iter().collect(),
        rows,
        results_files,
        skipped,
        skipped_files: skipped_names,
        index: index_file.records,
        has_index,
        artifacts,
        legacy_names: legacy.into_iter().map(|(l, _)| l).collect(),
        notes,
    })
}

/// File names (not paths) directly in `dir`, sorted.
fn list_names(dir: &Path) -> Result<Vec<String>, DatasetError> {
    let list_err = |source| DatasetError::List {
        path: dir.to_path_buf(),
        source,
    };
    let mut names = Vec::new();
    for entry in fs::read_dir(dir).map_err(list_err)? {
        let entry = entry.map_err(list_err)?;
        if let Some(name) = entry.file_name().to_str() {
            names.push(name.to_string());
        }
    }
    names.sort();
    Ok(names)
}

/// `metrics-<id>-iter<i>-rep<r>.csv` / `summary-<id>-iter<i>-rep<r>.json`.
pub(crate) fn parse_artifact_name(
    file_name: &str,
    prefix: &str,
    ext: &str,
) -> Option<ArtifactName> {
    let rest = file_name
        .strip_prefix(prefix)?
        .strip_prefix('-')?
        .strip_suffix(ext)?;
    let (config_id, rest) = rest.split_once("-iter")?;
    let (iteration, repetition) = rest.split_once("-rep")?;
    if config_id.is_empty() || !config_id.bytes().all(|b| b.is_ascii_hexdigit()) {
        return None;
    }
    Some(ArtifactName {
        config_id: config_id.to_string(),
        iteration: iteration.parse().ok()?,
        repetition: match repetition {
            "None" => None,
            r => Some(r.parse().ok()?),
        },
    })
}

/// `duration: "30s"` in a k6 script this program rendered.
pub(crate) fn script_duration(script: &str) -> Option<String> {
    let at = script.find("duration: \"")? + "duration: \"".len();
    let rest = &script[at..];
    let end = rest.find('"')?;
    let value = &rest[..end];
    let valid = !value.is_empty()
        && value.len() <= 16
        && value
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'.');
    valid.then(|| value.to_string())
}

/// Calls `on_file(name, path)` for each entry of `dir/sub`; a missing
/// directory has none, an unreadable entry becomes a note.
fn for_each_file(
    dir: &Path,
    sub: &str,
    notes: &mut Vec<String>,
    on_file: &mut dyn FnMut(&str, &Path),
) {
    let path = dir.join(sub);
    let Ok(entries) = fs::read_dir(&path) else {
        return;
    };
    for entry in entries {
        match entry {
            Ok(entry) => {
                if let Some(name) = entry.file_name().to_str() {
                    on_file(name, &entry.path());
                }
            }
            Err(e) => notes.push(format!("cannot list {}: {e}", path.display())),
        }
    }
}

/// Lists the artifact directories.
fn read_artifacts(dir: &Path, notes: &mut Vec<String>) -> Artifacts {
    let mut times: Vec<SystemTime> = Vec::new();
    let mut modified = |path: &Path| {
        if let Ok(time) = fs::metadata(path).and_then(|m| m.modified()) {
            times.push(time);
        }
    };
    let mut metrics = Vec::new();
    for_each_file(dir, "metrics", notes, &mut |name, path| {
        if let Some(parsed) = parse_artifact_name(name, "metrics", ".csv") {
            metrics.push(parsed);
            modified(path);
        }
    });
    let mut summaries = Vec::new();
    for_each_file(dir, "summaries", notes, &mut |name, path| {
        if let Some(parsed) = parse_artifact_name(name, "summary", ".json") {
            summaries.push(parsed);
            modified(path);
        }
    });
    let mut scripts = 0;
    let mut script_durations = BTreeSet::new();
    for_each_file(dir, "k6_scripts", notes, &mut |name, path| {
        if name.starts_with("config-") && name.ends_with(".js") {
            scripts += 1;
            // A script is a few kilobytes; a larger file is not one of ours,
            // and anything but a regular file (a FIFO would block) neither.
            let small = fs::symlink_metadata(path).is_ok_and(|m| m.is_file() && m.len() < 1 << 20);
            if let Some(duration) = small
                .then(|| fs::read_to_string(path).ok())
                .flatten()
                .and_then(|text| script_duration(&text))
            {
                script_durations.insert(duration);
            }
        }
    });
    metrics.sort();
    summaries.sort();
    Artifacts {
        metrics,
        summaries,
        scripts,
        first_modified: times.iter().min().copied(),
        last_modified: times.iter().max().copied(),
        script_durations,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn legacy_names() {
        assert_eq!(
            LegacyName::parse("results-2025-12-22_16-55-34-10-30s.csv", "results"),
            Some(LegacyName {
                started: "2025-12-22_16-55-34".into(),
                batch: 10,
                duration: "30s".into()
            })
        );
        for bad in [
            "results.csv",
            "results-2025-12-22-16-55-34-0-30s.csv",
            "results-2025-12-22_16-55-34-x-30s.csv",
            "skipped-2025-12-22_16-55-34-0-30s.csv",
        ] {
            assert_eq!(LegacyName::parse(bad, "results"), None, "{bad}");
        }
        let mut sorted = [
            LegacyName::parse("results-2025-12-22_16-55-34-10-30s.csv", "results"),
            LegacyName::parse("results-2025-12-22_16-55-34-2-30s.csv", "results"),
        ];
        sorted.sort();
        assert_eq!(sorted[0].as_ref().map(|l| l.batch), Some(2));
    }

    #[test]
    fn artifact_names() {
        assert_eq!(
            parse_artifact_name("metrics-a6836d82b30b-iter2-rep1.csv", "metrics", ".csv"),
            Some(ArtifactName {
                config_id: "a6836d82b30b".into(),
                iteration: 2,
                repetition: Some(1)
            })
        );
        assert_eq!(
            parse_artifact_name(
                "summary-a6836d82b30b-iter1-repNone.json",
                "summary",
                ".json"
            )
            .map(|a| a.repetition),
            Some(None)
        );
        assert_eq!(parse_artifact_name(".tmp-abc", "metrics", ".csv"), None);
    }

    #[test]
    fn durations_from_scripts() {
        assert_eq!(
            script_duration("  duration: \"30s\",\n").as_deref(),
            Some("30s")
        );
        assert_eq!(script_duration("duration: \"<x>\""), None);
        assert_eq!(script_duration("no duration"), None);
    }
}
