//! The user store: `<config_dir>/users.toml` (id, username, roles, argon2id PHC hash, disabled),
//! plus the demo users when asked for. The server re-reads the file whenever it changes on disk,
//! so `mcp-sessions user disable|passwd|remove` run in another process applies on the next call.
//! Password hashing and verification are CPU-heavy and run on the blocking pool.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, RwLock};

use argon2::{Argon2, PasswordHasher, PasswordVerifier};
use serde::{Deserialize, Serialize};

use crate::auth::secret::SecretString;
use crate::files::{FileStamp, stamp_of};

/// Shortest new password, in characters (NIST SP 800-63B-4 for single-factor passwords).
pub const MIN_PASSWORD_CHARS: usize = 15;
/// Longest password, in bytes; longer ones are refused, never truncated.
pub const MAX_PASSWORD_BYTES: usize = 1024;
/// Longest username, in bytes.
pub const MAX_USERNAME_BYTES: usize = 64;

/// A hash of a password nobody knows, verified for unknown usernames so that they cost the same
/// time as a wrong password (no user enumeration by timing).
const DUMMY_HASH: &str = "$argon2id$v=19$m=19456,t=2,p=1$bG9naW4tZHVtbXktc2FsdA$jgLQQAC5hdTcR1fw/l9JMbGSpNpB/OWMf3qD3ck/+UY";

/// The demo users (`--demo`), with hashes computed once offline so that start-up stays instant.
const DEMO_USERS: [(&str, &str, &str, &str); 3] = [
    (
        "00000000-0000-4000-8000-00000000d001",
        "admin",
        "admin",
        "$argon2id$v=19$m=19456,t=2,p=1$ZGVtby1hZG1pbi1zYWx0$1gJLcByhWjctZb8B7VOBG9kw3xneFha02E4dHbRJ4sI",
    ),
    (
        "00000000-0000-4000-8000-00000000d002",
        "demo",
        "user",
        "$argon2id$v=19$m=19456,t=2,p=1$ZGVtby11c2VyLXNhbHQ$zQhD959g3NJy7IahR5RSW5MTSd1qcyptOMKULgW8HEk",
    ),
    (
        "00000000-0000-4000-8000-00000000d003",
        "viewer",
        "viewer",
        "$argon2id$v=19$m=19456,t=2,p=1$ZGVtby12aWV3ZXItc2FsdA$df+qRnNAqw5hTuJ2v7wmKnKtL8IW9hn17xXGrQTVxp4",
    ),
];

#[derive(Debug, thiserror::Error)]
pub enum UserError {
    #[error("cannot read {path}: {source}")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("cannot write {path}: {source}")]
    Write {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{path} is not a valid users file: {reason}")]
    Parse { path: PathBuf, reason: String },
    #[error("user `{0}` already exists")]
    Exists(String),
    #[error(
        "`{requested}` would look like the existing user `{existing}`: names that differ only in case are the same name; choose another"
    )]
    Lookalike { requested: String, existing: String },
    #[error("no user `{0}`")]
    NotFound(String),
    #[error("{0}")]
    Policy(String),
    #[error("password hashing failed")]
    Hash,
}

/// One user as stored in `users.toml`.
#[derive(Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct UserRecord {
    pub id: String,
    pub username: String,
    pub roles: Vec<String>,
    pub password_hash: String,
    #[serde(default)]
    pub disabled: bool,
}

impl std::fmt::Debug for UserRecord {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("UserRecord")
            .field("id", &self.id)
            .field("username", &self.username)
            .field("roles", &self.roles)
            .field("password_hash", &"[redacted]")
            .field("disabled", &self.disabled)
            .finish()
    }
}

impl UserRecord {
    /// A short fingerprint of the credential: a session remembers it at login and ends when the
    /// password (and so the hash) changes.
    pub fn credential_stamp(&self) -> u64 {
        use sha2::{Digest, Sha256};
        let digest = Sha256::digest(self.password_hash.as_bytes());
        let mut bytes = [0u8; 8];
        bytes.copy_from_slice(&digest[..8]);
        u64::from_le_bytes(bytes)
    }
}

