//! The live progress view of `run`, for a person at a terminal.
//!
//! lb calls the binary with pipes and reads `LB_EVENT` lines on stderr;
//! that protocol is what stderr carries whenever the view is off. A person
//! at a terminal gets, at the bottom of stderr, a view redrawn in place:
//!
//! ```text
//! | [=========>           ] 5/14 configurations, 00:03:12 elapsed, ~00:02:40 left
//!   config 8c1e0b0f3d2a (fast=5, slow=100): iteration 2/3, load (k6)
//!   iterations 11 done, overloaded 1, skipped 2, failed 0
//! ```
//!
//! — configurations done (executed, skipped or failed) out of the plan's,
//! the configuration in flight and its phase (cooldown, load, measuring),
//! the time left: the plan's estimate (k6 time of the iterations still to
//! run), corrected by the wall time the finished iterations really took
//! (cooldown and measuring included). Warnings and errors are printed above
//! the view as they happen, and the run's totals at the end.
//!
//! `run --progress auto|always|never` chooses it ([`ProgressMode`]; `auto`,
//! the default: stderr is a terminal). With the view, `LB_EVENT` lines
//! (and with them k6's own output, `k6_log_stream`) are printed only with
//! `-v`/`--events`, above the view. Without it stderr is byte for byte the
//! protocol (see [`RunDisplay::choose`]).
//!
//! [`TerminalProgress`] is an [`Observer`]: [`Tally`] folds progress
//! values into counts and phases (pure; tested on hand-built values) and an
//! indicatif bar draws it. Everything else written to stderr while the
//! view is up — logs, `LB_EVENT` lines — goes through [`write_stderr`] (and
//! [`StderrAboveView`] for the logs), which prints above the view instead
//! of through it. This module must not write to stdout, and writes nothing
//! at all when the view is off.

use std::borrow::Cow;
use std::fmt::Write as _;
use std::io::Write as _;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use indicatif::{ProgressBar, ProgressDrawTarget, ProgressState, ProgressStyle};

use crate::campaign::progress::{Observer, Observers, Progress};
use crate::events::{describe, label, EventKind, LbEvents, Level};
use crate::plan::SkipReason;

/// `run --progress`: when the live view is drawn.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, clap::ValueEnum)]
pub enum ProgressMode {
    /// When stderr is a terminal.
    #[default]
    Auto,
    /// Always, even into a pipe or file.
    Always,
    /// Never: stderr carries the `LB_EVENT` lines, as lb reads them.
    Never,
}

/// What `run` writes on stderr besides its logs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RunDisplay {
    /// The live view.
    pub view: bool,
    /// The `LB_EVENT` lines.
    pub events: bool,
}

impl RunDisplay {
    /// The protocol: `LB_EVENT` lines, no view (stderr not a terminal).
    pub(crate) const PROTOCOL: RunDisplay = RunDisplay {
        view: false,
        events: true,
    };

    /// The display for `--progress mode`, `--events` and whether stderr is
    /// a terminal. Without the view the events are always written: the
    /// protocol does not depend on the flags.
    pub(crate) fn choose(mode: ProgressMode, events: bool, stderr_is_terminal: bool) -> RunDisplay {
        let view = match mode {
            ProgressMode::Auto => stderr_is_terminal,
            ProgressMode::Always => true,
            ProgressMode::Never => false,
        };
        RunDisplay {
            view,
            events: events || !view,
        }
    }

    /// A run's observers: `lb_events` when the events are written, the
    /// view (drawing from now on, until it is dropped) when it is on.
    pub(crate) fn observers(self, lb_events: LbEvents) -> Observers {
        let mut observers = Observers::default();
        if self.events {
            observers.push(Arc::new(lb_events));
        }
        if self.view {
            observers.push(Arc::new(TerminalProgress::start()));
        }
        observers
    }

    /// The default log filter (without `RUST_LOG`): with the view, the
    /// campaign's warnings are printed by the view, so their copies in the
    /// logs are left out.
    pub(crate) fn log_filter(self) -> &'static str {
        if self.view {
            "info,lb_dfaas::campaign=error"
        } else {
            "info"
        }
    }
}

/// The bar drawn now, if any: [`write_stderr`] prints above it.
static ACTIVE: Mutex<Option<ProgressBar>> = Mutex::new(None);

