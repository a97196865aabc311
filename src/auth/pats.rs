//! Personal access tokens for the HTTP mode: opaque bearer tokens (`mcps_` + 64 hex from the OS
//! CSPRNG) that an operator issues to a user with `mcp-sessions token create`. Only a keyed hash
//! of each token is kept, in `<data_dir>/tokens.json` (0600, replaced atomically), under a key of
//! its own (`<data_dir>/pat.key`): a copy of the file lets nobody in, and the hashes of two data
//! directories cannot be compared.
//!
//! The file is written by the operator commands and read by the server: every `verify` checks
//! with a cheap `stat` whether it changed, so a revocation in another process applies on the next
//! call. A file that cannot be read or parsed refuses every token until it is repaired (fail
//! closed). A verified record says who the token was issued to; the caller still checks that the
//! user exists and is enabled, as for every other credential.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, RwLock};

use hmac::{Hmac, Mac};
use serde::{Deserialize, Serialize};
use sha2::Sha256;

use crate::auth::secret::{SecretBytes, SecretString, fill_random};
use crate::files::FileWatch;

/// What every personal access token starts with, so that a leaked one is recognizable (secret
/// scanners) and never mistaken for a JWT.
pub const TOKEN_PREFIX: &str = "mcps_";
/// Random bytes in a token (64 hex characters after the prefix).
const TOKEN_RANDOM_BYTES: usize = 32;
/// Random bytes in a token's public id (32 hex characters).
const ID_RANDOM_BYTES: usize = 16;
/// The longest lifetime a token may be given: ten years, in seconds. Longer is a typo.
pub const MAX_TTL_SECS: u64 = 10 * 365 * 24 * 60 * 60;
/// Longest token name, in bytes.
pub const MAX_NAME_BYTES: usize = 64;
/// The format version of `tokens.json`.
const FILE_VERSION: u32 = 1;

#[derive(Debug, thiserror::Error)]
pub enum PatError {
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
    /// Never quotes the file's content: it holds the token hashes.
    #[error("{path} is not a valid tokens file: {reason}")]
    Parse { path: PathBuf, reason: String },
    #[error(
        "user `{username}` already has a token named `{name}`; choose another --name, or revoke that token first"
    )]
    DuplicateName { username: String, name: String },
    #[error("{0}")]
    NotFound(String),
    #[error("`{0}` names more than one token; revoke it by its id (see `mcp-sessions token list`)")]
    Ambiguous(String),
    #[error("{0}")]
    Policy(String),
    #[error("the operating system's random generator failed")]
    Random,
}

/// One issued token, as stored and listed. The token itself is never stored; `hash` (its keyed
/// hash) is private to this module and never printed.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PatRecord {
    /// Public id (32 hex): shown in lists and audit lines, used to revoke the token.
    pub id: String,
    pub user_id: String,
    pub username: String,
    /// The operator's label, unique per user.
    pub name: String,
    pub created_ms: u64,
    /// `None`: the token lives until revoked.
    #[serde(default)]
    pub expires_ms: Option<u64>,
    hash: String,
}

impl std::fmt::Debug for PatRecord {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PatRecord")
            .field("id", &self.id)
            .field("user_id", &self.user_id)
            .field("username", &self.username)
            .field("name", &self.name)
            .field("created_ms", &self.created_ms)
            .field("expires_ms", &self.expires_ms)
            .field("hash", &"[redacted]")
            .finish()
    }
}

impl PatRecord {
    pub fn is_expired(&self, now_ms: u64) -> bool {
        self.expires_ms.is_some_and(|expires| now_ms >= expires)
    }
}

#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct TokensFile {
    version: u32,
    #[serde(default)]
    tokens: Vec<PatRecord>,
}

/// Whether `token` has the shape of a personal access token (`mcps_` + 64 lowercase hex). Cheap:
/// the HTTP layer can tell a token from a JWT without hashing anything.
pub fn is_well_formed(token: &str) -> bool {
    token.strip_prefix(TOKEN_PREFIX).is_some_and(|hex| {
        hex.len() == 2 * TOKEN_RANDOM_BYTES
            && hex.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'))
    })
}

