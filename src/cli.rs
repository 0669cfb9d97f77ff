//! Command line (clap) and the protocol edge: read the request, call the
//! library, write exactly one document on stdout, return the exit code.
//!
//! Every command but `describe` reads the request envelope (JSON) from
//! stdin, or `--config FILE` instead (YAML or JSON; see
//! [`crate::config::read_request_file`] for the accepted layouts), loads and
//! validates the config the same way, and only then does its work. On
//! invalid input every command exits 2 with the error as JSON on stdout:
//! `{"ok": false, "error": ...}`, or for `run` a whole result document.
//! Logs and warnings go to stderr.
//!
//! `validate` and `plan` also speak to people: `--format text` / `--format
//! table` (the default when stdout is a terminal) prints a summary, and
//! errors one line per field. Piped, as lb calls them, they print the JSON
//! documents, unchanged. `report` writes an HTML page and prints its path.
//! `export` reads lb's result entries instead of a request and writes the
//! dataset files ([`crate::output::export`]).

use std::ffi::OsString;
use std::io::{IsTerminal, Read, Write};
use std::panic::{self, AssertUnwindSafe};
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use clap::{Args, Parser, Subcommand, ValueEnum};
use serde_json::{json, Value};

use crate::config::{self, Config, FunctionName};
use crate::context::RunContext;
use crate::html_report;
use crate::k6::script;
use crate::lb_install;
use crate::memory::{self, inspect, MemoryError};
use crate::plan::{write_plan_json, write_plan_table, ConfigId, Configuration, IdSearch, Plan};
use crate::protocol::{Context, ExitCode as Code, Plugin, Request, RunResult};
use crate::report::{self, CommandError};
use crate::terminal_progress::{ProgressMode, RunDisplay, StderrAboveView};

/// How many configurations `script --config-id` hashes, in plan order,
/// before giving up with a pointer to `--pairs`: about 15 ms in a release
/// build (`cargo bench --bench plan -- find`), whatever the plan's size. A
/// plan of up to this many configurations is searched whole.
pub const CONFIG_ID_SEARCH_LIMIT: u64 = 100_000;

/// Requests larger than this on stdin are refused.
const MAX_STDIN_BYTES: u64 = 64 * 1024 * 1024;

#[derive(Debug, Parser)]
#[command(
    name = "lb-dfaas",
    version,
    about = "DFaaS sampling campaigns for linux-benchmark-lib",
    long_about = "DFaaS sampling campaigns for linux-benchmark-lib.\n\n\
        Commands other than `describe` read a request {\"config\": {...}, \"context\": {...}} \
        as JSON on stdin, or --config FILE instead. A config file holds lb's `common:` and \
        `plugins: {dfaas: ...}` sections (deep-merged, the plugin winning), or a request \
        envelope (`config:` + `context:`), or else is the dfaas config itself."
)]
pub(crate) struct Cli {
    /// Format of the logs written to stderr (filter with RUST_LOG, default `info`).
    #[arg(long, global = true, value_enum, default_value_t = LogFormat::Text)]
    pub log_format: LogFormat,
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub(crate) enum LogFormat {
    Text,
    Json,
}

#[derive(Debug, Subcommand)]
pub(crate) enum Command {
    /// Print the plugin manifest: name, version, config JSON Schema, playbooks, tools.
    Describe,
    /// Check a request's config without touching the network.
    Validate {
        #[command(flatten)]
        input: InputArgs,
        /// `json` (`{"ok": true, ...}` or the errors) or `text` (a summary,
        /// errors one line per field). Default: text when stdout is a
        /// terminal, json otherwise.
        #[arg(long, value_enum, value_name = "FORMAT")]
        format: Option<ValidateFormat>,
    },
    /// Print every configuration the run would execute, in order.
    Plan {
        #[command(flatten)]
        input: InputArgs,
        /// List at most this many configurations (counts stay exact;
        /// `table` lists 20 unless told).
        #[arg(long, value_name = "N")]
        limit: Option<u64>,
        /// `json` (the plan document) or `table` (counts per combination
        /// size, runtime estimate, the first configurations). Default:
        /// table when stdout is a terminal, json otherwise.
        #[arg(long, value_enum, value_name = "FORMAT")]
        format: Option<PlanFormat>,
    },
    /// Print the k6 script `run` would send for one configuration.
    Script {
        #[command(flatten)]
        input: InputArgs,
        #[command(flatten)]
        selector: SelectorArgs,
    },
    /// Execute the campaign and print one result document.
    Run(RunArgs),
    /// Write a self-contained HTML report of an output directory and print
    /// its path.
    Report(ReportArgs),
    /// Write results.csv, skipped.csv, index.csv, summaries/, metrics/ and
    /// k6_scripts/ from the result documents lb collected (lb's entries as
    /// JSON, on stdin or in FILEs); print what was written.
    Export {
        /// The directory to write into (created if missing).
        #[arg(long, value_name = "DIR")]
        out: PathBuf,
        #[arg(value_name = "FILE")]
        inputs: Vec<PathBuf>,
    },
    /// Serve the control API (config, start, stop, status, logs, results),
    /// its WebSocket and the dashboard; runs until SIGTERM or SIGINT.
    Serve(crate::serve::ServeArgs),
    /// Install the lb plugin, this binary and the playbooks into an lb's
    /// `lb_plugins/plugins/_user/`, then check lb resolves `dfaas` and `peva_faas` to it.
    LbInstall {
        /// lb's source tree or site-packages (the directory holding
        /// `lb_plugins/`); default: where `--python` imports lb from.
        #[arg(long, value_name = "DIR")]
        lb_root: Option<PathBuf>,
        /// The Python that runs lb.
        #[arg(long, value_name = "PY", default_value = "python3")]
        python: PathBuf,
    },
    /// Read the campaign memory (DuckDB, opened read-only).
    Memory {
        #[command(subcommand)]
        command: MemoryCommand,
    },
}

/// `lb-dfaas memory ...`: never writes to the memory file.
#[derive(Debug, Subcommand)]
pub(crate) enum MemoryCommand {
    /// Runs, configurations, iterations, overloads and per-function counts (JSON).
    Summary(MemoryFile),
    /// Run one SQL statement on the memory; rows on stdout.
    Query {
        /// The SQL statement, e.g. `SELECT * FROM run_sessions`.
        #[arg(value_name = "SQL")]
        sql: String,
        /// `jsonl`: one JSON object per row; `csv`: a header, then the rows.
        #[arg(long, value_enum, default_value_t = QueryFormat::Jsonl)]
        format: QueryFormat,
        #[command(flatten)]
        file: MemoryFile,
    },
}

#[derive(Debug, Clone, Args)]
pub(crate) struct MemoryFile {
    /// The memory file; default: memory.db_path's default
    /// (`benchmark_results/peva_faas/memory/peva_faas.duckdb`) under the
    /// current directory, where lb's runner keeps it.
    #[arg(long, value_name = "PATH")]
    pub db: Option<PathBuf>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub(crate) enum QueryFormat {
    Jsonl,
    Csv,
}

/// How `validate` prints its verdict.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub(crate) enum ValidateFormat {
    Json,
    Text,
}

/// How `plan` prints the plan.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub(crate) enum PlanFormat {
    Json,
    Table,
}

