//! Reading index.csv: which configurations earlier runs finished.
//!
//! Accepts what the legacy sampler wrote: `;`-separated, a header naming
//! `functions` and `rates` (and usually `results_file`), values as Python
//! list literals with single or double quotes and optional spaces
//! (`['env', 'figlet'];[0, 10];results.csv`), tuples too, CRLF or LF line
//! ends. Anything else is an error naming the file, the line and the reason
//! — a garbled index must not silently rerun or skip configurations.
//! Errors quote no file content but the start of a foreign header.

use std::io::Read;
use std::path::Path;

use super::crlf::CrlfToLf;
use super::table::RESULTS_FILE;
use super::tail::{open_complete, TornLine};
use super::OutputError;
use crate::plan::{ConfigKey, IndexedConfigs, PlanError};

/// One index.csv row.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IndexRecord {
    pub key: ConfigKey,
    /// `results.csv` unless the file says otherwise.
    pub results_file: String,
    /// 1-based line number in the file.
    pub line: u64,
}

/// What [`read_index`] found.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct IndexFile {
    pub records: Vec<IndexRecord>,
    /// An unfinished last line that was ignored.
    pub torn: Option<TornLine>,
}

impl IndexFile {
    /// The set of finished configurations (duplicates collapse).
    pub fn indexed(&self) -> IndexedConfigs {
        self.records.iter().map(|r| r.key.clone()).collect()
    }
}

/// Reads index.csv at `path`; a missing file is an empty index. An
/// unfinished last line is ignored and reported in [`IndexFile::torn`]; the
/// file is not modified.
pub fn read_index(path: &Path) -> Result<IndexFile, OutputError> {
    let Some(lines) = open_complete(path)? else {
        return Ok(IndexFile::default());
    };
    let records = parse_index(lines.file.take(lines.complete), &path.display().to_string())?;
    let torn = lines.torn;
    Ok(IndexFile { records, torn })
}

/// Parses index.csv content; `source_name` names the input in errors.
pub fn parse_index<R: Read>(reader: R, source_name: &str) -> Result<Vec<IndexRecord>, OutputError> {
    let malformed = |line: u64, reason: String| OutputError::Malformed {
        source_name: source_name.to_string(),
        line,
        reason,
    };
    let mut csv = csv::ReaderBuilder::new()
        .delimiter(b';')
        .has_headers(false)
        .flexible(true)
        .from_reader(CrlfToLf::new(reader));
    let mut records = csv.records();
    let header = match records.next() {
        None => return Ok(Vec::new()),
        Some(header) => header.map_err(|e| csv_error(e, source_name))?,
    };
    let column = |name: &str| header.iter().position(|h| h.trim() == name);
    let (Some(functions_at), Some(rates_at)) = (column("functions"), column("rates")) else {
        return Err(malformed(
            1,
            format!(
                "header must name the columns functions and rates (separated by ';'), found {:?}",
                quoted_header(&header.iter().collect::<Vec<_>>().join(";"))
            ),
        ));
    };
    let results_at = column("results_file");

    let mut out = Vec::new();
    for record in records {
        let record = record.map_err(|e| csv_error(e, source_name))?;
        let line = record.position().map_or(0, |p| p.line());
        if record.len() != header.len() {
            return Err(malformed(
                line,
                format!(
                    "expected {} fields separated by ';', found {}",
                    header.len(),
                    record.len()
                ),
            ));
        }
        let field = |at: usize| record.get(at).unwrap_or_default();
        let functions = parse_list(field(functions_at))
            .and_then(|items| {
                items
                    .into_iter()
                    .map(|item| match item {
                        Literal::Str(s) => Ok(s),
                        Literal::Int(_) => {
                            Err("expected a function name, found a number".to_string())
                        }
                    })
                    .collect::<Result<Vec<_>, _>>()
            })
            .map_err(|reason| malformed(line, format!("functions: {reason}")))?;
        let rates = parse_list(field(rates_at))
            .and_then(|items| {
                items
                    .into_iter()
                    .map(|item| match item {
                        Literal::Int(i) => Ok(i),
                        Literal::Str(_) => Err("expected a rate, found a string".to_string()),
                    })
                    .collect::<Result<Vec<_>, _>>()
            })
            .map_err(|reason| malformed(line, format!("rates: {reason}")))?;
        let key = ConfigKey::new(functions, rates).map_err(|e| malformed(line, key_error(&e)))?;
        let results_file = match results_at.map(field).map(str::trim) {
            None | Some("") => RESULTS_FILE.to_string(),
            Some(name) => name.to_string(),
        };
        out.push(IndexRecord {
            key,
            results_file,
            line,
        });
    }
    Ok(out)
}

/// How much of a foreign header an error quotes.
const QUOTED_HEADER_CHARS: usize = 120;

/// The start of a header line, for the header check's message: the only
/// file content an index error quotes.
fn quoted_header(header: &str) -> String {
    let mut quoted: String = header.chars().take(QUOTED_HEADER_CHARS).collect();
    if quoted.len() < header.len() {
        quoted.push('…');
    }
    quoted
}

/// A key error without the file's content (function names included).
fn key_error(error: &PlanError) -> String {
    match error {
        PlanError::DuplicateFunction(_) => "a function appears more than once".to_string(),
        other => other.to_string(),
    }
}