/// Checks an operator's token name: 1 to 64 letters, digits, `.`, `_`, `-`.
pub fn check_name(name: &str) -> Result<(), PatError> {
    let ok = !name.is_empty()
        && name.len() <= MAX_NAME_BYTES
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-'));
    if ok {
        Ok(())
    } else {
        Err(PatError::Policy(format!(
            "a token name has 1 to {MAX_NAME_BYTES} characters: letters, digits, '.', '_', '-'"
        )))
    }
}

/// Checks a lifetime in seconds: at least one second, at most ten years.
pub fn check_ttl(ttl_secs: u64) -> Result<(), PatError> {
    if ttl_secs == 0 {
        return Err(PatError::Policy(
            "a token's lifetime must be at least 1 second (leave --ttl out for a token that lives until revoked)".into(),
        ));
    }
    if ttl_secs > MAX_TTL_SECS {
        return Err(PatError::Policy(format!(
            "a token's lifetime is at most {MAX_TTL_SECS} seconds (10 years); {ttl_secs} was given"
        )));
    }
    Ok(())
}

/// What a serde error says about the file, without quoting it (it may quote a hash).
fn parse_reason(e: &serde_json::Error) -> String {
    use serde_json::error::Category;
    let what = match e.classify() {
        Category::Io => "it cannot be read",
        Category::Syntax => "it is not valid JSON",
        Category::Data => "a field is missing, unknown or of the wrong type",
        Category::Eof => "it ends early",
    };
    format!("{what} (line {}, column {})", e.line(), e.column())
}

/// The records of the tokens file at `path`; none when it does not exist.
pub fn read_file(path: &Path) -> Result<Vec<PatRecord>, PatError> {
    let bytes = match std::fs::read(path) {
        Ok(bytes) => bytes,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(source) => {
            return Err(PatError::Read {
                path: path.to_path_buf(),
                source,
            });
        }
    };
    let parse = |reason| PatError::Parse {
        path: path.to_path_buf(),
        reason,
    };
    let file: TokensFile = serde_json::from_slice(&bytes).map_err(|e| parse(parse_reason(&e)))?;
    if file.version != FILE_VERSION {
        return Err(parse(format!(
            "version {} is not the supported {FILE_VERSION}",
            file.version
        )));
    }
    Ok(file.tokens)
}

/// The tokens as last read, indexed by hash.
struct Snapshot {
    records: Vec<PatRecord>,
    by_hash: HashMap<String, usize>,
    /// False when the file changed into something unreadable: every token is refused.
    usable: bool,
}

impl Snapshot {
    fn of(records: Vec<PatRecord>) -> Self {
        let by_hash = records
            .iter()
            .enumerate()
            .map(|(index, record)| (record.hash.clone(), index))
            .collect();
        Self {
            records,
            by_hash,
            usable: true,
        }
    }

    fn unusable() -> Self {
        Self {
            records: Vec::new(),
            by_hash: HashMap::new(),
            usable: false,
        }
    }
}

struct Shared {
    path: PathBuf,
    /// Serializes the read-change-write of `path` between processes.
    lock_path: PathBuf,
    key: SecretBytes,
    watch: FileWatch,
    snapshot: RwLock<Arc<Snapshot>>,
    /// Serializes the writers of this process (the file lock is per descriptor, not per thread).
    writer: Mutex<()>,
    /// Serializes reloads: a caller that finds the file unchanged must not go on with the old
    /// snapshot while another caller, who saw the change first, is still reading the new one.
    reloading: Mutex<()>,
}

/// The personal access tokens. A cheap `Clone` handle; every method takes `&self`.
#[derive(Clone)]
pub struct PatStore {
    shared: Arc<Shared>,
}