#[derive(Debug, Clone, Args)]
pub(crate) struct ReportArgs {
    /// The campaign's output directory (results.csv, skipped.csv,
    /// index.csv, metrics/; or the legacy sampler's results-*.csv files).
    #[arg(value_name = "OUTPUT_DIR")]
    pub output_dir: PathBuf,
    /// Where to write the page (default: OUTPUT_DIR/report.html).
    #[arg(long, value_name = "FILE.html")]
    pub out: Option<PathBuf>,
    /// The campaign's config (YAML or JSON, as for the other commands):
    /// overload thresholds, rate ladder, duration. Default: the config
    /// defaults, as the page says.
    #[arg(long, value_name = "FILE")]
    pub config: Option<PathBuf>,
    /// The node's CPU cores, to draw the node CPU threshold (a percentage
    /// of cores x 100; the dataset does not record the core count).
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u32).range(1..))]
    pub cores: Option<u32>,
}

impl Cli {
    /// Fills in the output formats not given on the command line: the
    /// human one when stdout is a terminal, JSON otherwise (the protocol).
    pub(crate) fn default_formats(&mut self, stdout_is_terminal: bool) {
        match &mut self.command {
            Command::Validate { format, .. } if format.is_none() => {
                *format = Some(if stdout_is_terminal {
                    ValidateFormat::Text
                } else {
                    ValidateFormat::Json
                });
            }
            Command::Plan { format, .. } if format.is_none() => {
                *format = Some(if stdout_is_terminal {
                    PlanFormat::Table
                } else {
                    PlanFormat::Json
                });
            }
            _ => {}
        }
    }

    /// Whether errors are printed for a person (text) rather than as JSON.
    fn human_output(&self) -> bool {
        matches!(
            self.command,
            Command::Validate {
                format: Some(ValidateFormat::Text),
                ..
            } | Command::Plan {
                format: Some(PlanFormat::Table),
                ..
            }
        )
    }
}

#[derive(Debug, Clone, Args)]
pub(crate) struct InputArgs {
    /// Read the request from this YAML/JSON file instead of stdin.
    #[arg(long, value_name = "FILE")]
    pub config: Option<PathBuf>,
}

#[derive(Debug, Clone, Args)]
pub(crate) struct RunArgs {
    #[command(flatten)]
    pub input: InputArgs,
    /// The live progress view on stderr: `auto` when stderr is a terminal.
    /// Without it stderr carries the `LB_EVENT` lines lb reads.
    #[arg(long, value_enum, value_name = "WHEN", default_value_t = ProgressMode::Auto)]
    pub progress: ProgressMode,
    /// With the view, also print the `LB_EVENT` lines (and k6's own output
    /// when `k6_log_stream` is on) above it.
    #[arg(short = 'v', long)]
    pub events: bool,
}

impl RunArgs {
    /// What `run` shows on stderr, whose being a terminal is given.
    pub(crate) fn display(&self, stderr_is_terminal: bool) -> RunDisplay {
        RunDisplay::choose(self.progress, self.events, stderr_is_terminal)
    }
}

#[derive(Debug, Clone, Args)]
#[group(required = true, multiple = false)]
pub(crate) struct SelectorArgs {
    /// The configuration's id (12 hex digits, as in the plan).
    #[arg(long, value_name = "ID")]
    pub config_id: Option<String>,
    /// The configuration as function=rate pairs, e.g. `figlet=10,env=20`.
    #[arg(long, value_name = "NAME=RATE,...")]
    pub pairs: Option<String>,
}

/// Which configuration `script` prints.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum ScriptSelector {
    /// A plan configuration id.
    ConfigId(ConfigId),
    /// Function and rate pairs, functions configured, each named once,
    /// in the order given.
    Pairs(Vec<(FunctionName, u64)>),
}

/// A validated request: what `plan`, `script` and `run` work from.
#[derive(Debug, Clone)]
pub(crate) struct Input {
    pub config: Config,
    pub context: Context,
    /// Warnings from loading (already logged to stderr).
    pub warnings: Vec<String>,
}

#[cfg(test)]
/// `plan`: streams the plan document to `out` (a plan may hold millions
/// of configurations; `limit` bounds how many are listed, counts stay exact).
pub(crate) fn plan_cmd(
    input: &Input,
    limit: Option<u64>,
    out: &mut dyn Write,
) -> Result<(), CommandError> {
    plan_cmd_as(input, limit, PlanFormat::Json, out)
}

