//! The three append-only tables of an output directory.

use std::collections::HashMap;
use std::fs::{self, File};
use std::io::{BufRead, BufReader, Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};

use super::index::{read_index, IndexFile};
use super::location::open_append;
use super::resume::{completed_iterations, CompletedIterations};
use super::row::{index_line, skipped_line};
use super::table::Table;
use super::tail::{complete_len, describe, TornLine};
use super::{artifact, OutputError, ResultRow};
use crate::config::FunctionName;
use crate::metrics::readings::IterationMetrics;
use crate::plan::{ConfigId, ConfigKey, Configuration};
use serde_json::Value;

/// results.csv, skipped.csv and index.csv of one output directory, open for
/// appending.
///
/// Every append is one `write_all` of the whole line followed by
/// `sync_data`, so when it returns the row is on disk; a failed append is
/// rolled back to the previous length. One campaign writes a directory at a
/// time: the files are not locked against a second writer.
#[derive(Debug)]
pub struct Dataset {
    dir: PathBuf,
    functions: Vec<FunctionName>,
    results: AppendFile,
    skipped: AppendFile,
    index: AppendFile,
}

impl Dataset {
    /// Opens (creating the directory and the files with their headers if
    /// missing) the tables of a campaign over `functions`.
    ///
    /// An existing file whose header differs from this campaign's is an
    /// [`OutputError::HeaderMismatch`]: rows of different layouts are never
    /// mixed. An unfinished last line (a write cut by a kill; it was never
    /// acknowledged) is truncated away and reported in the returned list —
    /// the caller should warn about it. A file that is only the start of
    /// the expected header is rewritten with the full header.
    pub fn open(
        dir: &Path,
        functions: &[FunctionName],
    ) -> Result<(Dataset, Vec<TornLine>), OutputError> {
        if functions.is_empty() {
            return Err(OutputError::NoFunctions);
        }
        let mut functions = functions.to_vec();
        functions.sort();
        functions.dedup();
        fs::create_dir_all(dir).map_err(|e| OutputError::io("create directory", dir, e))?;
        let mut repairs = Vec::new();
        let mut created = false;
        let mut open = |table: Table| -> Result<AppendFile, OutputError> {
            let name = table
                .file_name()
                .unwrap_or_else(|| unreachable!("dataset tables have file names"));
            let (file, new) =
                AppendFile::open(dir.join(name), &table.header_line(&functions), &mut repairs)?;
            created |= new;
            Ok(file)
        };
        let results = open(Table::Results)?;
        let skipped = open(Table::Skipped)?;
        let index = open(Table::Index)?;
        if created {
            // Make the new directory entries durable too.
            File::open(dir)
                .and_then(|d| d.sync_all())
                .map_err(|e| OutputError::io("sync directory", dir, e))?;
        }
        let dataset = Dataset {
            dir: dir.to_path_buf(),
            functions,
            results,
            skipped,
            index,
        };
        Ok((dataset, repairs))
    }

    pub(crate) fn dir(&self) -> &Path {
        &self.dir
    }

    pub fn results_path(&self) -> &Path {
        &self.results.path
    }

    pub fn skipped_path(&self) -> &Path {
        &self.skipped.path
    }

    pub fn index_path(&self) -> &Path {
        &self.index.path
    }

    /// Appends one iteration's row to results.csv, durably.
    pub fn append_result(&mut self, row: &ResultRow) -> Result<(), OutputError> {
        let line = row.csv_line(&self.functions)?;
        self.results.append(&line)
    }

