//! Per-iteration artifacts: k6 summaries, raw metrics and k6 scripts, named
//! as the legacy sampler named them, each written atomically (a temporary
//! file in the same directory, synced, then renamed over the target), so a
//! reader never sees half a file.

use std::fs::{self, File};
use std::io::Write;
use std::path::{Path, PathBuf};

use serde_json::Value;

use super::OutputError;
use crate::config::FunctionName;
use crate::metrics::readings::IterationMetrics;
use crate::plan::ConfigId;

pub(crate) const SUMMARIES_DIR: &str = "summaries";
pub(crate) const METRICS_DIR: &str = "metrics";
pub(crate) const SCRIPTS_DIR: &str = "k6_scripts";

/// `<dir>/summaries/summary-<id>-iter<i>-rep<r>.json`
pub(crate) fn summary_path(dir: &Path, id: &ConfigId, iteration: u32, repetition: u32) -> PathBuf {
    dir.join(SUMMARIES_DIR)
        .join(format!("summary-{id}-iter{iteration}-rep{repetition}.json"))
}

/// `<dir>/metrics/metrics-<id>-iter<i>-rep<r>.csv`
pub(crate) fn metrics_path(dir: &Path, id: &ConfigId, iteration: u32, repetition: u32) -> PathBuf {
    dir.join(METRICS_DIR)
        .join(format!("metrics-{id}-iter{iteration}-rep{repetition}.csv"))
}

/// `<dir>/metrics/window-<id>-iter<i>-rep<r>.json`: the query window of
/// the metrics file of the same iteration. A file of its own, because the
/// metrics CSV keeps the legacy sampler's columns.
pub(crate) fn window_path(dir: &Path, id: &ConfigId, iteration: u32, repetition: u32) -> PathBuf {
    dir.join(METRICS_DIR)
        .join(format!("window-{id}-iter{iteration}-rep{repetition}.json"))
}

pub(crate) fn generators_path(
    dir: &Path,
    id: &ConfigId,
    iteration: u32,
    repetition: u32,
) -> PathBuf {
    dir.join(METRICS_DIR).join(format!(
        "generators-{id}-iter{iteration}-rep{repetition}.json"
    ))
}

/// `<dir>/k6_scripts/config-<id>.js`
pub(crate) fn script_path(dir: &Path, id: &ConfigId) -> PathBuf {
    dir.join(SCRIPTS_DIR).join(format!("config-{id}.js"))
}

/// Writes k6's summary document (pretty-printed, as the legacy sampler
/// did) and returns its path.
pub fn write_summary(
    dir: &Path,
    id: &ConfigId,
    iteration: u32,
    repetition: u32,
    summary: &Value,
) -> Result<PathBuf, OutputError> {
    let path = summary_path(dir, id, iteration, repetition);
    let mut text = serde_json::to_vec_pretty(summary)
        .unwrap_or_else(|_| unreachable!("a Value always serializes"));
    text.push(b'\n');
    write_atomic(&path, &text)?;
    Ok(path)
}

/// Writes one iteration's metrics CSV and returns its path.
pub fn write_metrics(
    dir: &Path,
    id: &ConfigId,
    iteration: u32,
    repetition: u32,
    functions: &[FunctionName],
    metrics: &IterationMetrics,
) -> Result<PathBuf, OutputError> {
    let path = metrics_path(dir, id, iteration, repetition);
    write_atomic(&path, &metrics.csv(functions)?)?;
    Ok(path)
}

/// Writes one iteration's query window (pretty JSON) and returns its path.
pub(crate) fn write_window(
    dir: &Path,
    id: &ConfigId,
    iteration: u32,
    repetition: u32,
    window: &impl serde::Serialize,
) -> Result<PathBuf, OutputError> {
    write_pretty(window_path(dir, id, iteration, repetition), window)
}

/// Writes one iteration's generator figures (pretty JSON) and returns its
/// path.
pub(crate) fn write_generators(
    dir: &Path,
    id: &ConfigId,
    iteration: u32,
    repetition: u32,
    generators: &impl serde::Serialize,
) -> Result<PathBuf, OutputError> {
    write_pretty(generators_path(dir, id, iteration, repetition), generators)
}

fn write_pretty(path: PathBuf, value: &impl serde::Serialize) -> Result<PathBuf, OutputError> {
    let mut text = serde_json::to_vec_pretty(value).map_err(|e| {
        OutputError::io(
            "serialise",
            &path,
            std::io::Error::new(std::io::ErrorKind::InvalidData, e),
        )
    })?;
    text.push(b'\n');
    write_atomic(&path, &text)?;
    Ok(path)
}

/// Writes the k6 script of a configuration and returns its path.
pub fn write_script(dir: &Path, id: &ConfigId, script: &str) -> Result<PathBuf, OutputError> {
    let path = script_path(dir, id);
    write_atomic(&path, script.as_bytes())?;
    Ok(path)
}

/// Removes files written for an iteration whose row could not be written
/// (best effort: a file that cannot be removed is overwritten when the
/// iteration is run again, and no row points at it), then syncs their
/// directories so the removal is as durable as the write was.
pub(crate) fn remove_iteration_files(paths: &[&Path]) {
    for path in paths {
        let _ = fs::remove_file(path);
        if let Some(dir) = path.parent() {
            let _ = File::open(dir).and_then(|d| d.sync_all());
        }
    }
}

/// Replaces `path` with `contents` atomically, creating its directory.
pub fn write_atomic(path: &Path, contents: &[u8]) -> Result<(), OutputError> {
    let dir = match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p,
        _ => Path::new("."),
    };
    fs::create_dir_all(dir).map_err(|e| OutputError::io("create directory", dir, e))?;
    let mut tmp = tempfile::Builder::new()
        .prefix(".tmp-")
        .tempfile_in(dir)
        .map_err(|e| OutputError::io("create a temporary file in", dir, e))?;
    tmp.write_all(contents)
        .and_then(|()| tmp.as_file().sync_data())
        .map_err(|e| OutputError::io("write", tmp.path().to_path_buf(), e))?;
    tmp.persist(path)
        .map_err(|e| OutputError::io("rename a temporary file to", path, e.error))?;
    File::open(dir)
        .and_then(|d| d.sync_all())
        .map_err(|e| OutputError::io("sync directory", dir, e))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn legacy_names() {
        let id = ConfigId::parse("a6836d82b30b").unwrap();
        let dir = Path::new("/out");
        assert_eq!(
            summary_path(dir, &id, 2, 1),
            Path::new("/out/summaries/summary-a6836d82b30b-iter2-rep1.json")
        );
        assert_eq!(
            metrics_path(dir, &id, 3, 2),
            Path::new("/out/metrics/metrics-a6836d82b30b-iter3-rep2.csv")
        );
        assert_eq!(
            window_path(dir, &id, 3, 2),
            Path::new("/out/metrics/window-a6836d82b30b-iter3-rep2.json")
        );
        assert_eq!(
            script_path(dir, &id),
            Path::new("/out/k6_scripts/config-a6836d82b30b.js")
        );
    }
}
