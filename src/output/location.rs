//! The output location: the output directory and everything a campaign
//! writes in it, checked (and for `run` created) before any load is sent.
//!
//! A campaign writes only regular files and directories it made itself:
//! results.csv, skipped.csv and index.csv must be regular files (or not
//! exist yet), summaries/, metrics/ and k6_scripts/ must be directories.
//! Symbolic links, FIFOs, sockets and devices are refused, never opened —
//! a FIFO would block the open, a link would make us read or append to a
//! file somewhere else. The output directory itself may be reached through
//! a symbolic link (it is the user's choice of place, not one of our files).
//!
//! [`inspect`] only looks (for `validate` and `plan`); [`prepare`] creates
//! what is missing and proves each directory writable (for `run`). Files
//! are opened through [`open_existing`] and [`open_append`], which check
//! the type before opening and that the opened file is the one checked.

use std::fs::{self, File, Metadata, OpenOptions};
use std::io;
use std::os::unix::fs::{FileTypeExt, MetadataExt};
use std::path::Path;

use super::artifact::{METRICS_DIR, SCRIPTS_DIR, SUMMARIES_DIR};
use super::{OutputError, ENOTDIR};

/// The three tables of an output directory, by file name.
pub(crate) const TABLE_FILES: [&str; 3] = ["results.csv", "skipped.csv", "index.csv"];

/// The per-iteration artifact directories.
pub(crate) const ARTIFACT_DIRS: [&str; 3] = [SUMMARIES_DIR, METRICS_DIR, SCRIPTS_DIR];

/// What a path in the output location is, as far as it matters here.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    Missing,
    File,
    Directory,
    Symlink,
    Other(&'static str),
}

/// The kind of `path` itself (a symbolic link is not followed).
fn kind_of(path: &Path) -> Result<(Kind, Option<Metadata>), OutputError> {
    match fs::symlink_metadata(path) {
        Ok(meta) => Ok((kind(&meta), Some(meta))),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok((Kind::Missing, None)),
        Err(e) => Err(OutputError::io("inspect", path, e)),
    }
}

fn kind(meta: &Metadata) -> Kind {
    let t = meta.file_type();
    if t.is_symlink() {
        Kind::Symlink
    } else if t.is_file() {
        Kind::File
    } else if t.is_dir() {
        Kind::Directory
    } else if t.is_fifo() {
        Kind::Other("a FIFO (named pipe)")
    } else if t.is_socket() {
        Kind::Other("a socket")
    } else if t.is_block_device() || t.is_char_device() {
        Kind::Other("a device")
    } else {
        Kind::Other("not a regular file")
    }
}

fn unusable(path: &Path, reason: impl Into<String>) -> OutputError {
    OutputError::Unusable {
        path: path.to_path_buf(),
        reason: reason.into(),
    }
}

const LINK_REASON: &str =
    "is a symbolic link; lb-dfaas writes only files it owns in the output directory (replace the link by the file itself or use another output directory)";

/// A table file must be a regular file or missing.
fn check_file(path: &Path) -> Result<Option<Metadata>, OutputError> {
    match kind_of(path)? {
        (Kind::Missing, _) => Ok(None),
        (Kind::File, meta) => Ok(meta),
        (Kind::Symlink, _) => Err(unusable(path, LINK_REASON)),
        (Kind::Directory, _) => Err(unusable(path, "is a directory, not a regular file")),
        (Kind::Other(what), _) => Err(unusable(path, format!("is {what}, not a regular file"))),
    }
}

/// An artifact directory must be a directory or missing; `true` if it exists.
fn check_dir(path: &Path) -> Result<bool, OutputError> {
    match kind_of(path)?.0 {
        Kind::Missing => Ok(false),
        Kind::Directory => Ok(true),
        Kind::Symlink => Err(unusable(path, LINK_REASON)),
        Kind::File => Err(unusable(path, "is a file, not a directory")),
        Kind::Other(what) => Err(unusable(path, format!("is {what}, not a directory"))),
    }
}