/// `plan` in the given format.
pub(crate) fn plan_cmd_as(
    input: &Input,
    limit: Option<u64>,
    format: PlanFormat,
    out: &mut dyn Write,
) -> Result<(), CommandError> {
    let plan = Plan::new(&input.config);
    let ctx = RunContext::resolve(&input.context, &input.config)?;
    ctx.inspect_output()?;
    let indexed = crate::output::index::read_index(&ctx.output_dir.join("index.csv"))
        .map_err(|e| ctx.output_error(e))?
        .indexed();
    let written = match format {
        PlanFormat::Json => write_plan_json(out, &input.config, &plan, &indexed, limit),
        PlanFormat::Table => write_plan_table(out, &input.config, &plan, &indexed, limit),
    };
    written
        .map(|_| ())
        .map_err(|e| CommandError::Internal(format!("plan: {e}")))
}

/// `validate --format text`: the verdict and a short summary of the plan.
pub(crate) fn validate_text(input: &Input) -> String {
    let config = &input.config;
    let names: Vec<&str> = config.functions.iter().map(|f| f.name.as_str()).collect();
    let configurations = match Plan::new(config).count() {
        Ok(n) => n.to_string(),
        Err(_) => "more than 2^128".to_string(),
    };
    let mut text = format!(
        "ok: the configuration is valid\n  {} function{} ({}), {} rate{}, {configurations} configurations of {} to {} functions, {} x {} each\n",
        names.len(),
        if names.len() == 1 { "" } else { "s" },
        names.join(", "),
        config.rates.len(),
        if config.rates.len() == 1 { "" } else { "s" },
        config.combinations.min_functions.max(1),
        config.combinations.max_functions.saturating_sub(1),
        config.iterations,
        config.duration_text,
    );
    for warning in &input.warnings {
        text.push_str(&format!("warning: {warning}\n"));
    }
    text
}

/// `report`: writes the page; returns its path.
pub(crate) fn report_cmd(args: &ReportArgs) -> Result<html_report::Written, CommandError> {
    let settings = match &args.config {
        Some(path) => {
            let request = config::read_request_file(path)?;
            let loaded = config::load_request(&request)?;
            for warning in &loaded.warnings {
                tracing::warn!("{warning}");
            }
            html_report::ReportSettings::from_config(loaded.config, path.clone(), args.cores)
        }
        None => {
            let defaults = config::load_request(&Request::default()).map_err(|e| {
                CommandError::Internal(format!("the default config does not validate: {e}"))
            })?;
            html_report::ReportSettings::from_defaults(&defaults.config, args.cores)
        }
    };
    let out = args
        .out
        .clone()
        .unwrap_or_else(|| html_report::default_out(&args.output_dir));
    let written =
        html_report::write_report(&args.output_dir, &out, &settings).map_err(|e| match e {
            html_report::ReportError::Dataset(e) => {
                CommandError::input("OUTPUT_DIR", e.to_string())
            }
            html_report::ReportError::Write(e) => CommandError::input("--out", e.to_string()),
        })?;
    for line in &written.not_plotted {
        tracing::warn!("report: not plotted: {line}");
    }
    Ok(written)
}

/// `script`: the k6 JavaScript printed on stdout.
pub(crate) fn script_cmd(input: &Input, selector: &ScriptSelector) -> Result<String, CommandError> {
    let configuration = match selector {
        ScriptSelector::ConfigId(id) => {
            let plan = Plan::new(&input.config);
            match plan.find(id, CONFIG_ID_SEARCH_LIMIT) {
                IdSearch::Found { configuration, .. } => configuration,
                IdSearch::NotFound { searched } => {
                    let count = plan
                        .count()
                        .map_err(|e| CommandError::Internal(format!("plan: {e}")))?;
                    let reason = if u128::from(searched) >= count {
                        format!("{id} is not a configuration of this plan")
                    } else {
                        format!(
                            "{id} is not among the first {searched} of this plan's {count} configurations, \
                             the most --config-id looks through (ids are hashes: finding one means hashing \
                             the plan in order); give the configuration as --pairs NAME=RATE,... instead \
                             (`plan` lists each id with its pairs)"
                        )
                    };
                    return Err(CommandError::input("--config-id", reason));
                }
            }
        }
        ScriptSelector::Pairs(pairs) => Configuration::from_pairs(pairs.iter().cloned())
            .map_err(|e| CommandError::input("--pairs", e.to_string()))?,
    };
    let pairs: Vec<(FunctionName, u64)> =
        configuration.pairs().map(|(f, r)| (f.clone(), r)).collect();
    Ok(script::for_campaign(&input.config, &pairs))
}

/// `run`: the result document and its exit code.
pub(crate) fn run_cmd(input: &Input, display: RunDisplay) -> (RunResult, Code) {
    let ran = crate::session::run(&input.config, &input.context, display);
    if let Err(error) = &ran {
        tracing::error!("{error}");
    }
    report::run_report(ran)
}

/// The binary's entry point.
pub fn main() -> ExitCode {
    let args: Vec<OsString> = std::env::args_os().collect();
    let mut cli = match Cli::try_parse_from(&args) {
        Ok(cli) => cli,
        Err(error) => return usage_error(error, &args),
    };
    cli.default_formats(std::io::stdout().is_terminal());
    let display = match &cli.command {
        Command::Run(args) => args.display(std::io::stderr().is_terminal()),
        _ => RunDisplay::PROTOCOL,
    };
    init_logging(cli.log_format, display);
    let stdin = std::io::stdin();
    let stdin_is_terminal = stdin.is_terminal();
    let mut stdin = stdin.lock();
    let source: Option<&mut dyn Read> = if stdin_is_terminal {
        None
    } else {
        Some(&mut stdin)
    };
    let outcome = execute(&cli, source);
    ExitCode::from(print(&outcome))
}

