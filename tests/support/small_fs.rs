//! A small tmpfs mounted for one test, to meet a full disk (ENOSPC) or a
//! read-only filesystem (EROFS) for real. Mounting needs root (CI runs as
//! root); where it is not permitted, [`SmallFs::mount`] returns `None`
//! after printing why, and the test returns early.
//!
//! Included with `#[path]` by the tests that need it (unit and
//! integration tests alike), so it uses std only.
#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::Command;

/// A tmpfs mounted on a fresh temporary directory; unmounted in `Drop`.
pub struct SmallFs {
    dir: tempfile::TempDir,
}

impl SmallFs {
    /// A tmpfs of `size_kib` KiB; `read_only` mounts it read-only.
    pub fn mount(size_kib: u32, read_only: bool) -> Option<SmallFs> {
        let dir = tempfile::tempdir().ok()?;
        let mut options = format!("size={size_kib}k,mode=0755");
        if read_only {
            options.push_str(",ro");
        }
        let result = Command::new("mount")
            .args(["-t", "tmpfs", "-o", &options, "lbd-test-tmpfs"])
            .arg(dir.path())
            .output();
        match result {
            Ok(out) if out.status.success() => Some(SmallFs { dir }),
            Ok(out) => {
                eprintln!(
                    "skipped: mounting a tmpfs is not permitted here ({}): {}",
                    out.status,
                    String::from_utf8_lossy(&out.stderr).trim()
                );
                None
            }
            Err(e) => {
                eprintln!("skipped: cannot run mount to make a tmpfs: {e}");
                None
            }
        }
    }

    pub fn path(&self) -> &Path {
        self.dir.path()
    }

    pub fn join(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    /// Fills the filesystem: writes a ballast file until the disk is full,
    /// then frees `keep_kib` KiB of it again.
    pub fn fill_leaving(&self, keep_kib: u64) {
        use std::io::Write;
        let ballast = self.join(".ballast");
        let mut file = std::fs::File::create(&ballast).expect("create the ballast file");
        let block = vec![0u8; 4096];
        let mut written: u64 = 0;
        while file.write_all(&block).is_ok() {
            written += block.len() as u64;
        }
        let keep = keep_kib * 1024;
        file.set_len(written.saturating_sub(keep))
            .expect("shrink the ballast file");
        file.sync_all().ok();
    }
}

impl Drop for SmallFs {
    fn drop(&mut self) {
        let unmounted = Command::new("umount")
            .arg(self.dir.path())
            .status()
            .is_ok_and(|s| s.success());
        if !unmounted {
            let _ = Command::new("umount")
                .arg("-l")
                .arg(self.dir.path())
                .status();
        }
    }
}