#[derive(Debug, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct UsersFile {
    #[serde(default)]
    pub users: Vec<UserRecord>,
}

impl UsersFile {
    pub fn load(path: &Path) -> Result<Self, UserError> {
        match std::fs::read_to_string(path) {
            Ok(text) => toml::from_str(&text).map_err(|e| UserError::Parse {
                path: path.to_path_buf(),
                reason: e.to_string(),
            }),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(Self::default()),
            Err(source) => Err(UserError::Read {
                path: path.to_path_buf(),
                source,
            }),
        }
    }

    /// Writes atomically (temp file + rename) with owner-only permissions.
    pub fn save(&self, path: &Path) -> Result<(), UserError> {
        let write_err = |source| UserError::Write {
            path: path.to_path_buf(),
            source,
        };
        if let Some(dir) = path.parent() {
            crate::files::ensure_private_dir(dir).map_err(write_err)?;
        }
        let text = toml::to_string(self).map_err(|e| UserError::Parse {
            path: path.to_path_buf(),
            reason: e.to_string(),
        })?;
        let tmp = path.with_extension("toml.tmp");
        crate::files::write_private(&tmp, text.as_bytes()).map_err(write_err)?;
        std::fs::rename(&tmp, path).map_err(write_err)
    }

    /// Whether `username` may name a new user: no user has it, nor the same name in another case
    /// (usernames are ASCII, see [`check_username`], so folding the case is all NFKC would do).
    pub fn check_available(&self, username: &str) -> Result<(), UserError> {
        match self
            .users
            .iter()
            .find(|u| u.username.eq_ignore_ascii_case(username))
        {
            None => Ok(()),
            Some(u) if u.username == username => Err(UserError::Exists(username.to_owned())),
            Some(u) => Err(UserError::Lookalike {
                requested: username.to_owned(),
                existing: u.username.clone(),
            }),
        }
    }

    pub fn find_mut(&mut self, username: &str) -> Result<&mut UserRecord, UserError> {
        self.users
            .iter_mut()
            .find(|u| u.username == username)
            .ok_or_else(|| UserError::NotFound(username.to_owned()))
    }
}

/// Checks a username: 1 to 64 bytes of letters, digits, `.`, `_`, `-`, `@`.
pub fn check_username(username: &str) -> Result<(), UserError> {
    let ok = !username.is_empty()
        && username.len() <= MAX_USERNAME_BYTES
        && username
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-' | '@'));
    if ok {
        Ok(())
    } else {
        Err(UserError::Policy(format!(
            "a username has 1 to {MAX_USERNAME_BYTES} characters: letters, digits, '.', '_', '-', '@'"
        )))
    }
}

/// The policy for new passwords (S12): at least 15 characters, at most 1024 bytes.
pub fn check_new_password(password: &str) -> Result<(), UserError> {
    if password.chars().count() < MIN_PASSWORD_CHARS {
        return Err(UserError::Policy(format!(
            "a password needs at least {MIN_PASSWORD_CHARS} characters"
        )));
    }
    if password.len() > MAX_PASSWORD_BYTES {
        return Err(UserError::Policy(format!(
            "a password has at most {MAX_PASSWORD_BYTES} bytes"
        )));
    }
    Ok(())
}

/// argon2id (m=19456 KiB, t=2, p=1) PHC string with a fresh salt. Blocking: call it off the runtime.
pub fn hash_password(password: &SecretString) -> Result<String, UserError> {
    Argon2::default()
        .hash_password(password.expose().as_bytes())
        .map(|hash| hash.to_string())
        .map_err(|_| UserError::Hash)
}