/// What a command prints on stdout and its exit code.
#[derive(Debug)]
pub(crate) struct Outcome {
    pub stdout: String,
    pub exit_code: u8,
}

/// Runs a parsed command. `stdin` is `None` when it is a terminal. Never
/// panics outward: a panic becomes an internal error document.
pub(crate) fn execute(cli: &Cli, stdin: Option<&mut dyn Read>) -> Outcome {
    let is_run = matches!(cli.command, Command::Run(_));
    let human = cli.human_output();
    let result = panic::catch_unwind(AssertUnwindSafe(|| dispatch(&cli.command, stdin)));
    let error = match result {
        Ok(Ok(outcome)) => return outcome,
        Ok(Err(error)) => error,
        Err(payload) => {
            let message = payload
                .downcast_ref::<&str>()
                .map(|s| s.to_string())
                .or_else(|| payload.downcast_ref::<String>().cloned())
                .unwrap_or_else(|| "unknown panic".to_string());
            CommandError::Internal(format!("panic: {message}"))
        }
    };
    if human {
        tracing::error!("{error}");
        Outcome {
            stdout: report::failure_text(&error),
            exit_code: error.exit_code().code(),
        }
    } else {
        failure(error, is_run)
    }
}

fn dispatch(command: &Command, stdin: Option<&mut dyn Read>) -> Result<Outcome, CommandError> {
    match command {
        Command::Describe => Ok(document(&manifest(), Code::Ok)),
        Command::Validate { input, format } => {
            let input = load_input(input, stdin)?;
            // Everything `run` would refuse before connecting anywhere.
            RunContext::resolve(&input.context, &input.config)?.inspect_output()?;
            if *format == Some(ValidateFormat::Text) {
                return Ok(Outcome {
                    stdout: validate_text(&input),
                    exit_code: Code::Ok.code(),
                });
            }
            Ok(document(
                &json!({"ok": true, "warnings": input.warnings}),
                Code::Ok,
            ))
        }
        Command::Plan {
            input,
            limit,
            format,
        } => {
            let input = load_input(input, stdin)?;
            let mut out = std::io::BufWriter::new(std::io::stdout().lock());
            plan_cmd_as(&input, *limit, format.unwrap_or(PlanFormat::Json), &mut out)?;
            out.flush()
                .map_err(|e| CommandError::Internal(format!("cannot write to stdout: {e}")))?;
            Ok(Outcome {
                stdout: String::new(),
                exit_code: Code::Ok.code(),
            })
        }
        Command::Script { input, selector } => {
            let input = load_input(input, stdin)?;
            let selector = script_selector(selector, &input.config)?;
            let mut script = script_cmd(&input, &selector)?;
            if !script.ends_with('\n') {
                script.push('\n');
            }
            Ok(Outcome {
                stdout: script,
                exit_code: Code::Ok.code(),
            })
        }
        Command::LbInstall { lb_root, python } => {
            let binary = std::env::current_exe().map_err(|e| {
                CommandError::Internal(format!("cannot find this program's own file: {e}"))
            })?;
            let report = lb_install::install(&lb_install::InstallOptions {
                lb_root: lb_root.clone(),
                python: python.clone(),
                binary,
                libraries: memory::loaded_library().into_iter().collect(),
                ansible_dir: install_root().join("ansible"),
            })?;
            Ok(document(&report, Code::Ok))
        }
        Command::Export { out, inputs } => Ok(document(
            &crate::output::export::export_cmd(out, inputs, stdin)?,
            Code::Ok,
        )),
        Command::Report(args) => {
            let written = report_cmd(args)?;
            Ok(Outcome {
                stdout: format!("{}\n", written.path.display()),
                exit_code: Code::Ok.code(),
            })
        }
        Command::Serve(args) => {
            crate::serve::run(args)?;
            Ok(Outcome {
                stdout: String::new(),
                exit_code: Code::Ok.code(),
            })
        }
        Command::Memory { command } => memory_cmd(command),
        Command::Run(args) => {
            let input = load_input(&args.input, stdin)?;
            let (result, exit_code) =
                run_cmd(&input, args.display(std::io::stderr().is_terminal()));
            Ok(document(&result, exit_code))
        }
    }
}

/// `memory summary` (a JSON document) and `memory query` (rows streamed
/// to stdout), on the file opened read-only.
fn memory_cmd(command: &MemoryCommand) -> Result<Outcome, CommandError> {
    let file = match command {
        MemoryCommand::Summary(file) | MemoryCommand::Query { file, .. } => file,
    };
    let db = file
        .db
        .clone()
        .unwrap_or_else(|| PathBuf::from(memory::config::DEFAULT_DB_PATH));
    let conn = inspect::open_read_only(&db).map_err(|e| memory_error(e, "--db", &db))?;
    match command {
        MemoryCommand::Summary(_) => {
            let summary = inspect::summary(&conn, &db).map_err(|e| memory_error(e, "--db", &db))?;
            Ok(document(&summary, Code::Ok))
        }
        MemoryCommand::Query { sql, format, .. } => {
            let format = match format {
                QueryFormat::Jsonl => inspect::QueryFormat::JsonLines,
                QueryFormat::Csv => inspect::QueryFormat::Csv,
            };
            let mut out = std::io::BufWriter::new(std::io::stdout().lock());
            inspect::query(&conn, sql, format, &mut out)
                .map_err(|e| memory_error(e, "SQL", &db))?;
            Ok(Outcome {
                stdout: String::new(),
                exit_code: Code::Ok.code(),
            })
        }
    }
}