impl PatStore {
    /// Opens the tokens file at `path` (absent: no tokens), whose hashes are keyed with `key`.
    /// A file that cannot be read or parsed is an error that names it.
    pub fn open(path: PathBuf, key: SecretBytes) -> Result<Self, PatError> {
        let watch = FileWatch::new(path.clone());
        let records = read_file(&path)?;
        let mut lock_path = path.as_os_str().to_owned();
        lock_path.push(".lock");
        Ok(Self {
            shared: Arc::new(Shared {
                lock_path: PathBuf::from(lock_path),
                path,
                key,
                watch,
                snapshot: RwLock::new(Arc::new(Snapshot::of(records))),
                writer: Mutex::new(()),
                reloading: Mutex::new(()),
            }),
        })
    }

    pub fn path(&self) -> &Path {
        &self.shared.path
    }

    fn current(&self) -> Arc<Snapshot> {
        match self.shared.snapshot.read() {
            Ok(guard) => guard.clone(),
            Err(poisoned) => poisoned.into_inner().clone(),
        }
    }

    fn install(&self, snapshot: Snapshot) {
        let mut guard = self
            .shared
            .snapshot
            .write()
            .unwrap_or_else(|p| p.into_inner());
        *guard = Arc::new(snapshot);
    }

    /// Re-reads the file when another process (or this one) changed it since the last look.
    fn refresh(&self) {
        let _one_at_a_time = self
            .shared
            .reloading
            .lock()
            .unwrap_or_else(|p| p.into_inner());
        if !self.shared.watch.changed() {
            return;
        }
        match read_file(&self.shared.path) {
            Ok(records) => self.install(Snapshot::of(records)),
            Err(e) => {
                tracing::error!(
                    "the tokens file changed but cannot be used; every personal access token is refused until it is repaired: {e}"
                );
                self.install(Snapshot::unusable());
            }
        }
    }

    /// The keyed hash under which `token` is stored (64 hex).
    fn hash(&self, token: &str) -> String {
        match Hmac::<Sha256>::new_from_slice(self.shared.key.expose()) {
            Ok(mut mac) => {
                mac.update(b"mcp-sessions pat v1:");
                mac.update(token.as_bytes());
                hex::encode(mac.finalize().into_bytes())
            }
            // HMAC takes a key of any length; an empty hash matches no record.
            Err(_) => String::new(),
        }
    }

