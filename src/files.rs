//! Noticing that a file was changed by another process (the users file, the signing key): a
//! cheap `stat` compared with the last one seen.

use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::time::SystemTime;

/// Identifies a version of a file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FileStamp {
    modified: Option<SystemTime>,
    len: u64,
    #[cfg(unix)]
    inode: u64,
}

/// The stamp of `path` now; `None` when it does not exist.
pub fn stamp_of(path: &Path) -> Option<FileStamp> {
    let meta = std::fs::metadata(path).ok()?;
    Some(FileStamp {
        modified: meta.modified().ok(),
        len: meta.len(),
        #[cfg(unix)]
        inode: std::os::unix::fs::MetadataExt::ino(&meta),
    })
}

/// Watches one file.
pub struct FileWatch {
    path: PathBuf,
    last: Mutex<Option<FileStamp>>,
}

impl FileWatch {
    /// Starts watching `path` as it is now.
    pub fn new(path: PathBuf) -> Self {
        let last = Mutex::new(stamp_of(&path));
        Self { path, last }
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Whether the file changed since the last call (or since `new`).
    pub fn changed(&self) -> bool {
        let now = stamp_of(&self.path);
        let mut last = self.last.lock().unwrap_or_else(|p| p.into_inner());
        if *last == now {
            return false;
        }
        *last = now;
        true
    }
}