/// A memory problem as a command error: what the user pointed at (the
/// file, the SQL) is invalid input naming `field`; anything else (a lock
/// held by a running campaign, permissions) is the environment.
fn memory_error(error: MemoryError, field: &str, db: &Path) -> CommandError {
    if error.is_input() {
        let field = match error {
            MemoryError::Query(_) => field,
            _ => "--db",
        };
        CommandError::input(field, error.to_string())
    } else {
        CommandError::Environment {
            message: error.to_string(),
            context: json!({"db": db}),
        }
    }
}

fn failure(error: CommandError, is_run: bool) -> Outcome {
    tracing::error!("{error}");
    if is_run {
        let (result, exit_code) = report::run_report(Err(error));
        document(&result, exit_code)
    } else {
        document(&report::failure_document(&error), error.exit_code())
    }
}

fn document<T: serde::Serialize>(value: &T, exit_code: Code) -> Outcome {
    match serde_json::to_string_pretty(value) {
        Ok(mut text) => {
            text.push('\n');
            Outcome {
                stdout: text,
                exit_code: exit_code.code(),
            }
        }
        Err(error) => {
            let message = format!("cannot serialise the output: {error}");
            Outcome {
                stdout: format!(
                    "{}\n",
                    json!({"ok": false, "error": {"type": "internal", "message": message, "context": {}}})
                ),
                exit_code: Code::Failed.code(),
            }
        }
    }
}

/// Writes the outcome to stdout; returns the exit code (1 if stdout is gone).
fn print(outcome: &Outcome) -> u8 {
    let mut out = std::io::stdout().lock();
    match out
        .write_all(outcome.stdout.as_bytes())
        .and_then(|()| out.flush())
    {
        Ok(()) => outcome.exit_code,
        Err(error) => {
            tracing::error!("cannot write to stdout: {error}");
            Code::Failed.code()
        }
    }
}

/// Loads the request (stdin or `--config`) and validates its config.
fn load_input(args: &InputArgs, stdin: Option<&mut dyn Read>) -> Result<Input, CommandError> {
    let (request, mut warnings) = match &args.config {
        Some(path) => (config::read_request_file(path)?, Vec::new()),
        None => read_stdin_request(stdin)?,
    };
    let loaded = config::load_request(&request)?;
    warnings.extend(loaded.warnings);
    for warning in &warnings {
        tracing::warn!("{warning}");
    }
    Ok(Input {
        config: loaded.config,
        context: request.context,
        warnings,
    })
}

/// Parses the request envelope from stdin; unknown top-level or context
/// fields are warnings.
fn read_stdin_request(
    stdin: Option<&mut dyn Read>,
) -> Result<(Request, Vec<String>), CommandError> {
    let Some(stdin) = stdin else {
        return Err(CommandError::input(
            "stdin",
            "no request on stdin: pipe a request JSON or use --config FILE",
        ));
    };
    let mut text = String::new();
    stdin
        .take(MAX_STDIN_BYTES + 1)
        .read_to_string(&mut text)
        .map_err(|e| CommandError::input("stdin", format!("cannot read: {e}")))?;
    if text.len() as u64 > MAX_STDIN_BYTES {
        return Err(CommandError::input(
            "stdin",
            format!("the request is larger than {MAX_STDIN_BYTES} bytes"),
        ));
    }
    parse_request(&text)
}

fn parse_request(text: &str) -> Result<(Request, Vec<String>), CommandError> {
    if text.trim().is_empty() {
        return Err(CommandError::input(
            "stdin",
            "empty input: expected a request JSON object {\"config\": {...}, \"context\": {...}}",
        ));
    }
    let value: Value = serde_json::from_str(text)
        .map_err(|e| CommandError::input("stdin", format!("malformed JSON: {e}")))?;
    if !value.is_object() {
        return Err(CommandError::input(
            "stdin",
            "the request must be a JSON object {\"config\": {...}, \"context\": {...}}",
        ));
    }
    if let Some(context) = value.get("context").filter(|c| !c.is_object()) {
        return Err(CommandError::input(
            "context",
            format!(
                "must be a JSON object, got {}",
                config::raw::json_type(context)
            ),
        ));
    }
    let mut unknown = Vec::new();
    let mut record = |path: serde_ignored::Path<'_>| unknown.push(path.to_string());
    let request: Request =
        serde_path_to_error::deserialize(serde_ignored::Deserializer::new(&value, &mut record))
            .map_err(|e| CommandError::input(e.path().to_string(), e.inner().to_string()))?;
    let warnings = unknown
        .into_iter()
        .map(|field| format!("unknown request field `{field}` ignored"))
        .collect();
    Ok((request, warnings))
}

fn script_selector(args: &SelectorArgs, config: &Config) -> Result<ScriptSelector, CommandError> {
    match (&args.config_id, &args.pairs) {
        (Some(id), None) => ConfigId::parse(id)
            .map(ScriptSelector::ConfigId)
            .map_err(|e| CommandError::input("--config-id", e.to_string())),
        (None, Some(pairs)) => parse_pairs(pairs, config).map(ScriptSelector::Pairs),
        _ => Err(CommandError::input(
            "--config-id",
            "give exactly one of --config-id and --pairs",
        )),
    }
}

/// `figlet=10,env=20`: configured functions, each once, rates integers.
fn parse_pairs(text: &str, config: &Config) -> Result<Vec<(FunctionName, u64)>, CommandError> {
    let fail = |reason: String| CommandError::input("--pairs", reason);
    let mut pairs: Vec<(FunctionName, u64)> = Vec::new();
    for item in text.split(',') {
        let item = item.trim();
        let (name, rate) = item
            .split_once('=')
            .ok_or_else(|| fail(format!("{item:?} is not NAME=RATE")))?;
        let name = FunctionName::parse(name.trim()).map_err(|e| fail(e.to_string()))?;
        let rate: u64 = rate.trim().parse().map_err(|_| {
            fail(format!(
                "rate {rate:?} of {name} is not a non-negative integer"
            ))
        })?;
        if !config.functions.iter().any(|f| f.name == name) {
            return Err(fail(format!("function {name} is not in the config")));
        }
        if pairs.iter().any(|(seen, _)| *seen == name) {
            return Err(fail(format!("function {name} is given twice")));
        }
        pairs.push((name, rate));
    }
    Ok(pairs)
}