    /// Records one finished iteration: its summary, metrics and window
    /// files first, its results.csv row last. The row is what makes an iteration
    /// count (a rerun repeats an iteration that has none), so writing it
    /// last means a row never lacks its files; if the row (or a file)
    /// cannot be written, the files already written for the iteration are
    /// removed again, so none outlives a row that was never written.
    pub fn append_iteration(
        &mut self,
        record: &IterationRecord<'_>,
    ) -> Result<IterationFiles, OutputError> {
        let dir = self.dir.clone();
        let (id, iteration, repetition) = (record.config_id, record.iteration, record.repetition);
        let summary = artifact::write_summary(&dir, id, iteration, repetition, record.summary)?;
        let metrics = artifact::write_metrics(
            &dir,
            id,
            iteration,
            repetition,
            &self.functions,
            record.metrics,
        )
        .inspect_err(|_| artifact::remove_iteration_files(&[&summary]))?;
        let window = match &record.metrics.window {
            Some(window) => Some(
                artifact::write_window(&dir, id, iteration, repetition, window)
                    .inspect_err(|_| artifact::remove_iteration_files(&[&summary, &metrics]))?,
            ),
            None => None,
        };
        let generators = match record.generators {
            Some(generators) => Some(
                artifact::write_generators(&dir, id, iteration, repetition, generators)
                    .inspect_err(|_| {
                        let mut written = vec![summary.as_path(), metrics.as_path()];
                        written.extend(window.as_deref());
                        artifact::remove_iteration_files(&written);
                    })?,
            ),
            None => None,
        };
        self.append_result(record.row).inspect_err(|_| {
            let mut written = vec![summary.as_path(), metrics.as_path()];
            written.extend(window.as_deref());
            written.extend(generators.as_deref());
            artifact::remove_iteration_files(&written);
        })?;
        Ok(IterationFiles {
            summary,
            metrics,
            window,
            generators,
        })
    }

    /// Appends a failed or skipped configuration to skipped.csv, durably.
    pub fn append_skipped(&mut self, config: &Configuration) -> Result<(), OutputError> {
        let line = skipped_line(config, &self.functions)?;
        self.skipped.append(&line)
    }

    /// Removes `config`'s row from skipped.csv (a configuration that failed
    /// in an earlier run and has now completed), keeping every other line
    /// byte for byte. The file is rewritten beside itself, synced and
    /// renamed over the old one, so a kill leaves the old file or the new
    /// one. Returns whether a row was removed.
    pub fn remove_skipped(&mut self, config: &Configuration) -> Result<bool, OutputError> {
        let line = skipped_line(config, &self.functions)?;
        let wanted = line.strip_suffix(b"\n").unwrap_or(&line);
        let path = self.skipped.path.clone();
        let content = fs::read(&path).map_err(|e| OutputError::io("read", &path, e))?;
        let mut kept = Vec::with_capacity(content.len());
        let mut removed = false;
        for (number, row) in content.split_inclusive(|&b| b == b'\n').enumerate() {
            let bare = row
                .strip_suffix(b"\r\n")
                .or_else(|| row.strip_suffix(b"\n"))
                .unwrap_or(row);
            if number > 0 && bare == wanted {
                removed = true;
            } else {
                kept.extend_from_slice(row);
            }
        }
        if !removed {
            return Ok(false);
        }
        super::artifact::write_atomic(&path, &kept)?;
        let header = Table::Skipped.header_line(&self.functions);
        self.skipped = AppendFile::open(path, &header, &mut Vec::new())?.0;
        Ok(true)
    }

    /// Records a finished configuration in index.csv, durably.
    pub fn append_index(&mut self, key: &ConfigKey) -> Result<(), OutputError> {
        self.index.append(&index_line(key))
    }

    /// index.csv as it is now.
    pub fn read_index(&self) -> Result<IndexFile, OutputError> {
        read_index(&self.index.path)
    }

    /// Rows per configuration in results.csv as it is now (see
    /// [`completed_iterations`]).
    /// Configurations skipped.csv already lists.
    pub(crate) fn skipped_keys(&self) -> Result<std::collections::HashSet<ConfigKey>, OutputError> {
        super::resume::skipped_keys(&self.skipped.path)
    }

    pub fn completed_iterations(
        &self,
    ) -> Result<HashMap<ConfigKey, CompletedIterations>, OutputError> {
        completed_iterations(&self.results.path).map(|(counts, _)| counts)
    }
}

/// One finished iteration, as [`Dataset::append_iteration`] records it.
#[derive(Debug, Clone, Copy)]
pub struct IterationRecord<'a> {
    pub config_id: &'a ConfigId,
    pub iteration: u32,
    pub repetition: u32,
    /// k6's summary document.
    pub summary: &'a Value,
    pub metrics: &'a IterationMetrics,
    /// The load generators' own figures (CPU, arrivals, saturation),
    /// written to `metrics/generators-<id>-iter<i>-rep<r>.json`.
    pub generators: Option<&'a serde_json::Value>,
    pub row: &'a ResultRow,
}

/// Where an iteration's files were written.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IterationFiles {
    pub summary: PathBuf,
    pub metrics: PathBuf,
    /// The query window, when the metrics carry one.
    pub window: Option<PathBuf>,
    pub generators: Option<PathBuf>,
}

