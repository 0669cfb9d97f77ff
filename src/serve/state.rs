//! The state directory and the persisted job configuration.
//!
//! ```text
//! <state-dir>/config.json      the configuration (0600, replaced atomically)
//! <state-dir>/jobs/<job-id>/   one directory per job (see super::jobs)
//! <state-dir>/logs/serve.log   the job log, rotated by size (super::logs)
//! <state-dir>/scripts/         the default scripts directory
//! ```
//!
//! The configuration holds both kinds of job — the dfaas config of a
//! campaign as given, and a suite — and which one `start` runs. It is
//! written whole to a temporary file, synced and renamed over the old one,
//! so a crash leaves the old or the new file, never a mix; it survives a
//! restart. Passwords given inline in the campaign config are kept in the
//! file but never sent back: `GET config` shows [`REDACTED`], and a `PUT`
//! carrying [`REDACTED`] keeps the stored password.

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use super::status::JobKind;
use super::suite::RawSuite;
use crate::output::artifact::write_atomic;

/// What an inline password reads as through the API.
pub(crate) const REDACTED: &str = "(redacted)";

/// The campaign config fields that hold a secret inline.
const SECRET_FIELDS: [&str; 2] = ["openfaas_password", "prometheus_password"];

/// The configuration as stored.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub(crate) struct StoredConfig {
    /// Which job `start` runs.
    pub kind: JobKind,
    /// The dfaas config (as `run` takes it), as given.
    pub campaign: Value,
    pub suite: RawSuite,
}

impl Default for StoredConfig {
    fn default() -> Self {
        StoredConfig {
            kind: JobKind::Campaign,
            campaign: Value::Object(Map::new()),
            suite: RawSuite::default(),
        }
    }
}

impl StoredConfig {
    /// The configuration as the API shows it: inline passwords redacted.
    pub(crate) fn redacted(&self) -> StoredConfig {
        let mut shown = self.clone();
        if let Value::Object(map) = &mut shown.campaign {
            for field in SECRET_FIELDS {
                if let Some(value) = map.get_mut(field) {
                    if !value.is_null() {
                        *value = Value::String(REDACTED.to_string());
                    }
                }
            }
        }
        shown
    }

    /// A new campaign config: a password given as [`REDACTED`] is the
    /// stored one (a client sends back what it was shown). `Err` names a
    /// redacted field with nothing stored behind it.
    pub(crate) fn keep_secrets(&self, mut campaign: Value) -> Result<Value, String> {
        if let Value::Object(map) = &mut campaign {
            for field in SECRET_FIELDS {
                if map.get(field).and_then(Value::as_str) == Some(REDACTED) {
                    match self.campaign.get(field) {
                        Some(stored) => {
                            map.insert(field.to_string(), stored.clone());
                        }
                        None => return Err(field.to_string()),
                    }
                }
            }
        }
        Ok(campaign)
    }
}

/// Why the state directory cannot be used.
#[derive(Debug, thiserror::Error)]
pub(crate) enum StateError {
    #[error("state directory {}: {reason}", dir.display())]
    Dir { dir: PathBuf, reason: String },
    #[error("{}: {reason} (fix or remove the file; `reset` writes the defaults)", path.display())]
    Config { path: PathBuf, reason: String },
}

/// The state directory's paths.
#[derive(Debug, Clone)]
pub(crate) struct StateDir {
    root: PathBuf,
}

impl StateDir {
    /// Creates the directory and its `jobs/` and `logs/` (mode 0700: the
    /// config may hold passwords).
    pub(crate) fn open(root: &Path) -> Result<Self, StateError> {
        let fail = |reason: String| StateError::Dir {
            dir: root.to_path_buf(),
            reason,
        };
        for dir in [root.to_path_buf(), root.join("jobs"), root.join("logs")] {
            create_private_dir(&dir)
                .map_err(|e| fail(format!("cannot create {}: {e}", dir.display())))?;
        }
        let root = root
            .canonicalize()
            .map_err(|e| fail(format!("cannot resolve: {e}")))?;
        Ok(StateDir { root })
    }

    pub(crate) fn root(&self) -> &Path {
        &self.root
    }

