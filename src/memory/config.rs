//! The `memory` section of the config: lb's `peva_faas` `MemoryConfig`
//! field names and defaults, plus `enabled` and `skip_known`.
//!
//! [`RawMemoryConfig`] is what the user wrote (it is part of the config's
//! JSON Schema); [`validate`] turns it into a [`MemoryConfig`] that later
//! code never re-checks. Paths stay as written (`~` expanded) until
//! [`MemoryConfig::resolve`] puts the relative ones under a base directory:
//! lb's workdir when lb runs the campaign (where `peva_faas` resolves its
//! own relative `db_path`, so both plugins share one default file), else
//! the campaign's output directory. Nothing here touches the disk.

use std::path::{Path, PathBuf};

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use super::schema::SCHEMA_VERSION;
use crate::config::FieldError;

/// `peva_faas`'s default `memory.db_path`.
pub(crate) const DEFAULT_DB_PATH: &str = "benchmark_results/peva_faas/memory/peva_faas.duckdb";

/// The only backend there is.
const BACKEND_DUCKDB: &str = "duckdb";

/// Campaign memory in an embedded DuckDB file (lb's `peva_faas` schema).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(default)]
#[schemars(rename = "MemoryConfig")]
pub struct RawMemoryConfig {
    /// Record every iteration in the memory file; `false` turns the memory off.
    pub enabled: bool,
    /// Memory backend type; only `duckdb`.
    pub backend: String,
    /// DuckDB file. A relative path is under lb's workdir when lb runs the
    /// campaign, else under the output directory; `~` is expanded.
    pub db_path: String,
    /// Parquet directory whose core tables replace the memory's at start.
    pub preload_core_parquet_dir: Option<String>,
    /// Directory the core tables are exported to as Parquet at the end.
    pub export_core_parquet_dir: Option<String>,
    /// Directory the raw k6 summaries are exported to as Parquet at the end.
    pub export_raw_debug_parquet_dir: Option<String>,
    /// Also preload `k6_raw_summaries.parquet` from `preload_core_parquet_dir`.
    pub preload_raw_debug: bool,
    /// Strict schema version label; only `peva_faas_mem_v1`.
    pub schema_version: String,
    /// Skip a configuration whose iterations are all in memory already
    /// (same functions, rates, duration and Prometheus queries).
    pub skip_known: bool,
}

impl Default for RawMemoryConfig {
    fn default() -> Self {
        RawMemoryConfig {
            enabled: true,
            backend: BACKEND_DUCKDB.into(),
            db_path: DEFAULT_DB_PATH.into(),
            preload_core_parquet_dir: None,
            export_core_parquet_dir: None,
            export_raw_debug_parquet_dir: None,
            preload_raw_debug: false,
            schema_version: SCHEMA_VERSION.into(),
            skip_known: true,
        }
    }
}

/// A validated `memory` section. Paths are as configured (`~` expanded),
/// possibly relative: see [`MemoryConfig::resolve`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MemoryConfig {
    pub enabled: bool,
    pub db_path: PathBuf,
    pub preload_core_parquet_dir: Option<PathBuf>,
    pub export_core_parquet_dir: Option<PathBuf>,
    pub export_raw_debug_parquet_dir: Option<PathBuf>,
    pub preload_raw_debug: bool,
    /// Always [`SCHEMA_VERSION`] (anything else is rejected).
    pub schema_version: String,
    pub skip_known: bool,
}

impl Default for MemoryConfig {
    fn default() -> Self {
        MemoryConfig {
            enabled: true,
            db_path: PathBuf::from(DEFAULT_DB_PATH),
            preload_core_parquet_dir: None,
            export_core_parquet_dir: None,
            export_raw_debug_parquet_dir: None,
            preload_raw_debug: false,
            schema_version: SCHEMA_VERSION.into(),
            skip_known: true,
        }
    }
}

/// The memory's paths, all absolute when the base was.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MemoryPaths {
    pub db_path: PathBuf,
    pub preload_core_parquet_dir: Option<PathBuf>,
    pub export_core_parquet_dir: Option<PathBuf>,
    pub export_raw_debug_parquet_dir: Option<PathBuf>,
    pub preload_raw_debug: bool,
    pub schema_version: String,
}