/// Whether `password` matches the PHC `hash`. Blocking: call it off the runtime.
pub fn verify_password(password: &SecretString, hash: &str) -> bool {
    Argon2::default()
        .verify_password(password.expose().as_bytes(), hash)
        .is_ok()
}

/// A user as the server sees it.
pub type User = Arc<UserRecord>;

#[derive(Default)]
struct Snapshot {
    by_id: HashMap<String, User>,
    by_name: HashMap<String, User>,
    stamp: Option<FileStamp>,
}

struct Shared {
    path: PathBuf,
    demo: bool,
    /// Password verifications allowed at once: one fewer than the cores (at least one), so a
    /// core stays free for the tools.
    verifiers: tokio::sync::Semaphore,
    /// The threads that run them, started on the first login: threads of their own, so that no
    /// flood of other blocking work (browser calls on the runtime's blocking pool) delays a login.
    threads: std::sync::OnceLock<VerifierThreads>,
    snapshot: RwLock<Arc<Snapshot>>,
}

type VerifyJob = Box<dyn FnOnce() + Send>;

/// A fixed set of threads taking password checks from one queue.
struct VerifierThreads {
    jobs: std::sync::Mutex<std::sync::mpsc::Sender<VerifyJob>>,
}

impl VerifierThreads {
    fn start(count: usize) -> Self {
        let (jobs, queue) = std::sync::mpsc::channel::<VerifyJob>();
        let queue = Arc::new(std::sync::Mutex::new(queue));
        for n in 0..count {
            let queue = queue.clone();
            let started = std::thread::Builder::new()
                .name(format!("argon2-{n}"))
                .spawn(move || {
                    loop {
                        let job = queue.lock().unwrap_or_else(|p| p.into_inner()).recv();
                        match job {
                            Ok(job) => job(),
                            Err(_) => return,
                        }
                    }
                });
            if let Err(e) = started {
                tracing::error!("cannot start a password-check thread: {e}");
            }
        }
        Self {
            jobs: std::sync::Mutex::new(jobs),
        }
    }

    /// Runs `check` on one of the threads; `false` if none can take it.
    async fn run(&self, check: impl FnOnce() -> bool + Send + 'static) -> bool {
        let (tx, rx) = tokio::sync::oneshot::channel();
        let job: VerifyJob = Box::new(move || {
            let _ = tx.send(check());
        });
        let sent = self
            .jobs
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .send(job);
        sent.is_ok() && rx.await.unwrap_or(false)
    }
}

/// Read access to the users, reloaded when the file changes. A cheap `Clone` handle.
#[derive(Clone)]
pub struct UserStore {
    shared: Arc<Shared>,
}

/// Password verifications at once: one fewer than the cores (at least one).
fn verifier_count() -> usize {
    std::thread::available_parallelism()
        .map_or(1, |n| n.get().saturating_sub(1))
        .max(1)
}

impl UserStore {
    /// Loads `path`; with `demo`, the demo users are added (file users of the same name win).
    pub fn open(path: PathBuf, demo: bool) -> Result<Self, UserError> {
        let store = Self {
            shared: Arc::new(Shared {
                path,
                demo,
                verifiers: tokio::sync::Semaphore::new(verifier_count()),
                threads: std::sync::OnceLock::new(),
                snapshot: RwLock::new(Arc::new(Snapshot::default())),
            }),
        };
        store.reload()?;
        Ok(store)
    }

    fn reload(&self) -> Result<(), UserError> {
        let stamp = stamp_of(&self.shared.path);
        let file = UsersFile::load(&self.shared.path)?;
        let mut records = file.users;
        if self.shared.demo {
            for (id, name, role, hash) in DEMO_USERS {
                if !records.iter().any(|u| u.username == name) {
                    records.push(UserRecord {
                        id: id.to_owned(),
                        username: name.to_owned(),
                        roles: vec![role.to_owned()],
                        password_hash: hash.to_owned(),
                        disabled: false,
                    });
                }
            }
        }
        let mut snapshot = Snapshot {
            stamp,
            ..Snapshot::default()
        };
        for record in records {
            let user = Arc::new(record);
            snapshot.by_name.insert(user.username.clone(), user.clone());
            snapshot.by_id.insert(user.id.clone(), user);
        }
        if let Ok(mut guard) = self.shared.snapshot.write() {
            *guard = Arc::new(snapshot);
        }
        Ok(())
    }