fn active() -> MutexGuard<'static, Option<ProgressBar>> {
    ACTIVE
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

/// Writes `bytes` to stderr (one write, then a flush), above the view when
/// it is drawn. Without the view: exactly a locked `write_all` and `flush`.
pub(crate) fn write_stderr(bytes: &[u8]) {
    let bar = active().clone().filter(|bar| !bar.is_finished());
    let write = || {
        let mut err = std::io::stderr().lock();
        // Nothing sensible can be done if stderr is gone.
        let _ = err.write_all(bytes);
        let _ = err.flush();
    };
    match bar {
        Some(bar) => bar.suspend(write),
        None => write(),
    }
}

/// The logs' writer ([`tracing_subscriber::fmt::MakeWriter`]): stderr,
/// through [`write_stderr`].
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct StderrAboveView;

impl std::io::Write for StderrAboveView {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        write_stderr(buf);
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl<'a> tracing_subscriber::fmt::MakeWriter<'a> for StderrAboveView {
    type Writer = StderrAboveView;

    fn make_writer(&'a self) -> Self::Writer {
        StderrAboveView
    }
}

/// Three lines: the bar (as wide as the terminal leaves it) and the times,
/// the configuration in flight, the counts. ASCII only (any terminal, any
/// locale), no colours.
const TEMPLATE: &str =
    "{spinner} [{wide_bar}] {done} configurations, {elapsed_precise} elapsed, {left} left\n  {now}\n  {counts}";

/// How often the view is redrawn while nothing happens (elapsed and time
/// left move on).
const TICK: Duration = Duration::from_millis(250);

/// The view: an [`Observer`] drawing a [`Tally`] on stderr.
pub(crate) struct TerminalProgress {
    bar: ProgressBar,
    tally: Arc<Mutex<Tally>>,
}

impl TerminalProgress {
    /// Starts drawing on stderr, whether it is a terminal or not (the
    /// caller decides, see [`RunDisplay::choose`]).
    pub(crate) fn start() -> TerminalProgress {
        let term = console::Term::buffered_stderr();
        let target = ProgressDrawTarget::term_like_with_hz(Box::new(term), 10);
        let tally = Arc::new(Mutex::new(Tally::default()));
        let bar = ProgressBar::with_draw_target(None, target).with_style(style(&tally));
        bar.enable_steady_tick(TICK);
        *active() = Some(bar.clone());
        TerminalProgress { bar, tally }
    }

    fn tally(&self) -> MutexGuard<'_, Tally> {
        lock(&self.tally)
    }
}

fn lock(tally: &Mutex<Tally>) -> MutexGuard<'_, Tally> {
    tally
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

/// The template with its keys reading `tally` at each redraw.
fn style(tally: &Arc<Mutex<Tally>>) -> ProgressStyle {
    let key = |render: fn(&Tally, Instant) -> String| {
        let tally = Arc::clone(tally);
        move |_: &ProgressState, w: &mut dyn std::fmt::Write| {
            let text = render(&lock(&tally), Instant::now());
            let _ = w.write_str(&text);
        }
    };
    ProgressStyle::with_template(TEMPLATE)
        .unwrap_or_else(|_| ProgressStyle::default_bar())
        .progress_chars("=> ")
        .tick_chars("|/-\\ ")
        .with_key("done", key(|t, _| t.done_text()))
        .with_key("left", key(Tally::left_text))
        .with_key("now", key(|t, _| t.now_text()))
        .with_key("counts", key(|t, _| t.counts_text()))
}

impl Observer for TerminalProgress {
    fn observe(&self, progress: &Progress<'_>) {
        let (done, total) = {
            let mut tally = self.tally();
            tally.apply(progress, Instant::now());
            (tally.done, tally.configurations)
        };
        if let Some(total) = total {
            self.bar
                .set_length(u64::try_from(total).unwrap_or(u64::MAX));
        }
        self.bar
            .set_position(u64::try_from(done).unwrap_or(u64::MAX));
        if let Some(line) = above_line(progress) {
            self.bar.println(line);
        }
        if let Progress::RunFinished(_) = progress {
            self.bar.finish();
        }
    }
}

