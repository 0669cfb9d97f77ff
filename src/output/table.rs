//! The tables the campaign writes: file names, headers and line encoding.
//!
//! Lines end in `\n`; a cell is quoted only when it must be (it contains the
//! delimiter, a quote, `\r` or `\n`), as Python's `csv.QUOTE_MINIMAL` does.

use crate::config::FunctionName;

/// The nine per-function columns of results.csv, in order.
const RESULT_FUNCTION_COLUMNS: [&str; 9] = [
    "function_",
    "rate_function_",
    "success_rate_function_",
    "cpu_usage_function_",
    "ram_usage_function_",
    "power_usage_function_",
    "replica_",
    "overloaded_function_",
    "medium_latency_function_",
];

/// The node columns that close every results.csv row.
pub(crate) const RESULT_NODE_COLUMNS: [&str; 10] = [
    "cpu_usage_idle_node",
    "cpu_usage_node",
    "ram_usage_idle_node",
    "ram_usage_node",
    "ram_usage_idle_node_percentage",
    "ram_usage_node_percentage",
    "power_usage_idle_node",
    "power_usage_node",
    "rest_seconds",
    "overloaded_node",
];

/// The node columns of a per-iteration metrics CSV.
const METRICS_NODE_COLUMNS: [&str; 4] = [
    "cpu_usage_node",
    "ram_usage_node",
    "ram_usage_node_pct",
    "power_usage_node",
];

const METRICS_FUNCTION_COLUMNS: [&str; 3] = [
    "cpu_usage_function_",
    "ram_usage_function_",
    "power_usage_function_",
];

/// The index.csv header.
pub(crate) const INDEX_COLUMNS: [&str; 3] = ["functions", "rates", "results_file"];

/// The `results_file` value of every index row.
pub(crate) const RESULTS_FILE: &str = "results.csv";

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Table {
    /// results.csv: one row per iteration run.
    Results,
    /// skipped.csv: one row per configuration that failed or was skipped.
    Skipped,
    /// index.csv: one row per finished configuration.
    Index,
    /// `metrics/metrics-<id>-iter<i>-rep<r>.csv`: one iteration's raw metrics.
    Metrics,
}

impl Table {
    /// File name in the output directory (metrics files are named per
    /// iteration, see [`crate::output::artifact`]).
    pub(crate) fn file_name(self) -> Option<&'static str> {
        match self {
            Table::Results => Some(RESULTS_FILE),
            Table::Skipped => Some("skipped.csv"),
            Table::Index => Some("index.csv"),
            Table::Metrics => None,
        }
    }

    pub(crate) fn delimiter(self) -> u8 {
        match self {
            Table::Index => b';',
            _ => b',',
        }
    }

    /// Column names for a campaign over `functions` (sorted).
    pub fn header(self, functions: &[FunctionName]) -> Vec<String> {
        let per_function = |prefixes: &[&str]| -> Vec<String> {
            functions
                .iter()
                .flat_map(|f| prefixes.iter().map(move |p| format!("{p}{f}")))
                .collect()
        };
        match self {
            Table::Results => {
                let mut h = per_function(&RESULT_FUNCTION_COLUMNS);
                h.extend(RESULT_NODE_COLUMNS.iter().map(|c| c.to_string()));
                h
            }
            Table::Skipped => per_function(&RESULT_FUNCTION_COLUMNS[..2]),
            Table::Index => INDEX_COLUMNS.iter().map(|c| c.to_string()).collect(),
            Table::Metrics => {
                let mut h: Vec<String> =
                    METRICS_NODE_COLUMNS.iter().map(|c| c.to_string()).collect();
                h.extend(per_function(&METRICS_FUNCTION_COLUMNS));
                h
            }
        }
    }

    /// The header line, terminator included.
    pub fn header_line(self, functions: &[FunctionName]) -> Vec<u8> {
        encode_line(&self.header(functions), self.delimiter())
    }
}

/// One CSV record, `\n`-terminated, cells quoted only when necessary.
pub(crate) fn encode_line<S: AsRef<[u8]>>(fields: &[S], delimiter: u8) -> Vec<u8> {
    let mut line =
        Vec::with_capacity(fields.iter().map(|f| f.as_ref().len() + 1).sum::<usize>() + 2);
    let mut writer = csv::WriterBuilder::new()
        .delimiter(delimiter)
        .quote_style(csv::QuoteStyle::Necessary)
        .terminator(csv::Terminator::Any(b'\n'))
        .has_headers(false)
        .buffer_capacity(256)
        .from_writer(&mut line);
    // Writing into a Vec cannot fail; a failure would be a bug in csv.
    let written = writer
        .write_record(fields)
        .and_then(|()| writer.flush().map_err(Into::into));
    debug_assert!(written.is_ok());
    drop(writer);
    line
}

#[cfg(test)]
mod tests {
    use super::*;

    fn names(v: &[&str]) -> Vec<FunctionName> {
        v.iter().map(|n| FunctionName::parse(n).unwrap()).collect()
    }

    #[test]
    fn results_header_matches_legacy() {
        let h = Table::Results.header(&names(&["env", "figlet"]));
        assert_eq!(h.len(), 9 * 2 + 10);
        assert_eq!(
            h[..9],
            [
                "function_env",
                "rate_function_env",
                "success_rate_function_env",
                "cpu_usage_function_env",
                "ram_usage_function_env",
                "power_usage_function_env",
                "replica_env",
                "overloaded_function_env",
                "medium_latency_function_env"
            ]
        );
        assert_eq!(h[9], "function_figlet");
        assert_eq!(h[18..], RESULT_NODE_COLUMNS);
    }

    #[test]
    fn small_headers() {
        let f = names(&["env", "figlet"]);
        assert_eq!(
            String::from_utf8(Table::Skipped.header_line(&f)).unwrap(),
            "function_env,rate_function_env,function_figlet,rate_function_figlet\n"
        );
        assert_eq!(
            String::from_utf8(Table::Index.header_line(&f)).unwrap(),
            "functions;rates;results_file\n"
        );
        assert_eq!(
            Table::Metrics.header(&f).join(","),
            "cpu_usage_node,ram_usage_node,ram_usage_node_pct,power_usage_node,cpu_usage_function_env,ram_usage_function_env,power_usage_function_env,cpu_usage_function_figlet,ram_usage_function_figlet,power_usage_function_figlet"
        );
    }

    #[test]
    fn quotes_only_when_needed() {
        let line = encode_line(&["a", "", "b,c", "d\"e", "x\ny", "['env', 'figlet']"], b',');
        assert_eq!(
            String::from_utf8(line).unwrap(),
            "a,,\"b,c\",\"d\"\"e\",\"x\ny\",\"['env', 'figlet']\"\n"
        );
        let line = encode_line(&["['env', 'figlet']", "[0, 10]", "results.csv"], b';');
        assert_eq!(
            String::from_utf8(line).unwrap(),
            "['env', 'figlet'];[0, 10];results.csv\n"
        );
    }
}