/// The manifest `describe` prints.
pub(crate) fn manifest() -> Value {
    let root = install_root();
    let playbook = |relative: &str| root.join(relative).display().to_string();
    json!({
        "name": "dfaas",
        // The lb plugins whose configs a request may hold (its `plugin`).
        "plugins": Plugin::ALL.map(Plugin::name),
        "version": env!("CARGO_PKG_VERSION"),
        "description": env!("CARGO_PKG_DESCRIPTION"),
        "config_schema": config::json_schema(),
        "playbooks": {
            "setup_global": playbook("ansible/setup_global.yml"),
            "setup_k6": playbook("ansible/setup_k6.yml"),
            "collect_pre": playbook("ansible/collect/pre.yml"),
            "collect_post": playbook("ansible/collect/post.yml"),
            "teardown": playbook("ansible/teardown_k6.yml"),
        },
        "required_tools": [
            "ssh (OpenSSH client) on the target",
            "k6 on the k6 host, or on the target with k6_host local (installed by the setup_global playbook)",
            "ansible-playbook on the controller, for the bundled playbooks",
        ],
    })
}

/// Where the bundled `ansible/` directory lives, as an absolute path:
/// 1. `$LB_DFAAS_HOME` when set and not empty;
/// 2. the first of the binary's directory, its parent and its grandparent
///    that holds `ansible/` (next to the binary, `<prefix>/bin/lb-dfaas`,
///    or cargo's `target/<profile>/lb-dfaas`);
/// 3. the source tree the binary was built from.
pub(crate) fn install_root() -> PathBuf {
    let from_env = std::env::var_os("LB_DFAAS_HOME").filter(|v| !v.is_empty());
    let exe_dir = std::env::current_exe()
        .ok()
        .and_then(|exe| exe.canonicalize().ok())
        .and_then(|exe| exe.parent().map(Path::to_path_buf));
    choose_install_root(
        from_env.map(PathBuf::from),
        exe_dir.as_deref(),
        Path::new(env!("CARGO_MANIFEST_DIR")),
    )
}

fn choose_install_root(
    from_env: Option<PathBuf>,
    exe_dir: Option<&Path>,
    built_from: &Path,
) -> PathBuf {
    if let Some(root) = from_env {
        return absolute(root);
    }
    if let Some(found) = exe_dir.and_then(|dir| {
        dir.ancestors()
            .take(3)
            .find(|candidate| candidate.join("ansible").is_dir())
    }) {
        return found.to_path_buf();
    }
    built_from.to_path_buf()
}

fn absolute(path: PathBuf) -> PathBuf {
    if path.is_absolute() {
        return path;
    }
    std::env::current_dir()
        .map(|cwd| cwd.join(&path))
        .unwrap_or(path)
}

/// Logs to stderr, filtered by `RUST_LOG` (default `info`, see
/// [`RunDisplay::log_filter`]), above the progress view when it is drawn.
fn init_logging(format: LogFormat, display: RunDisplay) {
    use tracing_subscriber::EnvFilter;
    let filter =
        EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new(display.log_filter()));
    // Colours only for a person at a terminal; lb reads stderr line by line.
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_ansi(std::io::stderr().is_terminal())
        .with_writer(StderrAboveView);
    // An error only means a subscriber is already installed.
    let _ = match format {
        LogFormat::Text => builder.try_init(),
        LogFormat::Json => builder.json().try_init(),
    };
}

/// Clap could not parse the arguments. Help and version go to stdout with
/// exit 0; a usage error is invalid input: clap's message on stderr, the
/// JSON error on stdout, exit 2.
fn usage_error(error: clap::Error, args: &[OsString]) -> ExitCode {
    use clap::error::ErrorKind as ClapKind;
    if matches!(
        error.kind(),
        ClapKind::DisplayHelp
            | ClapKind::DisplayVersion
            | ClapKind::DisplayHelpOnMissingArgumentOrSubcommand
    ) {
        let _ = error.print();
        return ExitCode::from(
            if error.kind() == ClapKind::DisplayHelpOnMissingArgumentOrSubcommand {
                Code::InvalidInput.code()
            } else {
                Code::Ok.code()
            },
        );
    }
    let _ = error.print();
    let rendered = error.render().to_string();
    let reason = rendered
        .lines()
        .next()
        .map(|line| line.trim_start_matches("error: ").to_string())
        .unwrap_or_else(|| error.kind().to_string());
    let command_error = CommandError::input("arguments", reason);
    let outcome = failure(command_error, is_run_invocation(args));
    ExitCode::from(print(&outcome))
}