impl Drop for TerminalProgress {
    /// A run that ends before its end (a start-up failure) takes the view
    /// away; a finished one leaves its last state on screen.
    fn drop(&mut self) {
        let mut active = active();
        if !self.bar.is_finished() {
            self.bar.finish_and_clear();
        }
        *active = None;
    }
}

/// The line printed above the view for a progress value: warnings and
/// errors (in the words of the `LB_EVENT` messages), the run's settings and
/// totals.
pub(crate) fn above_line(progress: &Progress<'_>) -> Option<String> {
    let lines: Vec<String> = describe(progress, false)
        .into_iter()
        .filter_map(|(kind, level, message)| match (level, kind) {
            (Level::Error, _) => Some(format!("error: {message}")),
            (Level::Warning, _) => Some(format!("warning: {message}")),
            (_, EventKind::RunStarted | EventKind::RunFinished) => Some(message),
            _ => None,
        })
        .collect();
    (!lines.is_empty()).then(|| lines.join("\n"))
}

/// What an iteration is doing.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Phase {
    /// The configuration's script is written; no iteration has begun.
    Preparing,
    Cooldown,
    Load,
    /// Replicas and Prometheus metrics.
    Measuring,
}

impl Phase {
    fn as_str(self) -> &'static str {
        match self {
            Phase::Preparing => "preparing",
            Phase::Cooldown => "cooldown",
            Phase::Load => "load (k6)",
            Phase::Measuring => "measuring",
        }
    }
}

/// The configuration in flight.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Current {
    id: String,
    label: String,
    /// The iteration in flight (0 before the first).
    iteration: u32,
    /// Iterations of it with a row, this run's and a killed run's.
    rows: u32,
    phase: Phase,
}

/// Where the run is when no configuration is in flight.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub(crate) enum Stage {
    #[default]
    Starting,
    Running,
    /// The k6 host is gone or the output failed: the run stops.
    Stopping,
    Finished,
}

/// A run's progress folded into counts: what the view shows.
#[derive(Debug, Clone, Default, PartialEq)]
pub(crate) struct Tally {
    /// The plan's configurations (`None`: not counted yet, or beyond 2^128).
    configurations: Option<u128>,
    already_indexed: u128,
    iterations: u32,
    /// k6's time per iteration.
    duration: Duration,
    /// Configurations executed, skipped or failed.
    done: u128,
    overloaded: u128,
    skipped: u128,
    /// Of `skipped`: already in index.csv (never among the work to do).
    skipped_indexed: u128,
    failed: u128,
    /// Iterations with a row, this run.
    iterations_done: u64,
    current: Option<Current>,
    stage: Stage,
    /// Wall time of this run's finished iterations, cooldown to row (or
    /// failure).
    busy: Duration,
    timed: u32,
    /// When the iteration in flight began (its cooldown).
    iteration_began: Option<Instant>,
}

impl Tally {
    /// Folds in one progress value that happened at `now`.
    pub(crate) fn apply(&mut self, progress: &Progress<'_>, now: Instant) {
        match progress {
            Progress::RunStarted(_) | Progress::Baseline { .. } => {}
            Progress::PlanCounted {
                configurations,
                already_indexed,
                iterations,
                duration,
            } => {
                self.configurations = *configurations;
                self.already_indexed = *already_indexed;
                self.iterations = *iterations;
                self.duration = *duration;
                self.stage = Stage::Running;
            }
            Progress::ConfigStarted {
                id,
                configuration,
                resumed_after,
            } => {
                self.current = Some(Current {
                    id: id.to_string(),
                    label: label(configuration),
                    iteration: 0,
                    rows: *resumed_after,
                    phase: Phase::Preparing,
                });
            }
            Progress::ConfigSkipped { reason, .. } => {
                self.done += 1;
                self.skipped += 1;
                if *reason == SkipReason::AlreadyIndexed {
                    self.skipped_indexed += 1;
                }
            }
            Progress::ConfigFailed { .. } => {
                self.end_iteration(now);
                self.done += 1;
                self.failed += 1;
                self.current = None;
            }
            Progress::ConfigOverloaded { .. } => self.overloaded += 1,
            Progress::ConfigFinished { .. } => {
                self.done += 1;
                self.current = None;
            }
            Progress::CooldownStarted { iteration, .. } => {
                self.iteration_began = Some(now);
                self.set_phase(*iteration, Phase::Cooldown);
            }
            Progress::IterationStarted { iteration, .. } => {
                self.set_phase(*iteration, Phase::Load);
            }
            Progress::LoadFinished { iteration, .. } => {
                self.set_phase(*iteration, Phase::Measuring);
            }
            Progress::IterationFinished { .. } => {
                self.end_iteration(now);
                self.iterations_done += 1;
                if let Some(current) = &mut self.current {
                    current.rows += 1;
                }
            }
            Progress::IterationOverloaded { .. } => {}
            Progress::GeneratorLost { .. } | Progress::OutputFailed(_) => {
                self.iteration_began = None;
                self.current = None;
                self.stage = Stage::Stopping;
            }
            Progress::Warning(_)
            | Progress::Note(_)
            | Progress::K6Line(_)
            | Progress::GeneratorSaturated { .. } => {}
            Progress::RunFinished(_) => {
                self.iteration_began = None;
                self.current = None;
                self.stage = Stage::Finished;
            }
        }
    }

