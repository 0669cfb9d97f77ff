//! The directory holding a run's SSH control socket, and the cleanup of
//! those a killed run left behind.
//!
//! Each runner makes a short private directory `/tmp/lbd-ssh*` for the
//! ControlMaster's socket and writes an `owner` file in it: this program's
//! pid and the process's start time. A run stopped normally removes the
//! directory and its master; a SIGKILL leaves both (the master lives on for
//! its idle bound, the directory for ever). The next runner to start
//! cleans up what is provably a leftover of ours: a directory owned by our
//! user, holding an `owner` file whose process is gone (or whose pid now
//! belongs to a process started at another time). Its master is told to
//! exit through its own socket (`ssh -O exit`), then the directory is
//! removed. A directory without an `owner` file, another user's, or one
//! whose owner still runs is never touched: the name alone proves nothing.

use std::fs;
use std::io;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

/// Prefix of the control directories (kept short: socket paths are
/// limited to ~108 bytes).
pub(crate) const PREFIX: &str = "lbd-ssh";

/// The file naming a control directory's owner.
const OWNER_FILE: &str = "owner";

/// What an `owner` file says: `lb-dfaas <pid> <start time>`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Owner {
    pub pid: u32,
    /// Start time of the process in clock ticks since boot
    /// (`/proc/<pid>/stat`, field 22), which tells a reused pid apart.
    pub start_ticks: u64,
}

impl Owner {
    /// This process, or `None` where `/proc` cannot tell its start time.
    pub(crate) fn current() -> Option<Owner> {
        let pid = std::process::id();
        Some(Owner {
            pid,
            start_ticks: start_ticks(pid)?,
        })
    }

    fn to_line(self) -> String {
        format!("lb-dfaas {} {}\n", self.pid, self.start_ticks)
    }

    fn parse(text: &str) -> Option<Owner> {
        let mut words = text.split_whitespace();
        if words.next()? != "lb-dfaas" {
            return None;
        }
        let pid = words.next()?.parse().ok()?;
        let start_ticks = words.next()?.parse().ok()?;
        words.next().is_none().then_some(Owner { pid, start_ticks })
    }

    /// Whether the process this names still runs.
    fn is_alive(self) -> bool {
        start_ticks(self.pid) == Some(self.start_ticks)
    }
}

/// Field 22 of `/proc/<pid>/stat`; `None` if there is no such process.
fn start_ticks(pid: u32) -> Option<u64> {
    let stat = fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    parse_start_ticks(&stat)
}

/// The start time from a `/proc/<pid>/stat` line. The command name (field
/// 2, in parentheses) may hold spaces and parentheses, so fields are
/// counted from the last `)`: field 3 is the first after it.
fn parse_start_ticks(stat: &str) -> Option<u64> {
    let after_name = &stat[stat.rfind(')')? + 1..];
    after_name.split_whitespace().nth(19)?.parse().ok()
}

/// Creates this run's control directory under `root`, with its `owner` file.
pub(crate) fn create(root: &Path) -> io::Result<tempfile::TempDir> {
    let dir = tempfile::Builder::new().prefix(PREFIX).tempdir_in(root)?;
    if let Some(owner) = Owner::current() {
        fs::write(dir.path().join(OWNER_FILE), owner.to_line())?;
    }
    Ok(dir)
}

/// Cleans up the control directories under `root` that killed runs of
/// this program left, keeping `own` (this run's). Returns the directories
/// removed. Best effort: whatever cannot be inspected is left alone.
pub(crate) fn clean_leftovers(root: &Path, own: &Path) -> Vec<PathBuf> {
    let Ok(own_meta) = fs::symlink_metadata(own) else {
        return Vec::new();
    };
    let Ok(entries) = fs::read_dir(root) else {
        return Vec::new();
    };
    let mut removed = Vec::new();
    for entry in entries.flatten() {
        let path = entry.path();
        let named_like_ours = entry.file_name().to_string_lossy().starts_with(PREFIX);
        if !named_like_ours || path == own {
            continue;
        }
        let Ok(meta) = fs::symlink_metadata(&path) else {
            continue;
        };
        if !meta.is_dir() || meta.uid() != own_meta.uid() {
            continue;
        }
        let owner_file = path.join(OWNER_FILE);
        let regular = fs::symlink_metadata(&owner_file).is_ok_and(|m| m.is_file() && m.len() < 256);
        let Some(owner) = regular
            .then(|| fs::read_to_string(&owner_file).ok())
            .flatten()
            .and_then(|text| Owner::parse(&text))
        else {
            continue;
        };
        if owner.is_alive() {
            continue;
        }
        for socket in control_sockets(&path) {
            stop_master(&socket);
        }
        if fs::remove_dir_all(&path).is_ok() {
            removed.push(path);
        }
    }
    removed
}