    fn current(&self) -> Arc<Snapshot> {
        match self.shared.snapshot.read() {
            Ok(guard) => guard.clone(),
            Err(poisoned) => poisoned.into_inner().clone(),
        }
    }

    /// Re-reads the file if it changed since the last read; true when it did. A file that fails
    /// to parse keeps the previous users (and is logged), so a half-edited file locks nobody in.
    pub fn refresh(&self) -> bool {
        let stamp = stamp_of(&self.shared.path);
        if stamp == self.current().stamp {
            return false;
        }
        match self.reload() {
            Ok(()) => true,
            Err(e) => {
                tracing::error!("users file changed but cannot be used: {e}");
                false
            }
        }
    }

    pub fn by_name(&self, username: &str) -> Option<User> {
        self.current().by_name.get(username).cloned()
    }

    pub fn by_id(&self, id: &str) -> Option<User> {
        self.current().by_id.get(id).cloned()
    }

    /// Checks `password` for `username` on the blocking pool. Unknown and disabled users cost a
    /// verification too and answer `None`, exactly like a wrong password.
    pub async fn authenticate(&self, username: &str, password: SecretString) -> Option<User> {
        self.refresh();
        let user = self.by_name(username);
        let hash = match &user {
            Some(user) => user.password_hash.clone(),
            None => DUMMY_HASH.to_owned(),
        };
        // argon2 takes 19 MiB and a core for ~20 ms: at most `verifiers` run at once, so a burst
        // of logins neither starves the runtime of CPU nor grows memory with the burst.
        let Ok(_permit) = self.shared.verifiers.acquire().await else {
            return None;
        };
        let threads = self
            .shared
            .threads
            .get_or_init(|| VerifierThreads::start(verifier_count()));
        let verified = threads.run(move || verify_password(&password, &hash)).await;
        user.filter(|u| verified && !u.disabled)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn demo_hashes_match_demo_passwords() {
        for ((_, name, _, hash), password) in
            DEMO_USERS
                .iter()
                .zip(["admin123!", "demo123!", "viewer123!"])
        {
            assert!(
                verify_password(&SecretString::new(password.into()), hash),
                "{name}"
            );
            assert!(
                !verify_password(&SecretString::new("wrong".into()), hash),
                "{name}"
            );
        }
        assert!(DUMMY_HASH.starts_with("$argon2id$v=19$m=19456,t=2,p=1$"));
    }

    #[test]
    fn hashes_are_argon2id_owasp_params() -> Result<(), UserError> {
        let hash = hash_password(&SecretString::new("correct horse battery staple".into()))?;
        assert!(
            hash.starts_with("$argon2id$v=19$m=19456,t=2,p=1$"),
            "{hash}"
        );
        assert!(verify_password(
            &SecretString::new("correct horse battery staple".into()),
            &hash
        ));
        Ok(())
    }

    #[test]
    fn password_policy() {
        assert!(check_new_password("short").is_err());
        assert!(check_new_password("fifteen chars!!").is_ok());
        assert!(check_new_password(&"é".repeat(600)).is_err());
        assert!(check_new_password(&"a".repeat(1024)).is_ok());
        assert!(check_new_password(&"a".repeat(1025)).is_err());
    }

    #[test]
    fn username_policy() {
        assert!(check_username("alice@example.com").is_ok());
        assert!(check_username("").is_err());
        assert!(check_username("bob smith").is_err());
        assert!(check_username(&"a".repeat(65)).is_err());
    }
}