    fn set_phase(&mut self, iteration: u32, phase: Phase) {
        if let Some(current) = &mut self.current {
            current.iteration = iteration;
            current.phase = phase;
        }
    }

    fn end_iteration(&mut self, now: Instant) {
        if let Some(began) = self.iteration_began.take() {
            self.busy += now.saturating_duration_since(began);
            self.timed += 1;
        }
    }

    /// Seconds one iteration takes: the measured mean once one has ended,
    /// else the plan's estimate (k6's time alone).
    fn iteration_s(&self) -> f64 {
        if self.timed > 0 {
            self.busy.as_secs_f64() / f64::from(self.timed)
        } else {
            self.duration.as_secs_f64()
        }
    }

    /// The time left at `now`, in whole seconds: the iterations still to
    /// run (configurations to do that are not done, those already indexed
    /// left out, less the rows of the one in flight) at [`Self::iteration_s`]
    /// each, less what the iteration in flight has already taken (at most
    /// one iteration's worth). `None` before the plan is counted. Dominated
    /// configurations are only known when reached, so the run can end
    /// sooner.
    pub(crate) fn seconds_left(&self, now: Instant) -> Option<u64> {
        if self.stage == Stage::Finished {
            return Some(0);
        }
        let total = self.configurations?;
        let to_run = total.saturating_sub(self.already_indexed);
        let behind = self.done.saturating_sub(self.skipped_indexed);
        let configs_left = to_run.saturating_sub(behind);
        let rows_in_flight = self.current.as_ref().map_or(0, |c| u128::from(c.rows));
        let iterations_left = (configs_left.saturating_mul(u128::from(self.iterations)))
            .saturating_sub(rows_in_flight);
        let per = self.iteration_s();
        let in_flight = self
            .iteration_began
            .map_or(0.0, |began| {
                now.saturating_duration_since(began).as_secs_f64()
            })
            .min(per);
        // u128 → f64 rounds a huge plan; it is an estimate.
        let left = (iterations_left as f64 * per - in_flight).max(0.0);
        Some(if left >= u64::MAX as f64 {
            u64::MAX
        } else {
            left.ceil() as u64
        })
    }

    /// `5/14` (`5/?` before the plan is counted).
    pub(crate) fn done_text(&self) -> String {
        match self.configurations {
            Some(total) => format!("{}/{total}", self.done),
            None => format!("{}/?", self.done),
        }
    }

    /// `~00:02:40`, `?` before the plan is counted.
    pub(crate) fn left_text(&self, now: Instant) -> String {
        match self.seconds_left(now) {
            Some(0) if self.stage == Stage::Finished => "00:00:00".to_string(),
            Some(seconds) => format!("~{}", clock(seconds)),
            None => "?".to_string(),
        }
    }

    /// The configuration in flight and its phase, or where the run is.
    pub(crate) fn now_text(&self) -> String {
        if let Some(current) = &self.current {
            let mut text = format!("config {} ({})", current.id, shorten(&current.label, 60));
            if current.iteration > 0 {
                let _ = write!(
                    text,
                    ": iteration {}/{}",
                    current.iteration, self.iterations
                );
            }
            let _ = write!(text, ", {}", current.phase.as_str());
            return text;
        }
        match self.stage {
            Stage::Starting => "starting: k6 host, Prometheus, gateway, idle baseline",
            Stage::Running => "next configuration",
            Stage::Stopping => "stopping",
            Stage::Finished => "finished",
        }
        .to_string()
    }