impl MemoryConfig {
    /// Puts the relative paths under `base` (see [`base_dir`]).
    pub fn resolve(&self, base: &Path) -> MemoryPaths {
        let under = |path: &Path| {
            if path.is_absolute() {
                path.to_path_buf()
            } else {
                base.join(path)
            }
        };
        MemoryPaths {
            db_path: under(&self.db_path),
            preload_core_parquet_dir: self.preload_core_parquet_dir.as_deref().map(under),
            export_core_parquet_dir: self.export_core_parquet_dir.as_deref().map(under),
            export_raw_debug_parquet_dir: self.export_raw_debug_parquet_dir.as_deref().map(under),
            preload_raw_debug: self.preload_raw_debug,
            schema_version: self.schema_version.clone(),
        }
    }
}

/// The directory relative memory paths are under: lb's workdir when lb
/// runs the campaign (lb's runner starts plugins there, and `peva_faas`
/// resolves its relative `db_path` against it), else the output directory.
pub(crate) fn base_dir<'a>(lb_workdir: Option<&'a Path>, output_dir: &'a Path) -> &'a Path {
    lb_workdir.unwrap_or(output_dir)
}

/// Checks the section; errors name `memory.<field>`. `home` expands `~`.
pub(crate) fn validate(
    raw: &RawMemoryConfig,
    home: Option<&Path>,
) -> Result<MemoryConfig, Vec<FieldError>> {
    let mut errors = Vec::new();
    if raw.backend != BACKEND_DUCKDB {
        errors.push(FieldError::new(
            "memory.backend",
            format!(
                "{:?} is not supported: the only backend is \"duckdb\"",
                raw.backend
            ),
        ));
    }
    if raw.schema_version != SCHEMA_VERSION {
        errors.push(FieldError::new(
            "memory.schema_version",
            format!(
                "{:?} is not supported: lb-dfaas reads and writes {SCHEMA_VERSION:?} only \
                 (files are never migrated)",
                raw.schema_version
            ),
        ));
    }
    let db_path = path_field("memory.db_path", &raw.db_path, home, &mut errors);
    let mut optional = |field: &str, value: &Option<String>| {
        value
            .as_deref()
            .and_then(|text| path_field(field, text, home, &mut errors))
    };
    let preload = optional(
        "memory.preload_core_parquet_dir",
        &raw.preload_core_parquet_dir,
    );
    let export_core = optional(
        "memory.export_core_parquet_dir",
        &raw.export_core_parquet_dir,
    );
    let export_debug = optional(
        "memory.export_raw_debug_parquet_dir",
        &raw.export_raw_debug_parquet_dir,
    );
    if raw.preload_raw_debug && raw.preload_core_parquet_dir.is_none() {
        errors.push(FieldError::new(
            "memory.preload_raw_debug",
            "needs memory.preload_core_parquet_dir (k6_raw_summaries.parquet is read from there)",
        ));
    }
    match db_path {
        Some(db_path) if errors.is_empty() => Ok(MemoryConfig {
            enabled: raw.enabled,
            db_path,
            preload_core_parquet_dir: preload,
            export_core_parquet_dir: export_core,
            export_raw_debug_parquet_dir: export_debug,
            preload_raw_debug: raw.preload_raw_debug,
            schema_version: raw.schema_version.clone(),
            skip_known: raw.skip_known,
        }),
        _ => Err(errors),
    }
}