/// The output directory (symbolic links followed): `true` if it exists.
/// A missing one must be creatable as far as its nearest existing
/// ancestor goes: that ancestor must be a directory.
fn check_output_dir(dir: &Path) -> Result<bool, OutputError> {
    match fs::metadata(dir) {
        Ok(meta) if meta.is_dir() => return Ok(true),
        Ok(meta) => {
            let what = match kind(&meta) {
                Kind::File => "a regular file".to_string(),
                Kind::Other(what) => what.to_string(),
                _ => "not a directory".to_string(),
            };
            return Err(unusable(dir, format!("is {what}, not a directory")));
        }
        // Missing, or under something that is not a directory.
        Err(e) if e.kind() == io::ErrorKind::NotFound || e.raw_os_error() == Some(ENOTDIR) => {}
        Err(e) => return Err(OutputError::io("inspect", dir, e)),
    }
    // Missing: the nearest existing ancestor decides whether it can be made.
    let mut ancestor = dir.parent();
    while let Some(parent) = ancestor.filter(|p| !p.as_os_str().is_empty()) {
        match fs::metadata(parent) {
            Ok(meta) if meta.is_dir() => return Ok(false),
            Ok(_) => {
                return Err(unusable(
                    dir,
                    format!("cannot be created: {} is not a directory", parent.display()),
                ))
            }
            Err(e) if e.kind() == io::ErrorKind::NotFound || e.raw_os_error() == Some(ENOTDIR) => {
                ancestor = parent.parent()
            }
            Err(e) => return Err(OutputError::io("inspect", parent, e)),
        }
    }
    Ok(false)
}

/// Checks, without creating or writing anything, that a campaign could use
/// `dir`: it is a directory or can be created, and what it already holds
/// under our names has the right type.
pub(crate) fn inspect(dir: &Path) -> Result<(), OutputError> {
    if !check_output_dir(dir)? {
        return Ok(());
    }
    for name in TABLE_FILES {
        check_file(&dir.join(name))?;
    }
    for name in ARTIFACT_DIRS {
        check_dir(&dir.join(name))?;
    }
    Ok(())
}

/// Makes `dir` ready for a campaign before any load is sent: creates the
/// directory and the artifact directories, checks every table file, and
/// proves each directory writable (a file is created and removed in it),
/// so that a read-only filesystem, a missing permission or a file where a
/// directory belongs is found now rather than after the first k6 run.
pub fn prepare(dir: &Path) -> Result<(), OutputError> {
    check_output_dir(dir)?;
    fs::create_dir_all(dir).map_err(|e| OutputError::io("create directory", dir, e))?;
    // Raced into something else meanwhile, or a link to a non-directory.
    check_output_dir(dir)?;
    for name in TABLE_FILES {
        let path = dir.join(name);
        if check_file(&path)?.is_some() {
            // Opening for append proves the file writable; a regular file
            // never blocks an open.
            open_append(&path, false)?;
        }
    }
    probe_writable(dir)?;
    for name in ARTIFACT_DIRS {
        let path = dir.join(name);
        if !check_dir(&path)? {
            match fs::create_dir(&path) {
                Ok(()) => {}
                Err(e) if e.kind() == io::ErrorKind::AlreadyExists => {}
                Err(e) => return Err(OutputError::io("create directory", &path, e)),
            }
            check_dir(&path)?;
        }
        probe_writable(&path)?;
    }
    File::open(dir)
        .and_then(|d| d.sync_all())
        .map_err(|e| OutputError::io("sync directory", dir, e))
}

/// Creates and removes a temporary file in `dir`.
fn probe_writable(dir: &Path) -> Result<(), OutputError> {
    tempfile::Builder::new()
        .prefix(".lbd-probe-")
        .tempfile_in(dir)
        .and_then(|file| file.close())
        .map_err(|e| OutputError::io("create a file in", dir, e))
}

/// Opens an existing table file for reading; `None` when it does not exist.
/// Anything but a regular file is refused before it is opened.
pub(crate) fn open_existing(path: &Path) -> Result<Option<File>, OutputError> {
    let Some(before) = check_file(path)? else {
        return Ok(None);
    };
    let file = match File::open(path) {
        Ok(file) => file,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(OutputError::io("open", path, e)),
    };
    same_file(path, &file, Some(&before))?;
    Ok(Some(file))
}

/// Opens (creating it if `create`) a table file for reading and appending.
/// Anything but a regular file is refused before it is opened.
pub(crate) fn open_append(path: &Path, create: bool) -> Result<File, OutputError> {
    let before = check_file(path)?;
    let file = OpenOptions::new()
        .read(true)
        .append(true)
        .create(create)
        .open(path)
        .map_err(|e| OutputError::io("open", path, e))?;
    same_file(path, &file, before.as_ref())?;
    Ok(file)
}