    /// `iterations 11 done, overloaded 1, skipped 2, failed 0`.
    pub(crate) fn counts_text(&self) -> String {
        format!(
            "iterations {} done, overloaded {}, skipped {}, failed {}",
            self.iterations_done, self.overloaded, self.skipped, self.failed
        )
    }
}

/// `HH:MM:SS`, hours growing past 99.
fn clock(seconds: u64) -> String {
    format!(
        "{:02}:{:02}:{:02}",
        seconds / 3600,
        seconds % 3600 / 60,
        seconds % 60
    )
}

/// `text` cut to `max` characters, `...` marking the cut.
fn shorten(text: &str, max: usize) -> Cow<'_, str> {
    if text.chars().count() <= max {
        Cow::Borrowed(text)
    } else {
        let kept: String = text.chars().take(max.saturating_sub(3)).collect();
        Cow::Owned(format!("{kept}..."))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::campaign::progress::RunTotals;
    use crate::config::FunctionName;
    use crate::metrics::readings::{IterationMetrics, QueryWindow};
    use crate::output::row::NodeCells;
    use crate::output::ResultRow;
    use crate::plan::{ConfigId, Configuration};
    use std::path::Path;

    fn configuration(pairs: &[(&str, u64)]) -> Configuration {
        Configuration::from_pairs(
            pairs
                .iter()
                .map(|(f, r)| (FunctionName::parse(f).unwrap(), *r)),
        )
        .unwrap()
    }

    fn plan(configurations: u128, already_indexed: u128) -> Progress<'static> {
        Progress::PlanCounted {
            configurations: Some(configurations),
            already_indexed,
            iterations: 2,
            duration: Duration::from_secs(10),
        }
    }

    /// An iteration's row and metrics, nothing measured (the tally only
    /// counts them).
    fn row_and_metrics() -> (ResultRow, IterationMetrics) {
        let row = ResultRow {
            functions: Default::default(),
            node: NodeCells {
                cpu_usage_idle: f64::NAN,
                cpu_usage: f64::NAN,
                ram_usage_idle: f64::NAN,
                ram_usage: f64::NAN,
                ram_usage_idle_pct: f64::NAN,
                ram_usage_pct: f64::NAN,
                power_usage_idle: f64::NAN,
                power_usage: f64::NAN,
                rest_seconds: 0,
                overloaded: false,
            },
        };
        let metrics = IterationMetrics {
            cpu_usage_node: f64::NAN,
            ram_usage_node: f64::NAN,
            ram_usage_node_pct: f64::NAN,
            power_usage_node: f64::NAN,
            functions: Default::default(),
            window: Some(QueryWindow {
                time_span: "10s".into(),
                seconds: 10.0,
                k6_seconds: 10.0,
                scrape_interval_seconds: None,
                scrape_interval_source: None,
                end_unix_seconds: 0.0,
            }),
        };
        (row, metrics)
    }

    #[test]
    fn the_display_follows_the_flags_and_the_terminal() {
        use ProgressMode::*;
        let display = |view, events| RunDisplay { view, events };
        for (mode, events, terminal, expected) in [
            // Piped, as lb calls it: the protocol, whatever the flags say.
            (Auto, false, false, RunDisplay::PROTOCOL),
            (Auto, true, false, RunDisplay::PROTOCOL),
            (Never, false, false, RunDisplay::PROTOCOL),
            // At a terminal: the view, the events only when asked for.
            (Auto, false, true, display(true, false)),
            (Auto, true, true, display(true, true)),
            (Never, false, true, RunDisplay::PROTOCOL),
            (Always, false, false, display(true, false)),
            (Always, true, false, display(true, true)),
        ] {
            assert_eq!(
                RunDisplay::choose(mode, events, terminal),
                expected,
                "{mode:?} events={events} terminal={terminal}"
            );
        }
        assert_eq!(RunDisplay::PROTOCOL.log_filter(), "info");
        assert_eq!(
            display(true, true).log_filter(),
            "info,lb_dfaas::campaign=error"
        );
    }

    #[test]
    fn the_template_parses() {
        assert!(ProgressStyle::with_template(TEMPLATE).is_ok());
    }

    #[test]
    fn counts_phases_and_done_configurations() {
        let t0 = Instant::now();
        let at = |s: u64| t0 + Duration::from_secs(s);
        let a = configuration(&[("fast", 5)]);
        let b = configuration(&[("slow", 100)]);
        let c = configuration(&[("slow", 150)]);
        let (ida, idb, idc) = (a.config_id(), b.config_id(), c.config_id());
        let mut tally = Tally::default();
        assert_eq!(tally.done_text(), "0/?");
        assert_eq!(tally.left_text(t0), "?");
        assert_eq!(
            tally.now_text(),
            "starting: k6 host, Prometheus, gateway, idle baseline"
        );

        tally.apply(&plan(4, 1), at(0));
        // The already indexed one is skipped first.
        let indexed = configuration(&[("fast", 0)]);
        tally.apply(
            &Progress::ConfigSkipped {
                id: &indexed.config_id(),
                configuration: &indexed,
                reason: SkipReason::AlreadyIndexed,
            },
            at(0),
        );
        assert_eq!(tally.done_text(), "1/4");
        tally.apply(
            &Progress::ConfigStarted {
                id: &ida,
                configuration: &a,
                resumed_after: 0,
            },
            at(0),
        );
        assert_eq!(
            tally.now_text(),
            format!("config {ida} (fast=5), preparing")
        );
        let iteration = |tally: &mut Tally, id: &ConfigId, i: u32, start: u64| {
            tally.apply(&Progress::CooldownStarted { id, iteration: i }, at(start));
            assert!(tally
                .now_text()
                .ends_with(&format!("iteration {i}/2, cooldown")));
            tally.apply(
                &Progress::IterationStarted {
                    id,
                    iteration: i,
                    iterations: 2,
                    rest_seconds: 3,
                },
                at(start + 3),
            );
            assert!(tally
                .now_text()
                .ends_with(&format!("iteration {i}/2, load (k6)")));
            tally.apply(&Progress::LoadFinished { id, iteration: i }, at(start + 13));
            assert!(tally
                .now_text()
                .ends_with(&format!("iteration {i}/2, measuring")));
        };
        iteration(&mut tally, &ida, 1, 0);
        // One iteration in flight for 13 s: 3 configurations x 2
        // iterations at the plan's 10 s each, less the 10 s (at most one
        // iteration's worth) the one in flight has taken.
        assert_eq!(tally.seconds_left(at(13)), Some(50));
        let (row, metrics) = row_and_metrics();
        let finished = |tally: &mut Tally, id: &ConfigId, config: &Configuration, i, s| {
            tally.apply(
                &Progress::IterationFinished {
                    id,
                    configuration: config,
                    iteration: i,
                    row: &row,
                    metrics: &metrics,
                    summary: &serde_json::Value::Null,
                    started_at: std::time::SystemTime::UNIX_EPOCH,
                    ended_at: std::time::SystemTime::UNIX_EPOCH,
                },
                at(s),
            )
        };
        finished(&mut tally, &ida, &a, 1, 15);
        // Measured: 15 s per iteration; 5 iterations left.
        assert_eq!(tally.seconds_left(at(15)), Some(75));
        iteration(&mut tally, &ida, 2, 15);
        finished(&mut tally, &ida, &a, 2, 30);
        tally.apply(&Progress::ConfigFinished { id: &ida }, at(30));
        assert_eq!(tally.done_text(), "2/4");
        assert_eq!(tally.now_text(), "next configuration");
        assert_eq!(tally.seconds_left(at(30)), Some(60));

        tally.apply(
            &Progress::ConfigStarted {
                id: &idb,
                configuration: &b,
                resumed_after: 1,
            },
            at(30),
        );
        // A killed run left one row: one iteration to go for it.
        assert_eq!(tally.seconds_left(at(30)), Some(45));
        iteration(&mut tally, &idb, 2, 30);
        finished(&mut tally, &idb, &b, 2, 45);
        tally.apply(
            &Progress::IterationOverloaded {
                id: &idb,
                iteration: 2,
            },
            at(45),
        );
        tally.apply(
            &Progress::ConfigOverloaded {
                id: &idb,
                overloaded: 2,
                iterations: 2,
            },
            at(45),
        );
        tally.apply(&Progress::ConfigFinished { id: &idb }, at(45));
        tally.apply(
            &Progress::ConfigSkipped {
                id: &idc,
                configuration: &c,
                reason: SkipReason::DominatedByOverload,
            },
            at(45),
        );
        assert_eq!(tally.done_text(), "4/4");
        assert_eq!(
            tally.counts_text(),
            "iterations 3 done, overloaded 1, skipped 2, failed 0"
        );
        assert_eq!(tally.seconds_left(at(45)), Some(0));
        tally.apply(
            &Progress::RunFinished(RunTotals {
                rows: 3,
                skipped: 2,
                indexed: 2,
                output_dir: Path::new("/out"),
                exit_code: 0,
            }),
            at(46),
        );
        assert_eq!(tally.now_text(), "finished");
        assert_eq!(tally.left_text(at(46)), "00:00:00");
    }

    #[test]
    fn a_failed_configuration_counts_as_done_and_failed() {
        let t0 = Instant::now();
        let a = configuration(&[("fast", 5)]);
        let id = a.config_id();
        let mut tally = Tally::default();
        tally.apply(&plan(2, 0), t0);
        tally.apply(
            &Progress::ConfigStarted {
                id: &id,
                configuration: &a,
                resumed_after: 0,
            },
            t0,
        );
        tally.apply(
            &Progress::CooldownStarted {
                id: &id,
                iteration: 1,
            },
            t0,
        );
        tally.apply(
            &Progress::ConfigFailed {
                id: &id,
                configuration: &a,
                iteration: 1,
                reason: "cooldown timeout",
            },
            t0 + Duration::from_secs(120),
        );
        assert_eq!(tally.done_text(), "1/2");
        assert_eq!(
            tally.counts_text(),
            "iterations 0 done, overloaded 0, skipped 0, failed 1"
        );
        // The failure's 120 s is what an iteration took so far.
        assert_eq!(tally.seconds_left(t0 + Duration::from_secs(120)), Some(240));
        tally.apply(
            &Progress::GeneratorLost {
                id: &id,
                iteration: 1,
                reason: "gone",
            },
            t0,
        );
        assert_eq!(tally.now_text(), "stopping");
    }

    #[test]
    fn warnings_errors_and_totals_go_above_the_view() {
        let a = configuration(&[("fast", 5)]);
        let id = a.config_id();
        assert_eq!(
            above_line(&Progress::Warning("a metric was not measured")).as_deref(),
            Some("warning: a metric was not measured")
        );
        assert_eq!(
            above_line(&Progress::ConfigFailed {
                id: &id,
                configuration: &a,
                iteration: 2,
                reason: "k6 exited 107",
            }),
            Some(format!(
                "error: config {id} failed at iteration 2: k6 exited 107"
            ))
        );
        let finished = above_line(&Progress::RunFinished(RunTotals {
            rows: 3,
            skipped: 1,
            indexed: 2,
            output_dir: Path::new("/out"),
            exit_code: 0,
        }));
        assert_eq!(
            finished.as_deref(),
            Some("dfaas run finished: 3 rows, 1 skipped, 2 indexed; results in /out")
        );
        // Routine progress and k6's lines are the view's, not lines.
        for quiet in [
            Progress::ConfigFinished { id: &id },
            Progress::CooldownStarted {
                id: &id,
                iteration: 1,
            },
            Progress::K6Line("running (0m01.0s)"),
            Progress::Note("prometheus: 1 s scrape"),
        ] {
            assert_eq!(above_line(&quiet), None, "{quiet:?}");
        }
    }

    #[test]
    fn long_labels_are_cut_and_clock_counts_hours() {
        assert_eq!(shorten("abc", 5), "abc");
        assert_eq!(shorten("abcdefgh", 6), "abc...");
        assert_eq!(clock(0), "00:00:00");
        assert_eq!(clock(3 * 3600 + 61), "03:01:01");
        assert_eq!(clock(120 * 3600), "120:00:00");
    }
}