fn csv_error(e: csv::Error, source_name: &str) -> OutputError {
    OutputError::Malformed {
        source_name: source_name.to_string(),
        line: e.position().map_or(0, |p| p.line()),
        reason: e.to_string(),
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Literal {
    Str(String),
    Int(u64),
}

/// A Python list (or tuple) literal of strings and non-negative integers,
/// as `ast.literal_eval` reads them: `['a', "b"]`, `[0,10]`, `(1,)`, `[]`.
fn parse_list(text: &str) -> Result<Vec<Literal>, String> {
    let mut p = LiteralParser {
        chars: text.trim().chars().collect(),
        pos: 0,
    };
    let close = match p.bump() {
        Some('[') => ']',
        Some('(') => ')',
        _ => return Err("expected a list like ['a', 'b'] or [1, 2]".to_string()),
    };
    let mut items = Vec::new();
    loop {
        p.skip_spaces();
        if p.eat(close) {
            break;
        }
        items.push(p.item()?);
        p.skip_spaces();
        if p.eat(close) {
            break;
        }
        if !p.eat(',') {
            return Err(format!(
                "expected ',' or '{close}' at character {} of the list",
                p.pos + 1
            ));
        }
    }
    p.skip_spaces();
    if p.pos != p.chars.len() {
        return Err("unexpected text after the list".to_string());
    }
    Ok(items)
}

struct LiteralParser {
    chars: Vec<char>,
    pos: usize,
}

impl LiteralParser {
    fn bump(&mut self) -> Option<char> {
        let c = self.chars.get(self.pos).copied();
        self.pos += usize::from(c.is_some());
        c
    }

    fn eat(&mut self, want: char) -> bool {
        if self.chars.get(self.pos) == Some(&want) {
            self.pos += 1;
            true
        } else {
            false
        }
    }

    fn skip_spaces(&mut self) {
        while self.chars.get(self.pos).is_some_and(|c| c.is_whitespace()) {
            self.pos += 1;
        }
    }

    fn item(&mut self) -> Result<Literal, String> {
        match self.chars.get(self.pos).copied() {
            Some(q @ ('\'' | '"')) => {
                self.pos += 1;
                self.string(q).map(Literal::Str)
            }
            Some(c) if c.is_ascii_digit() || c == '+' => self.integer().map(Literal::Int),
            Some('-') => Err("negative numbers are not rates".to_string()),
            Some(_) => Err(format!(
                "expected a quoted string or an integer at character {} of the list",
                self.pos + 1
            )),
            None => Err("the list is not closed".to_string()),
        }
    }

    fn string(&mut self, quote: char) -> Result<String, String> {
        let mut out = String::new();
        loop {
            match self.bump() {
                None => return Err(format!("string not closed with {quote}")),
                Some(c) if c == quote => return Ok(out),
                Some('\\') => match self.bump() {
                    Some(c @ ('\\' | '\'' | '"')) => out.push(c),
                    Some('n') => out.push('\n'),
                    Some('t') => out.push('\t'),
                    Some('r') => out.push('\r'),
                    Some(_) => return Err("unsupported escape in a string".to_string()),
                    None => return Err("string ends in a backslash".to_string()),
                },
                Some(c) => out.push(c),
            }
        }
    }

    fn integer(&mut self) -> Result<u64, String> {
        self.eat('+');
        let start = self.pos;
        while self
            .chars
            .get(self.pos)
            .is_some_and(|c| c.is_ascii_digit() || *c == '_')
        {
            self.pos += 1;
        }
        let digits: String = self.chars[start..self.pos]
            .iter()
            .filter(|&&c| c != '_')
            .collect();
        if digits.is_empty() {
            return Err("expected digits after '+'".to_string());
        }
        if self
            .chars
            .get(self.pos)
            .is_some_and(|c| *c == '.' || c.is_alphabetic())
        {
            return Err("rates must be whole numbers".to_string());
        }
        digits
            .parse::<u64>()
            .map_err(|_| "integer out of range (at most 18446744073709551615)".to_string())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn list_literals() {
        let s = |v: &str| Literal::Str(v.into());
        let cases: &[(&str, Vec<Literal>)] = &[
            ("['env', 'figlet']", vec![s("env"), s("figlet")]),
            ("[\"env\",\"figlet\"]", vec![s("env"), s("figlet")]),
            ("  [ 'env' , ]  ", vec![s("env")]),
            ("('env',)", vec![s("env")]),
            ("[0, 10]", vec![Literal::Int(0), Literal::Int(10)]),
            ("[1_000]", vec![Literal::Int(1000)]),
            ("[]", vec![]),
            ("['it\\'s']", vec![s("it's")]),
        ];
        for (text, want) in cases {
            assert_eq!(&parse_list(text).unwrap(), want, "{text}");
        }
    }

    #[test]
    fn list_garbage() {
        for bad in [
            "",
            "env",
            "['env'",
            "['env' 'figlet']",
            "[env]",
            "[1.5]",
            "[-1]",
            "['a'] x",
            "[1e3]",
            "['a\\q']",
            "[1,,2]",
            "[99999999999999999999999]",
            "['env')",
        ] {
            assert!(parse_list(bad).is_err(), "{bad:?} accepted");
        }
    }
}
