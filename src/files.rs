//! The server's own files: created readable by their owner only (keys, users, audit log,
//! password files), and noticed when another process changes them (the users file, the signing
//! key) by a cheap `stat` compared with the last one seen.

use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::time::SystemTime;

/// Creates `dir` (and parents) with owner-only permissions where the platform has them.
pub fn ensure_private_dir(dir: &Path) -> std::io::Result<()> {
    #[cfg(unix)]
    {
        use std::os::unix::fs::DirBuilderExt;
        std::fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(dir)
    }
    #[cfg(not(unix))]
    {
        std::fs::create_dir_all(dir)
    }
}

/// Writes `bytes` to a new file readable by its owner only.
pub fn write_private(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    use std::io::Write;
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create(true).truncate(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        options.mode(0o600);
    }
    let mut file = options.open(path)?;
    file.write_all(bytes)?;
    file.sync_all()
}

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
