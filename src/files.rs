//! The server's own files: created readable by their owner only (keys, users, tokens, audit log,
//! password files), replaced atomically, locked against a concurrent writer in another process,
//! and noticed when another process changes them (the users file, the signing key, the tokens
//! file) by a cheap `stat` compared with the last one seen.

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

/// Replaces `path` with `bytes`, readable by its owner only, atomically: a reader (or a crash)
/// sees the old content or the new, never a truncated file. The bytes go to `<path>.tmp` first,
/// so two writers of the same file must hold its [`lock_exclusive`] lock.
pub fn replace_private(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    let mut tmp = path.as_os_str().to_owned();
    tmp.push(".tmp");
    let tmp = PathBuf::from(tmp);
    write_private(&tmp, bytes)?;
    std::fs::rename(&tmp, path)?;
    // The rename itself is durable only once the directory is.
    #[cfg(unix)]
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::File::open(dir)?.sync_all()?;
    }
    Ok(())
}

/// An exclusive lock on an open file, released when dropped.
pub struct FileLock {
    /// A descriptor of its own on the locked file: `flock` locks belong to the open file, which
    /// this one shares, so the lock outlives no borrow of the caller's handle.
    file: std::fs::File,
}

impl Drop for FileLock {
    fn drop(&mut self) {
        #[cfg(unix)]
        {
            use std::os::unix::io::AsRawFd;
            // SAFETY: flock only takes a descriptor, which `self.file` keeps open for the call.
            unsafe {
                libc::flock(self.file.as_raw_fd(), libc::LOCK_UN);
            }
        }
    }
}

/// Waits for the exclusive lock on the open `file`, which serializes writers in different
/// processes (an operator command and a running server). The lock is advisory: it binds only the
/// writers that take it. Where the platform has no `flock`, it serializes nothing.
pub fn lock_open(file: &std::fs::File) -> std::io::Result<FileLock> {
    let file = file.try_clone()?;
    #[cfg(unix)]
    {
        use std::os::unix::io::AsRawFd;
        loop {
            // SAFETY: flock only takes a descriptor, which `file` keeps open for the call.
            if unsafe { libc::flock(file.as_raw_fd(), libc::LOCK_EX) } == 0 {
                break;
            }
            let error = std::io::Error::last_os_error();
            if error.kind() != std::io::ErrorKind::Interrupted {
                return Err(error);
            }
        }
    }
    Ok(FileLock { file })
}

/// Waits for the exclusive lock on `path` (created 0600 when absent): a lock file that
/// serializes the read-change-write of another file between processes (see [`lock_open`]).
pub fn lock_exclusive(path: &Path) -> std::io::Result<FileLock> {
    let mut options = std::fs::OpenOptions::new();
    options.read(true).write(true).create(true).truncate(false);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        options.mode(0o600);
    }
    lock_open(&options.open(path)?)
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