    /// Reads the file under its lock, lets `change` edit the records, drops the expired ones
    /// (`now_ms`), writes the file atomically and makes the result this process's view.
    fn update<T>(
        &self,
        now_ms: Option<u64>,
        change: impl FnOnce(&mut Vec<PatRecord>) -> Result<T, PatError>,
    ) -> Result<T, PatError> {
        let _writer = self.shared.writer.lock().unwrap_or_else(|p| p.into_inner());
        let path = &self.shared.path;
        let write_err = |source| PatError::Write {
            path: path.clone(),
            source,
        };
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            crate::files::ensure_private_dir(dir).map_err(write_err)?;
        }
        let _lock = crate::files::lock_exclusive(&self.shared.lock_path).map_err(write_err)?;
        // Another process may have written since this one last looked: change what is on disk.
        let mut records = read_file(path)?;
        let result = change(&mut records)?;
        if let Some(now_ms) = now_ms {
            records.retain(|r| !r.is_expired(now_ms));
        }
        let file = TokensFile {
            version: FILE_VERSION,
            tokens: records,
        };
        let mut bytes = serde_json::to_vec_pretty(&file).map_err(|e| write_err(e.into()))?;
        bytes.push(b'\n');
        crate::files::replace_private(path, &bytes).map_err(write_err)?;
        self.install(Snapshot::of(file.tokens));
        Ok(result)
    }

    /// Issues a token to the user: named `name` (default `token-<first 8 of its id>`, unique per
    /// user), expiring `ttl_secs` after `now_ms` (never when `None`). Returns its record and the
    /// token, which exists nowhere else: show it once.
    pub fn create(
        &self,
        user_id: &str,
        username: &str,
        name: Option<&str>,
        ttl_secs: Option<u64>,
        now_ms: u64,
    ) -> Result<(PatRecord, SecretString), PatError> {
        if let Some(name) = name {
            check_name(name)?;
        }
        if let Some(ttl) = ttl_secs {
            check_ttl(ttl)?;
        }
        let mut random = [0u8; TOKEN_RANDOM_BYTES];
        fill_random(&mut random).map_err(|_| PatError::Random)?;
        let token = SecretString::new(format!("{TOKEN_PREFIX}{}", hex::encode(random)));
        zeroize::Zeroize::zeroize(&mut random);
        let hash = self.hash(token.expose());
        let expires_ms = ttl_secs.map(|ttl| now_ms.saturating_add(ttl.saturating_mul(1000)));
        let record = self.update(Some(now_ms), |records| {
            let id = loop {
                let mut bytes = [0u8; ID_RANDOM_BYTES];
                fill_random(&mut bytes).map_err(|_| PatError::Random)?;
                let id = hex::encode(bytes);
                if !records.iter().any(|r| r.id == id) {
                    break id;
                }
            };
            let name = name.map_or_else(|| format!("token-{}", &id[..8]), str::to_owned);
            if records
                .iter()
                .any(|r| r.user_id == user_id && r.name == name && !r.is_expired(now_ms))
            {
                return Err(PatError::DuplicateName {
                    username: username.to_owned(),
                    name,
                });
            }
            let record = PatRecord {
                id,
                user_id: user_id.to_owned(),
                username: username.to_owned(),
                name,
                created_ms: now_ms,
                expires_ms,
                hash,
            };
            records.push(record.clone());
            Ok(record)
        })?;
        Ok((record, token))
    }

    /// Every token on record (expired ones too, until the next write drops them), oldest first.
    pub fn list(&self) -> Vec<PatRecord> {
        self.refresh();
        self.current().records.clone()
    }

    /// Revokes a token: by its id, or, when `username` is given, by that user's token name (or
    /// id). An unknown or ambiguous one is an error and changes nothing.
    pub fn revoke(
        &self,
        id_or_name: &str,
        username: Option<&str>,
        now_ms: u64,
    ) -> Result<PatRecord, PatError> {
        self.update(Some(now_ms), |records| {
            let matches: Vec<usize> = records
                .iter()
                .enumerate()
                .filter(|(_, r)| match username {
                    Some(username) => {
                        r.username == username && (r.name == id_or_name || r.id == id_or_name)
                    }
                    None => r.id == id_or_name,
                })
                .map(|(index, _)| index)
                .collect();
            match matches.as_slice() {
                [index] => Ok(records.remove(*index)),
                [] => Err(PatError::NotFound(match username {
                    Some(username) => {
                        format!("user `{username}` has no token named `{id_or_name}`")
                    }
                    None if records.iter().any(|r| r.name == id_or_name) => format!(
                        "no token has the id `{id_or_name}`; to revoke by name, give its user: token revoke --user USER {id_or_name}"
                    ),
                    None => format!("no token has the id `{id_or_name}`"),
                })),
                _ => Err(PatError::Ambiguous(id_or_name.to_owned())),
            }
        })
    }

    /// Revokes every token of the user (when the user is removed); how many there were.
    pub fn revoke_user(&self, user_id: &str) -> Result<usize, PatError> {
        if !self.shared.path.exists() {
            return Ok(0);
        }
        self.update(None, |records| {
            let before = records.len();
            records.retain(|r| r.user_id != user_id);
            Ok(before - records.len())
        })
    }

    /// The record of `token` when it is a live token on record. A malformed token costs no hash;
    /// a well-formed one costs one HMAC and a `stat` of the file.
    pub fn verify(&self, token: &str, now_ms: u64) -> Option<PatRecord> {
        if !is_well_formed(token) {
            return None;
        }
        self.refresh();
        let snapshot = self.current();
        if !snapshot.usable {
            return None;
        }
        // A map lookup by the keyed hash leaks nothing useful by its timing: without the key, a
        // caller cannot aim at a hash.
        let index = *snapshot.by_hash.get(&self.hash(token))?;
        snapshot
            .records
            .get(index)
            .filter(|record| !record.is_expired(now_ms))
            .cloned()
    }
}