/// The master sockets in a control directory (`<dir>/.ssh-connection*/master`,
/// as the openssh crate lays them out).
fn control_sockets(dir: &Path) -> Vec<PathBuf> {
    let Ok(entries) = fs::read_dir(dir) else {
        return Vec::new();
    };
    entries
        .flatten()
        .map(|e| e.path().join("master"))
        .filter(|socket| {
            use std::os::unix::fs::FileTypeExt;
            fs::symlink_metadata(socket).is_ok_and(|m| m.file_type().is_socket())
        })
        .collect()
}

/// Asks the master behind `socket` to exit, waiting at most 5 s.
fn stop_master(socket: &Path) {
    let child = Command::new("ssh")
        .arg("-S")
        .arg(socket)
        .args(["-O", "exit", "lbd-leftover"])
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn();
    let Ok(mut child) = child else {
        return;
    };
    let deadline = Instant::now() + Duration::from_secs(5);
    while Instant::now() < deadline {
        if let Ok(Some(_)) = child.try_wait() {
            return;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    let _ = child.kill();
    let _ = child.wait();
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn owner_lines_round_trip_and_garbage_is_not_ours() {
        let owner = Owner {
            pid: 42,
            start_ticks: 123456,
        };
        assert_eq!(Owner::parse(&owner.to_line()), Some(owner));
        for bad in [
            "",
            "lb-dfaas",
            "lb-dfaas 1",
            "other 1 2",
            "lb-dfaas x 2",
            "lb-dfaas 1 2 3",
        ] {
            assert_eq!(Owner::parse(bad), None, "{bad:?}");
        }
    }

    #[test]
    fn start_time_is_read_past_a_command_name_with_spaces_and_parentheses() {
        let stat =
            "4242 (a b) c)) S 1 4242 4242 0 -1 4194560 100 0 0 0 1 2 0 0 20 0 1 0 987654 1000 10";
        assert_eq!(parse_start_ticks(stat), Some(987654));
        assert_eq!(parse_start_ticks("garbage"), None);
    }

    #[test]
    fn this_process_is_alive_and_a_finished_one_is_not() {
        let me = Owner::current().expect("/proc is readable here");
        assert!(me.is_alive());
        assert!(!Owner {
            start_ticks: me.start_ticks + 1,
            ..me
        }
        .is_alive());
        let mut child = Command::new("true").spawn().unwrap();
        let pid = child.id();
        child.wait().unwrap();
        assert!(!Owner {
            pid,
            start_ticks: me.start_ticks
        }
        .is_alive());
    }

    #[test]
    fn only_leftovers_of_dead_runs_are_removed() {
        let root = tempfile::tempdir().unwrap();
        let own = create(root.path()).unwrap();
        let me = Owner::current().unwrap();
        let make = |owner: Option<&str>| {
            let dir = tempfile::Builder::new()
                .prefix(PREFIX)
                .tempdir_in(root.path())
                .unwrap()
                .keep();
            if let Some(text) = owner {
                fs::write(dir.join(OWNER_FILE), text).unwrap();
            }
            dir
        };
        let dead = make(Some(&format!(
            "lb-dfaas {} {}\n",
            me.pid,
            me.start_ticks + 1
        )));
        let alive = make(Some(&me.to_line()));
        let unmarked = make(None);
        let foreign = make(Some("something else\n"));
        // Same name pattern, but a file: never ours.
        let file = root.path().join(format!("{PREFIX}-file"));
        fs::write(&file, "lb-dfaas 1 1\n").unwrap();

        let removed = clean_leftovers(root.path(), own.path());
        assert_eq!(removed, vec![dead.clone()]);
        assert!(!dead.exists());
        for kept in [
            &alive,
            &unmarked,
            &foreign,
            &file,
            &own.path().to_path_buf(),
        ] {
            assert!(kept.exists(), "{}", kept.display());
        }
    }
}