/// A path field: not empty, no NUL; `~` expanded.
fn path_field(
    field: &str,
    text: &str,
    home: Option<&Path>,
    errors: &mut Vec<FieldError>,
) -> Option<PathBuf> {
    if text.trim().is_empty() {
        errors.push(FieldError::new(field, "must not be empty"));
        return None;
    }
    if text.contains('\0') {
        errors.push(FieldError::new(field, "must not contain NUL"));
        return None;
    }
    match crate::config::expand_home(text, home) {
        Ok(path) => Some(path),
        Err(reason) => {
            errors.push(FieldError::new(field, reason));
            None
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fields(errors: &[FieldError]) -> Vec<&str> {
        errors.iter().map(|e| e.field.as_str()).collect()
    }

    #[test]
    fn defaults_are_peva_faas_defaults_with_memory_on() {
        let raw: RawMemoryConfig = serde_json::from_str("{}").unwrap();
        assert_eq!(raw, RawMemoryConfig::default());
        let config = validate(&raw, None).unwrap();
        assert_eq!(config, MemoryConfig::default());
        assert!(config.enabled && config.skip_known);
        assert_eq!(config.db_path, Path::new(DEFAULT_DB_PATH));
        assert_eq!(config.schema_version, "peva_faas_mem_v1");
    }

    #[test]
    fn a_peva_faas_memory_section_is_accepted_unchanged() {
        let raw: RawMemoryConfig = serde_json::from_value(serde_json::json!({
            "backend": "duckdb",
            "db_path": "benchmark_results/peva_faas/memory/peva_faas.duckdb",
            "preload_core_parquet_dir": null,
            "export_core_parquet_dir": null,
            "export_raw_debug_parquet_dir": null,
            "preload_raw_debug": false,
            "schema_version": "peva_faas_mem_v1"
        }))
        .unwrap();
        assert_eq!(validate(&raw, None).unwrap(), MemoryConfig::default());
    }

    #[test]
    fn other_backends_and_schema_versions_are_errors_naming_the_field() {
        let raw = RawMemoryConfig {
            backend: "sqlite".into(),
            schema_version: "peva_faas_mem_v2".into(),
            ..RawMemoryConfig::default()
        };
        let errors = validate(&raw, None).unwrap_err();
        assert_eq!(fields(&errors), ["memory.backend", "memory.schema_version"]);
        assert!(errors[1].reason.contains("never migrated"), "{errors:?}");
    }

    #[test]
    fn bad_paths_are_errors_naming_the_field() {
        let raw = RawMemoryConfig {
            db_path: " ".into(),
            export_core_parquet_dir: Some("a\0b".into()),
            preload_raw_debug: true,
            ..RawMemoryConfig::default()
        };
        let errors = validate(&raw, None).unwrap_err();
        assert_eq!(
            fields(&errors),
            [
                "memory.db_path",
                "memory.export_core_parquet_dir",
                "memory.preload_raw_debug"
            ]
        );
        let raw = RawMemoryConfig {
            db_path: "~/m.duckdb".into(),
            ..RawMemoryConfig::default()
        };
        assert_eq!(
            fields(&validate(&raw, None).unwrap_err()),
            ["memory.db_path"]
        );
    }

    #[test]
    fn home_is_expanded_and_relative_paths_go_under_the_base() {
        let raw = RawMemoryConfig {
            db_path: "~/mem/m.duckdb".into(),
            preload_core_parquet_dir: Some("core".into()),
            export_core_parquet_dir: Some("/abs/core".into()),
            ..RawMemoryConfig::default()
        };
        let config = validate(&raw, Some(Path::new("/home/u"))).unwrap();
        let paths = config.resolve(Path::new("/work"));
        assert_eq!(paths.db_path, Path::new("/home/u/mem/m.duckdb"));
        assert_eq!(
            paths.preload_core_parquet_dir.as_deref(),
            Some(Path::new("/work/core"))
        );
        assert_eq!(
            paths.export_core_parquet_dir.as_deref(),
            Some(Path::new("/abs/core"))
        );
        let default = MemoryConfig::default().resolve(Path::new("/lb"));
        assert_eq!(
            default.db_path,
            Path::new("/lb/benchmark_results/peva_faas/memory/peva_faas.duckdb")
        );
    }

    #[test]
    fn the_base_is_lb_s_workdir_when_known_else_the_output_dir() {
        let out = Path::new("/out");
        assert_eq!(base_dir(Some(Path::new("/lb")), out), Path::new("/lb"));
        assert_eq!(base_dir(None, out), out);
    }
}