/// How many tokens the file at `path` holds, for `doctor` (which has no key).
pub fn count_in(path: &Path) -> Result<usize, PatError> {
    read_file(path).map(|records| records.len())
}

#[cfg(test)]
mod tests {
    use super::*;

    const NOW: u64 = 1_795_305_599_123;

    fn key() -> SecretBytes {
        SecretBytes::new(vec![9u8; 32])
    }

    fn store(dir: &Path) -> PatStore {
        PatStore::open(dir.join("tokens.json"), key()).unwrap()
    }

    #[test]
    fn create_verify_revoke() {
        let dir = tempfile::tempdir().unwrap();
        let pats = store(dir.path());
        let (record, token) = pats.create("u1", "alice", None, None, NOW).unwrap();
        assert!(is_well_formed(token.expose()), "{}", token.expose().len());
        assert_eq!(record.id.len(), 32);
        assert_eq!(record.name, format!("token-{}", &record.id[..8]));
        assert_eq!(record.expires_ms, None);
        assert_eq!(pats.verify(token.expose(), NOW + 1), Some(record.clone()));
        assert_eq!(pats.list(), vec![record.clone()]);

        // One character off, a JWT, a wrong prefix, upper case: refused.
        let mut other = token.expose().to_owned();
        let last = if other.ends_with('0') { "1" } else { "0" };
        other.replace_range(other.len() - 1.., last);
        assert_eq!(pats.verify(&other, NOW), None);
        assert_eq!(pats.verify("eyJhbGciOiJIUzI1NiJ9.e30.x", NOW), None);
        assert_eq!(pats.verify(&token.expose().to_uppercase(), NOW), None);
        assert_eq!(pats.verify(&token.expose()[1..], NOW), None);

        let revoked = pats.revoke(&record.id, None, NOW).unwrap();
        assert_eq!(revoked.id, record.id);
        assert_eq!(pats.verify(token.expose(), NOW), None);
        assert!(pats.list().is_empty());
        assert!(matches!(
            pats.revoke(&record.id, None, NOW),
            Err(PatError::NotFound(_))
        ));
    }

    #[test]
    fn revoke_by_name_needs_the_user() {
        let dir = tempfile::tempdir().unwrap();
        let pats = store(dir.path());
        let (_, alice) = pats.create("u1", "alice", Some("ci"), None, NOW).unwrap();
        let (_, bob) = pats.create("u2", "bob", Some("ci"), None, NOW).unwrap();
        let Err(PatError::NotFound(message)) = pats.revoke("ci", None, NOW) else {
            panic!("revoked by name without a user");
        };
        assert!(message.contains("--user"), "{message}");
        assert!(matches!(
            pats.revoke("ci", Some("carol"), NOW),
            Err(PatError::NotFound(_))
        ));
        let revoked = pats.revoke("ci", Some("bob"), NOW).unwrap();
        assert_eq!(revoked.username, "bob");
        assert!(pats.verify(bob.expose(), NOW).is_none());
        assert!(pats.verify(alice.expose(), NOW).is_some(), "alice's ci too");
    }

    #[test]
    fn duplicate_names_are_refused_per_user() {
        let dir = tempfile::tempdir().unwrap();
        let pats = store(dir.path());
        pats.create("u1", "alice", Some("laptop"), None, NOW)
            .unwrap();
        let Err(e) = pats.create("u1", "alice", Some("laptop"), None, NOW) else {
            panic!("a second `laptop` for alice");
        };
        assert!(matches!(e, PatError::DuplicateName { .. }));
        assert!(e.to_string().contains("laptop"), "{e}");
        assert!(pats.create("u2", "bob", Some("laptop"), None, NOW).is_ok());
        assert_eq!(pats.list().len(), 2);
        assert!(matches!(
            pats.create("u1", "alice", Some("has space"), None, NOW),
            Err(PatError::Policy(_))
        ));
    }