/// Whether the arguments name the `run` subcommand (for the shape of the
/// error document when they cannot be parsed).
fn is_run_invocation(args: &[OsString]) -> bool {
    let mut rest = args.iter().skip(1);
    while let Some(arg) = rest.next() {
        match arg.to_str() {
            Some("--log-format") => {
                rest.next();
            }
            Some(flag) if flag.starts_with('-') => {}
            Some(word) => return word == "run",
            None => return false,
        }
    }
    false
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cli(args: &[&str]) -> Cli {
        Cli::try_parse_from(std::iter::once("lb-dfaas").chain(args.iter().copied())).unwrap()
    }

    fn run_with_stdin(args: &[&str], stdin: &str) -> (Value, u8) {
        let mut reader = stdin.as_bytes();
        let outcome = execute(&cli(args), Some(&mut reader));
        let value = serde_json::from_str(&outcome.stdout).unwrap();
        (value, outcome.exit_code)
    }

    #[test]
    fn validate_ok_with_warnings() {
        let (value, code) = run_with_stdin(&["validate"], r#"{"config": {"typo": 1}, "extra": 2}"#);
        // Without --format (piped, as lb calls it) the JSON is unchanged.
        assert_eq!(code, 0);
        assert_eq!(
            value,
            json!({"ok": true, "warnings": ["unknown request field `extra` ignored", "unknown field `typo` ignored"]})
        );
    }

    #[test]
    fn formats_default_to_json_unless_stdout_is_a_terminal() {
        for (terminal, validate, plan) in [
            (false, ValidateFormat::Json, PlanFormat::Json),
            (true, ValidateFormat::Text, PlanFormat::Table),
        ] {
            let mut c = cli(&["validate"]);
            c.default_formats(terminal);
            assert!(
                matches!(c.command, Command::Validate { format: Some(f), .. } if f == validate)
            );
            let mut c = cli(&["plan"]);
            c.default_formats(terminal);
            assert!(matches!(c.command, Command::Plan { format: Some(f), .. } if f == plan));
        }
        // Given on the command line, the format is kept.
        let mut c = cli(&["validate", "--format", "json"]);
        c.default_formats(true);
        assert!(!c.human_output());
    }

    #[test]
    fn validate_text_summary_and_field_lines() {
        let request = r#"{"config": {"functions": [{"name": "env"}], "typo": 1}}"#;
        let outcome = execute(
            &cli(&["validate", "--format", "text"]),
            Some(&mut request.as_bytes()),
        );
        assert_eq!(outcome.exit_code, 0);
        assert_eq!(
            outcome.stdout,
            "ok: the configuration is valid\n  1 function (env), 21 rates, 21 configurations of 1 to 1 functions, 3 x 30s each\nwarning: unknown field `typo` ignored\n"
        );
        let bad = r#"{"config": {"k6_port": 0, "functions": [{"name": "Env"}]}}"#;
        let outcome = execute(
            &cli(&["validate", "--format", "text"]),
            Some(&mut bad.as_bytes()),
        );
        assert_eq!(outcome.exit_code, 2);
        let lines: Vec<&str> = outcome.stdout.lines().collect();
        assert_eq!(lines[0], "invalid input: 2 problems");
        assert!(
            lines[1..].iter().any(|l| l.starts_with("k6_port: ")),
            "{lines:?}"
        );
        assert!(
            lines[1..]
                .iter()
                .any(|l| l.starts_with("functions[0].name: ")),
            "{lines:?}"
        );
        // The same failure piped stays the JSON document.
        let (value, code) = run_with_stdin(&["validate"], bad);
        assert_eq!((code, &value["ok"]), (2, &json!(false)));
    }

    #[test]
    fn plan_table_lists_counts_and_first_configurations() {
        let dir = tempfile::tempdir().unwrap();
        let input = two_function_input(dir.path());
        let mut out = Vec::new();
        plan_cmd_as(&input, None, PlanFormat::Table, &mut out).unwrap();
        let text = String::from_utf8(out).unwrap();
        assert!(
            text.contains("  total                 3             483                0     483"),
            "{text}"
        );
        assert!(
            text.contains("Estimated runtime: 12 h 05 min of load"),
            "{text}"
        );
        assert!(text.contains("First 20 of 483 configurations"), "{text}");
        assert_eq!(text.lines().filter(|l| l.contains("  env=")).count(), 20);
    }

    #[test]
    fn invalid_stdin_is_exit_2_naming_stdin() {
        let cases = [
            ("", "stdin", "empty input"),
            (
                "{\"config\": ",
                "stdin",
                "malformed JSON: EOF while parsing a value at line 1 column 11",
            ),
            ("[1]", "stdin", "must be a JSON object"),
            (
                r#"{"context": {"repetition": "x"}}"#,
                "context.repetition",
                "invalid type",
            ),
            (
                r#"{"config": {"functions": [{"name": "a"}, {"name": 5}]}}"#,
                "functions[1].name",
                "invalid type: integer `5`, expected a string",
            ),
        ];
        for (stdin, field, reason) in cases {
            let (value, code) = run_with_stdin(&["validate"], stdin);
            assert_eq!(code, 2, "{stdin}");
            assert_eq!(value["ok"], json!(false));
            assert_eq!(value["error"]["type"], json!("invalid_input"));
            let first = &value["error"]["context"]["errors"][0];
            assert_eq!(first["field"], json!(field), "{stdin}: {value}");
            assert!(
                first["reason"].as_str().unwrap().contains(reason),
                "{stdin}: {value}"
            );
        }
    }

    #[test]
    fn terminal_stdin_is_refused() {
        let outcome = execute(&cli(&["validate"]), None);
        assert_eq!(outcome.exit_code, 2);
        assert!(outcome.stdout.contains("no request on stdin"));
    }

    #[test]
    fn run_reports_invalid_input_as_a_result() {
        let (value, code) = run_with_stdin(&["run"], r#"{"config": {"k6_port": 0}}"#);
        assert_eq!(code, 2);
        let result: RunResult = serde_json::from_value(value).unwrap();
        assert_eq!(result.returncode, 2);
        assert!(!result.success);
        assert_eq!(
            result.error.unwrap().context["errors"][0]["field"],
            json!("k6_port")
        );
    }

    #[test]
    fn script_by_id_equals_script_by_pairs() {
        let request =
            r#"{"config": {"functions": [{"name": "figlet"}, {"name": "env"}], "duration": "5s"}}"#;
        let by_pairs = execute(
            &cli(&["script", "--pairs", "figlet=10"]),
            Some(&mut request.as_bytes()),
        );
        let by_id = execute(
            &cli(&["script", "--config-id", "63a789418109"]),
            Some(&mut request.as_bytes()),
        );
        assert_eq!(by_pairs.exit_code, 0, "{}", by_pairs.stdout);
        assert_eq!(by_id.exit_code, 0, "{}", by_id.stdout);
        assert_eq!(by_pairs.stdout, by_id.stdout);
        assert!(by_id.stdout.contains("/function/figlet"));
        assert!(
            by_id.stdout.contains(r#"duration: "5s""#),
            "{}",
            by_id.stdout
        );
        let unknown = execute(
            &cli(&["script", "--config-id", "000000000000"]),
            Some(&mut request.as_bytes()),
        );
        assert_eq!(unknown.exit_code, 2);
        assert!(unknown.stdout.contains("--config-id"));
    }

    /// figlet and env, combinations of one and two, output in `dir`.
    fn two_function_input(dir: &Path) -> Input {
        let request = Request {
            config: json!({"functions": [{"name": "figlet"}, {"name": "env"}],
                           "combinations": {"min_functions": 1, "max_functions": 3}}),
            context: Context {
                output_dir: Some(dir.display().to_string()),
                ..Context::default()
            },
            plugin: Default::default(),
        };
        let loaded = config::load_request(&request).unwrap();
        Input {
            config: loaded.config,
            context: request.context,
            warnings: vec![],
        }
    }

    #[test]
    fn plan_streams_counts_and_configurations() {
        let dir = tempfile::tempdir().unwrap();
        let input = two_function_input(dir.path());
        let mut out = Vec::new();
        plan_cmd(&input, Some(2), &mut out).unwrap();
        let plan: Value = serde_json::from_slice(&out).unwrap();
        assert_eq!(plan["count"], json!(483));
        assert_eq!(plan["configurations"].as_array().unwrap().len(), 2);
        assert_eq!(plan["truncated"], json!(true));
        // An index from an earlier run is predicted as skipped.
        std::fs::write(
            dir.path().join("index.csv"),
            "functions;rates;results_file\n['env'];[0];results.csv\n",
        )
        .unwrap();
        let mut out = Vec::new();
        plan_cmd(&input, Some(1), &mut out).unwrap();
        let plan: Value = serde_json::from_slice(&out).unwrap();
        assert_eq!(plan["already_indexed"], json!(1));
        assert_eq!(plan["configurations"][0]["skip"], json!("already_indexed"));
    }

    #[test]
    fn script_selectors() {
        let config = config::load_request(&Request {
            config: json!({"functions": [{"name": "figlet"}, {"name": "env"}]}),
            context: Context::default(),
            plugin: Default::default(),
        })
        .unwrap()
        .config;
        let pairs = |text: &str| parse_pairs(text, &config);
        let parsed = pairs("figlet=10, env=20").unwrap();
        assert_eq!(parsed[0].0.as_str(), "figlet");
        assert_eq!(parsed[1], (FunctionName::parse("env").unwrap(), 20));
        for bad in [
            "figlet",
            "figlet=x",
            "figlet=-1",
            "nope=1",
            "figlet=1,figlet=2",
            "Figlet=1",
            "",
        ] {
            let error = pairs(bad).unwrap_err();
            assert_eq!(
                error.to_error_info().context["errors"][0]["field"],
                json!("--pairs"),
                "{bad}"
            );
        }
        let parse_config_id = |id: &str| {
            script_selector(
                &SelectorArgs {
                    config_id: Some(id.to_string()),
                    pairs: None,
                },
                &config,
            )
        };
        assert!(parse_config_id("0123456789ab").is_ok());
        for bad in [
            "0123456789AB",
            "0123456789a",
            "0123456789abc",
            "../../etc/pa",
        ] {
            assert!(parse_config_id(bad).is_err(), "{bad}");
        }
        // The selector is checked before the command runs.
        let (value, code) =
            run_with_stdin(&["script", "--config-id", "nothex"], r#"{"config": {}}"#);
        assert_eq!(code, 2);
        assert_eq!(
            value["error"]["context"]["errors"][0]["field"],
            json!("--config-id")
        );
    }

    #[test]
    fn install_root_rule() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path();
        let exe_dir = root.join("target/debug");
        std::fs::create_dir_all(&exe_dir).unwrap();
        let built = Path::new("/built/from");
        // Nothing holds ansible/: the source tree.
        assert_eq!(choose_install_root(None, Some(&exe_dir), built), built);
        // cargo layout: target/debug/../../ansible.
        std::fs::create_dir(root.join("ansible")).unwrap();
        assert_eq!(choose_install_root(None, Some(&exe_dir), built), root);
        // Next to the binary wins over further up.
        std::fs::create_dir(exe_dir.join("ansible")).unwrap();
        assert_eq!(choose_install_root(None, Some(&exe_dir), built), exe_dir);
        // The environment wins over everything.
        assert_eq!(
            choose_install_root(Some(PathBuf::from("/opt/lb-dfaas")), Some(&exe_dir), built),
            Path::new("/opt/lb-dfaas")
        );
    }

    #[test]
    fn run_detection_for_usage_errors() {
        let args = |list: &[&str]| list.iter().map(OsString::from).collect::<Vec<_>>();
        assert!(is_run_invocation(&args(&["lb-dfaas", "run", "--bogus"])));
        assert!(is_run_invocation(&args(&[
            "lb-dfaas",
            "--log-format",
            "json",
            "run"
        ])));
        assert!(!is_run_invocation(&args(&["lb-dfaas", "validate", "run"])));
        assert!(!is_run_invocation(&args(&["lb-dfaas"])));
    }
}