/// One table file open in append mode.
#[derive(Debug)]
struct AppendFile {
    path: PathBuf,
    file: File,
    /// Length after the last acknowledged line.
    len: u64,
    /// The file's lines end in `\r\n` (its header does): appended lines
    /// end the same way, so a file never mixes line endings.
    crlf: bool,
}

impl AppendFile {
    /// Opens or creates `path`, checks or writes `header`, cuts a torn last
    /// line. Returns whether the file was created.
    fn open(
        path: PathBuf,
        header: &[u8],
        repairs: &mut Vec<TornLine>,
    ) -> Result<(AppendFile, bool), OutputError> {
        let mut file = open_append(&path, true)?;
        let read_err = |e| OutputError::io("read", &path, e);
        let (complete, total) = complete_len(&mut file).map_err(read_err)?;

        if complete == 0 && total > 0 {
            // Not even the header line is finished.
            let torn = describe(&mut file, path.clone(), 0, total, true).map_err(read_err)?;
            let mut content = Vec::new();
            file.seek(SeekFrom::Start(0)).map_err(read_err)?;
            (&file)
                .take(header.len() as u64)
                .read_to_end(&mut content)
                .map_err(read_err)?;
            if total > header.len() as u64 || !header.starts_with(&content) {
                return Err(mismatch(
                    &path,
                    header,
                    &content,
                    total > content.len() as u64,
                ));
            }
            repairs.push(torn);
        }
        if complete == 0 {
            let mut this = AppendFile {
                path,
                file,
                len: 0,
                crlf: false,
            };
            this.file
                .set_len(0)
                .map_err(|e| OutputError::io("truncate", &this.path, e))?;
            this.append(header)?;
            return Ok((this, total == 0));
        }

        // Header check: read at most one byte past the expected header and
        // its CRLF variant.
        file.seek(SeekFrom::Start(0)).map_err(read_err)?;
        let mut first = Vec::new();
        BufReader::new((&file).take(header.len() as u64 + 1))
            .read_until(b'\n', &mut first)
            .map_err(read_err)?;
        let expected = header.strip_suffix(b"\n").unwrap_or(header);
        let found = first
            .strip_suffix(b"\r\n")
            .or_else(|| first.strip_suffix(b"\n"))
            .unwrap_or(&first);
        if found != expected || !first.ends_with(b"\n") {
            return Err(mismatch(&path, header, &first, !first.ends_with(b"\n")));
        }

        if complete < total {
            repairs
                .push(describe(&mut file, path.clone(), complete, total, true).map_err(read_err)?);
            file.set_len(complete)
                .and_then(|()| file.sync_data())
                .map_err(|e| OutputError::io("truncate the unfinished last line of", &path, e))?;
        }
        Ok((
            AppendFile {
                path,
                file,
                len: complete,
                crlf: first.ends_with(b"\r\n"),
            },
            false,
        ))
    }

    /// One write of the whole line, then `sync_data`. A line ending in
    /// `\n` gets the file's line ending.
    fn append(&mut self, line: &[u8]) -> Result<(), OutputError> {
        let with_crlf;
        let line = match line.strip_suffix(b"\n") {
            Some(body) if self.crlf && !body.ends_with(b"\r") => {
                with_crlf = [body, b"\r\n"].concat();
                &with_crlf[..]
            }
            _ => line,
        };
        let written = self
            .file
            .write_all(line)
            .and_then(|()| self.file.sync_data());
        if let Err(e) = written {
            // Roll back a partial line so later appends start on a line
            // boundary. If even that fails, the next open cuts the torn
            // line, so the append error is the one to report.
            let _ = self.file.set_len(self.len);
            return Err(OutputError::io("append a line to", &self.path, e));
        }
        self.len += line.len() as u64;
        Ok(())
    }
}

/// `truncated`: `found` is only the start of the file's first line.
fn mismatch(path: &Path, header: &[u8], found: &[u8], truncated: bool) -> OutputError {
    let text = |b: &[u8]| {
        String::from_utf8_lossy(b)
            .trim_end_matches(['\r', '\n'])
            .to_string()
    };
    let mut found = text(found);
    if truncated {
        found.push('…');
    }
    OutputError::HeaderMismatch {
        path: path.to_path_buf(),
        expected: text(header),
        found,
    }
}