    #[test]
    fn tokens_expire_and_lifetimes_are_bounded() {
        let dir = tempfile::tempdir().unwrap();
        let pats = store(dir.path());
        let (record, token) = pats.create("u1", "alice", None, Some(60), NOW).unwrap();
        assert_eq!(record.expires_ms, Some(NOW + 60_000));
        assert!(pats.verify(token.expose(), NOW + 59_999).is_some());
        assert!(pats.verify(token.expose(), NOW + 60_000).is_none());
        for ttl in [0, MAX_TTL_SECS + 1] {
            assert!(matches!(
                pats.create("u1", "alice", None, Some(ttl), NOW),
                Err(PatError::Policy(_))
            ));
        }
        assert!(
            pats.create("u1", "alice", None, Some(MAX_TTL_SECS), NOW)
                .is_ok()
        );
        // The next write drops what has expired.
        pats.create("u1", "alice", None, None, NOW + 60_000)
            .unwrap();
        assert!(!pats.list().iter().any(|r| r.id == record.id));
    }

    #[test]
    fn another_process_sees_creations_and_revocations() {
        let dir = tempfile::tempdir().unwrap();
        let server = store(dir.path());
        let operator = store(dir.path());
        let (record, token) = operator.create("u1", "alice", None, None, NOW).unwrap();
        assert!(server.verify(token.expose(), NOW).is_some());
        let (_, second) = operator.create("u1", "alice", None, None, NOW).unwrap();
        assert!(server.verify(second.expose(), NOW).is_some());
        operator.revoke(&record.id, None, NOW).unwrap();
        assert!(server.verify(token.expose(), NOW).is_none());
        assert!(server.verify(second.expose(), NOW).is_some());
        // A writer starts from the file, not from its own (stale) view.
        let (_, third) = server.create("u1", "alice", None, None, NOW).unwrap();
        assert_eq!(operator.list().len(), 2);
        assert!(operator.verify(third.expose(), NOW).is_some());
        assert_eq!(server.revoke_user("u1").unwrap(), 2);
        assert!(operator.verify(second.expose(), NOW).is_none());
    }

    #[test]
    fn a_corrupt_file_refuses_every_token_until_repaired() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("tokens.json");
        let pats = store(dir.path());
        let (_, token) = pats.create("u1", "alice", None, None, NOW).unwrap();
        let good = std::fs::read(&path).unwrap();
        std::fs::write(&path, b"{\"version\": 1, \"tokens\": [").unwrap();
        assert!(pats.verify(token.expose(), NOW).is_none());
        let Err(e) = PatStore::open(path.clone(), key()) else {
            panic!("a corrupt file opened");
        };
        assert!(e.to_string().contains("tokens.json"), "{e}");
        assert!(
            pats.create("u1", "alice", None, None, NOW).is_err(),
            "a write over a corrupt file"
        );
        std::fs::write(&path, &good).unwrap();
        assert!(pats.verify(token.expose(), NOW).is_some());
    }

    #[test]
    fn the_file_holds_hashes_only_and_is_private() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("tokens.json");
        let pats = store(dir.path());
        let (record, token) = pats.create("u1", "alice", None, None, NOW).unwrap();
        let text = std::fs::read_to_string(&path).unwrap();
        let random = &token.expose()[TOKEN_PREFIX.len()..];
        assert!(!text.contains(random), "the token is in the file");
        assert!(text.contains(&record.hash));
        assert!(!format!("{record:?}").contains(&record.hash));
        // The hash is keyed: another key does not find the token.
        let other = PatStore::open(path.clone(), SecretBytes::new(vec![8u8; 32])).unwrap();
        assert!(other.verify(token.expose(), NOW).is_none());
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = std::fs::metadata(&path).unwrap().permissions().mode();
            assert_eq!(mode & 0o777, 0o600);
        }
        assert!(!dir.path().join("tokens.json.tmp").exists());
    }
}