/// The opened file is a regular file and, if the path was checked before,
/// the very file that was checked (not something swapped in meanwhile).
fn same_file(path: &Path, file: &File, before: Option<&Metadata>) -> Result<(), OutputError> {
    let now = file
        .metadata()
        .map_err(|e| OutputError::io("inspect", path, e))?;
    if !now.is_file() {
        return Err(unusable(path, "is not a regular file"));
    }
    if let Some(before) = before {
        if (before.dev(), before.ino()) != (now.dev(), now.ino()) {
            return Err(unusable(path, "was replaced while it was being opened"));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::symlink;
    use std::path::PathBuf;

    fn reason(error: OutputError) -> String {
        match error {
            OutputError::Unusable { reason, .. } => reason,
            other => panic!("not an unusable-path error: {other:?}"),
        }
    }

    #[test]
    fn a_missing_directory_is_fine_to_inspect_and_is_made_by_prepare() {
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path().join("a/b/out");
        inspect(&dir).unwrap();
        assert!(!dir.exists(), "inspect must not create anything");
        prepare(&dir).unwrap();
        for name in ARTIFACT_DIRS {
            assert!(dir.join(name).is_dir(), "{name}");
        }
        // No probe file is left behind.
        let leftovers: Vec<_> = fs::read_dir(&dir)
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .filter(|n| n.to_string_lossy().starts_with(".lbd-probe"))
            .collect();
        assert!(leftovers.is_empty(), "{leftovers:?}");
        prepare(&dir).unwrap();
    }

    #[test]
    fn output_dir_that_is_a_file_or_under_one_is_refused() {
        let tmp = tempfile::tempdir().unwrap();
        let file = tmp.path().join("file");
        fs::write(&file, "x").unwrap();
        for dir in [
            file.clone(),
            file.join("sub/out"),
            PathBuf::from("/dev/null"),
        ] {
            for check in [inspect, prepare] {
                let error = check(&dir).unwrap_err();
                assert!(
                    matches!(error, OutputError::Unusable { .. }),
                    "{}: {error:?}",
                    dir.display()
                );
            }
        }
        assert_eq!(fs::read(&file).unwrap(), b"x");
    }

    #[test]
    fn special_files_and_links_where_tables_belong_are_refused() {
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path();
        let target = dir.join("elsewhere.csv");
        fs::write(&target, "secret\n").unwrap();
        type Make = Box<dyn Fn(&Path)>;
        let cases: Vec<(&str, Make, &str)> = vec![
            (
                "results.csv",
                Box::new(|p| fs::create_dir(p).unwrap()),
                "is a directory",
            ),
            (
                "skipped.csv",
                Box::new(|p| {
                    let status = std::process::Command::new("mkfifo").arg(p).status();
                    assert!(status.unwrap().success());
                }),
                "FIFO",
            ),
            (
                "index.csv",
                Box::new(move |p| symlink(&target, p).unwrap()),
                "symbolic link",
            ),
        ];
        for (name, make, expected) in cases {
            let path = dir.join(name);
            make(&path);
            for check in [inspect, prepare] {
                let got = reason(check(dir).unwrap_err());
                assert!(got.contains(expected), "{name}: {got}");
            }
            // Opening refuses it too, without blocking.
            assert!(open_existing(&path).is_err(), "{name}");
            assert!(open_append(&path, true).is_err(), "{name}");
            let _ = fs::remove_dir(&path).or_else(|_| fs::remove_file(&path));
        }
    }

    #[test]
    fn artifact_dirs_that_are_files_or_links_are_refused() {
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path();
        fs::write(dir.join("summaries"), "").unwrap();
        assert!(reason(prepare(dir).unwrap_err()).contains("is a file, not a directory"));
        fs::remove_file(dir.join("summaries")).unwrap();
        let real = tempfile::tempdir().unwrap();
        symlink(real.path(), dir.join("metrics")).unwrap();
        assert!(reason(inspect(dir).unwrap_err()).contains("symbolic link"));
    }

    #[test]
    fn output_dir_through_a_link_is_allowed() {
        let real = tempfile::tempdir().unwrap();
        let links = tempfile::tempdir().unwrap();
        let link = links.path().join("out");
        symlink(real.path(), &link).unwrap();
        prepare(&link).unwrap();
        assert!(real.path().join("summaries").is_dir());
    }
}