    pub(crate) fn config_file(&self) -> PathBuf {
        self.root.join("config.json")
    }

    pub(crate) fn jobs(&self) -> PathBuf {
        self.root.join("jobs")
    }

    pub(crate) fn logs(&self) -> PathBuf {
        self.root.join("logs")
    }

    pub(crate) fn default_scripts(&self) -> PathBuf {
        self.root.join("scripts")
    }

    /// The stored configuration; the defaults when there is none yet.
    pub(crate) fn load_config(&self) -> Result<StoredConfig, StateError> {
        let path = self.config_file();
        let fail = |reason: String| StateError::Config {
            path: path.clone(),
            reason,
        };
        let meta = match std::fs::symlink_metadata(&path) {
            Ok(meta) => meta,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                return Ok(StoredConfig::default())
            }
            Err(e) => return Err(fail(format!("cannot read: {e}"))),
        };
        if !meta.is_file() {
            return Err(fail("not a regular file".into()));
        }
        if meta.len() > MAX_CONFIG_BYTES {
            return Err(fail(format!("larger than {MAX_CONFIG_BYTES} bytes")));
        }
        let text = std::fs::read(&path).map_err(|e| fail(format!("cannot read: {e}")))?;
        serde_json::from_slice(&text).map_err(|e| fail(format!("not a stored configuration: {e}")))
    }

    /// Replaces the stored configuration atomically.
    pub(crate) fn save_config(&self, config: &StoredConfig) -> Result<(), String> {
        let text = serde_json::to_vec_pretty(config).map_err(|e| e.to_string())?;
        write_atomic(&self.config_file(), &text).map_err(|e| e.to_string())
    }
}

/// A stored configuration larger than this is not one.
const MAX_CONFIG_BYTES: u64 = 8 * 1024 * 1024;

fn create_private_dir(dir: &Path) -> std::io::Result<()> {
    use std::os::unix::fs::DirBuilderExt;
    match std::fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(dir)
    {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists && dir.is_dir() => Ok(()),
        Err(e) => Err(e),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn the_config_survives_a_restart_and_defaults_come_first() {
        let dir = tempfile::tempdir().unwrap();
        let state = StateDir::open(&dir.path().join("state")).unwrap();
        assert_eq!(state.load_config().unwrap(), StoredConfig::default());
        let config = StoredConfig {
            kind: JobKind::Suite,
            campaign: json!({"functions": [{"name": "figlet"}]}),
            suite: RawSuite {
                global_user_count: 3,
                ..RawSuite::default()
            },
        };
        state.save_config(&config).unwrap();
        let again = StateDir::open(&dir.path().join("state")).unwrap();
        assert_eq!(again.load_config().unwrap(), config);
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(again.config_file())
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(mode & 0o077, 0, "config.json is private: {mode:o}");
    }

    #[test]
    fn a_damaged_config_is_an_error_naming_the_file() {
        let dir = tempfile::tempdir().unwrap();
        let state = StateDir::open(dir.path()).unwrap();
        std::fs::write(state.config_file(), b"{\"kind\": ").unwrap();
        let error = state.load_config().unwrap_err().to_string();
        assert!(error.contains("config.json"), "{error}");
    }

    #[test]
    fn passwords_are_shown_redacted_and_kept_when_sent_back() {
        let stored = StoredConfig {
            campaign: json!({"openfaas_password": "hunter2", "gateway_url": "http://g"}),
            ..StoredConfig::default()
        };
        let shown = stored.redacted();
        assert_eq!(shown.campaign["openfaas_password"], REDACTED);
        assert!(!serde_json::to_string(&shown).unwrap().contains("hunter2"));
        let back = stored.keep_secrets(shown.campaign.clone()).unwrap();
        assert_eq!(back["openfaas_password"], "hunter2");
        let changed = stored
            .keep_secrets(json!({"openfaas_password": "new"}))
            .unwrap();
        assert_eq!(changed["openfaas_password"], "new");
        assert_eq!(
            stored.keep_secrets(json!({"prometheus_password": REDACTED})),
            Err("prometheus_password".to_string())
        );
    }
}
