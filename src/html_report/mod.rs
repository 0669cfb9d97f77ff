//! `lb-dfaas report OUTPUT_DIR`: one self-contained HTML page about a
//! campaign's output directory — per-function charts against the request
//! rate, rate x rate grids per pair of functions (the overload frontier),
//! node CPU/RAM against the total rate, cooldown per iteration, the skipped
//! configurations with their (derived) reasons, and the campaign's facts.
//!
//! Reads what this program, lb's Python plugin and the legacy sampler
//! write ([`dataset`]), through the CSV readers of [`crate::output`]; never
//! writes into the output directory unless `--out` points there (the
//! default `OUTPUT_DIR/report.html` does). The page has no script and no
//! external reference: inline CSS and inline SVG (plotters). What cannot be
//! plotted is listed on the page with the reason.
//!
//! Thresholds come from `--config FILE` when given, else the config
//! defaults (said so on the page): an output directory does not record
//! the config it was run with. The node CPU threshold needs the core count
//! (`--cores N`), which the dataset does not record either.

mod charts;
pub mod dataset;
mod model;
mod page;

use std::path::{Path, PathBuf};

pub use dataset::{load, Dataset, DatasetError};
pub(crate) use model::format_utc;
pub use page::{render, Page};

use crate::config::{Config, Overload};
use crate::output::artifact::write_atomic;
use crate::output::OutputError;

/// Where the overload thresholds came from.
#[derive(Debug, Clone, PartialEq)]
pub enum ThresholdSource {
    /// `--config FILE`.
    Config(PathBuf),
    /// The config defaults.
    Defaults,
}

/// What the report needs besides the dataset.
#[derive(Debug, Clone)]
pub struct ReportSettings {
    pub overload: Overload,
    pub cooldown_max_wait_s: f64,
    pub source: ThresholdSource,
    /// The campaign's config, when given: rate axes, duration, iterations.
    pub config: Option<Config>,
    /// Node cores, for the CPU threshold line.
    pub cores: Option<u32>,
}

impl ReportSettings {
    /// Settings from the campaign's config (`path` is shown on the page).
    pub(crate) fn from_config(config: Config, path: PathBuf, cores: Option<u32>) -> Self {
        ReportSettings {
            overload: config.overload,
            cooldown_max_wait_s: config.cooldown.max_wait.as_secs_f64(),
            source: ThresholdSource::Config(path),
            config: Some(config),
            cores,
        }
    }

    /// Settings from a config's defaults (`defaults` is the config an empty
    /// request validates to).
    pub(crate) fn from_defaults(defaults: &Config, cores: Option<u32>) -> Self {
        ReportSettings {
            overload: defaults.overload,
            cooldown_max_wait_s: defaults.cooldown.max_wait.as_secs_f64(),
            source: ThresholdSource::Defaults,
            config: None,
            cores,
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub(crate) enum ReportError {
    #[error(transparent)]
    Dataset(#[from] DatasetError),
    #[error("cannot write the report: {0}")]
    Write(#[source] OutputError),
}

/// What [`write_report`] did.
#[derive(Debug, Clone, PartialEq)]
pub struct Written {
    pub path: PathBuf,
    pub charts: usize,
    pub not_plotted: Vec<String>,
}

/// The default report path: `OUTPUT_DIR/report.html`.
pub(crate) fn default_out(output_dir: &Path) -> PathBuf {
    output_dir.join("report.html")
}

/// Loads `output_dir`, renders the page and writes it atomically to `out`.
pub(crate) fn write_report(
    output_dir: &Path,
    out: &Path,
    settings: &ReportSettings,
) -> Result<Written, ReportError> {
    let dataset = load(output_dir)?;
    let page = render(&dataset, settings);
    write_atomic(out, page.html.as_bytes()).map_err(ReportError::Write)?;
    // A page is for reading and sharing: world-readable, like a file a
    // browser or an editor would save (the temporary file it was written
    // through is private).
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(out, std::fs::Permissions::from_mode(0o644))
            .map_err(|e| ReportError::Write(OutputError::io("set the permissions of", out, e)))?;
    }
    Ok(Written {
        path: out.to_path_buf(),
        charts: page.charts,
        not_plotted: page.not_plotted,
    })
}
