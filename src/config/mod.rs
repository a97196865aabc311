//! Configuration: `<config_dir>/config.toml`, overridden by `MCP_SESSIONS_*` environment
//! variables, overridden by `--set key=value` flags. Every timeout and limit is a key so tests can
//! shrink them. Layers are merged as TOML tables and parsed once into a validated [`Config`];
//! an unknown key or a bad value stops start-up with a message that names the key. The rules of
//! two sections belong to the parts they configure (permission names to `auth::rbac`, origin
//! patterns to `browser::policy`): the composition root checks them with the same error
//! (`app::configured_rules`).

use std::collections::BTreeMap;
use std::path::PathBuf;

use serde::Deserialize;

mod browser;
pub mod http;

pub use browser::BrowserConfig;
pub use http::HttpConfig;

/// Environment variables with the `MCP_SESSIONS_` prefix that are not configuration keys.
const RESERVED_ENV: &[&str] = &[
    "MCP_SESSIONS_USER",
    "MCP_SESSIONS_PASSWORD",
    "MCP_SESSIONS_PASSWORD_FILE",
    "MCP_SESSIONS_JWT_SECRET",
    "MCP_SESSIONS_DATA_DIR",
    "MCP_SESSIONS_CONFIG_DIR",
    "MCP_SESSIONS_DEMO",
];

#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("cannot read {path}: {source}")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error(
        "invalid configuration (config.toml, MCP_SESSIONS_* variables and --set flags merged):\n{0}"
    )]
    Parse(String),
    #[error("invalid configuration key `{key}`: {reason}")]
    Invalid { key: &'static str, reason: String },
    #[error("`--set {0}` is not of the form key=value")]
    Flag(String),
    #[error(
        "no home directory to place the data and config directories; set MCP_SESSIONS_DATA_DIR and MCP_SESSIONS_CONFIG_DIR"
    )]
    NoHome,
}

/// Where the server keeps its files.
#[derive(Debug, Clone)]
pub struct Paths {
    /// `config.toml` and `users.toml`.
    pub config_dir: PathBuf,
    /// `audit.log`, `jwt.key`, `tokens.json` and the other keys.
    pub data_dir: PathBuf,
}

impl Paths {
    /// Explicit directories win; then `MCP_SESSIONS_{CONFIG,DATA}_DIR`; then the platform's.
    pub fn resolve(
        config_dir: Option<PathBuf>,
        data_dir: Option<PathBuf>,
    ) -> Result<Self, ConfigError> {
        let env_dir = |name: &str| {
            std::env::var_os(name)
                .filter(|v| !v.is_empty())
                .map(PathBuf::from)
        };
        let config_dir = config_dir.or_else(|| env_dir("MCP_SESSIONS_CONFIG_DIR"));
        let data_dir = data_dir.or_else(|| env_dir("MCP_SESSIONS_DATA_DIR"));
        let project =
            || directories::ProjectDirs::from("", "", "mcp-sessions").ok_or(ConfigError::NoHome);
        Ok(Self {
            config_dir: match config_dir {
                Some(dir) => dir,
                None => project()?.config_dir().to_path_buf(),
            },
            data_dir: match data_dir {
                Some(dir) => dir,
                None => project()?.data_dir().to_path_buf(),
            },
        })
    }

    pub fn users_file(&self) -> PathBuf {
        self.config_dir.join("users.toml")
    }

    pub fn config_file(&self) -> PathBuf {
        self.config_dir.join("config.toml")
    }

    pub fn audit_file(&self) -> PathBuf {
        self.data_dir.join("audit.log")
    }

    pub fn key_file(&self) -> PathBuf {
        self.data_dir.join("jwt.key")
    }

    /// Keys the audit log's MAC chain and session-id hashes; separate from the signing key so
    /// that rotating that one leaves old logs verifiable.
    pub fn audit_key_file(&self) -> PathBuf {
        self.data_dir.join("audit.key")
    }

    /// The personal access tokens (their keyed hashes, never the tokens).
    pub fn tokens_file(&self) -> PathBuf {
        self.data_dir.join("tokens.json")
    }

    /// Keys the hashes in `tokens.json`; its own key, so that rotating the signing key leaves
    /// the tokens valid.
    pub fn pat_key_file(&self) -> PathBuf {
        self.data_dir.join("pat.key")
    }
}

/// Every timeout (seconds) and limit of the server.
#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Config {
    /// Session lifetime when create-session names none.
    pub session_duration: u64,
    /// The longest lifetime create-session accepts (advertised as the schema's maximum).
    pub max_session_duration: u64,
    /// A session unused for this long ends, checked on every access.
    pub idle_timeout: u64,
    /// How often expired sessions are swept from memory (expiry itself is checked on access).
    pub sweep_interval: u64,
    /// Live sessions one user may hold; the next create-session answers SESSION_LIMIT.
    pub max_sessions_per_user: usize,
    /// Lifetime of an access token.
    pub access_token_ttl: u64,
    /// A live session's access token is renewed when it has less than this left.
    pub access_token_renew_within: u64,
    /// Clock skew tolerated when validating JWTs (at most 30).
    pub jwt_leeway: u64,
    /// After a key rotation, how long tokens of the previous key still verify.
    pub jwt_key_grace: u64,
    /// `iss` of issued tokens, required on verification.
    pub jwt_issuer: String,
    /// `aud` of issued tokens, required on verification.
    pub jwt_audience: String,
    /// Consecutive failed logins per username before delays start.
    pub login_free_failures: u32,
    /// The longest delay between login attempts once throttled.
    pub login_max_delay: u64,
    /// Consecutive failed logins after which the username is locked outright.
    pub login_lock_after: u32,
    /// How long such a lock lasts.
    pub login_lock_duration: u64,
    /// Logins accepted per minute across all users.
    pub login_rate_per_minute: u32,
    /// For this long after it ended, a session id answers SESSION_EXPIRED instead of SESSION_NOT_FOUND.
    pub expired_grace: u64,
    /// The largest JSON-RPC line read from stdin, in bytes.
    pub max_request_bytes: usize,
    /// The audit log rotates (audit.log.1 … .5) past this size, in bytes; 0 never rotates.
    pub audit_max_bytes: u64,
    /// Role → permissions. Missing roles keep the built-in mapping.
    pub roles: BTreeMap<String, Vec<String>>,
    /// Browser contexts: executable, limits, timeouts, URL policy.
    pub browser: BrowserConfig,
    /// The Streamable HTTP mode (`serve --http`): address, public URL, TLS, limits.
    pub http: HttpConfig,
}

impl Default for Config {
    fn default() -> Self {
        Self {
            session_duration: 3600,
            max_session_duration: 86_400,
            idle_timeout: 1800,
            sweep_interval: 60,
            max_sessions_per_user: 5,
            access_token_ttl: 900,
            access_token_renew_within: 300,
            jwt_leeway: 30,
            jwt_key_grace: 86_400,
            jwt_issuer: "mcp-sessions".to_owned(),
            jwt_audience: "mcp-sessions".to_owned(),
            login_free_failures: 5,
            login_max_delay: 900,
            login_lock_after: 10,
            login_lock_duration: 900,
            login_rate_per_minute: 60,
            expired_grace: 600,
            max_request_bytes: 4 * 1024 * 1024,
            audit_max_bytes: 64 * 1024 * 1024,
            roles: BTreeMap::new(),
            browser: BrowserConfig::default(),
            http: HttpConfig::default(),
        }
    }
}

impl Config {
    /// Merges the three layers and validates the result.
    pub fn load(paths: &Paths, flags: &[String]) -> Result<Self, ConfigError> {
        let file = paths.config_file();
        let mut table = match std::fs::read_to_string(&file) {
            Ok(text) => text
                .parse::<toml::Table>()
                .map_err(|e| ConfigError::Parse(format!("{}: {e}", file.display())))?,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => toml::Table::new(),
            Err(source) => return Err(ConfigError::Read { path: file, source }),
        };
        for (name, value) in std::env::vars() {
            if let Some(key) = name.strip_prefix("MCP_SESSIONS_")
                && !RESERVED_ENV.contains(&name.as_str())
            {
                insert_dotted(&mut table, &key.to_lowercase().replace("__", "."), &value);
            }
        }
        for flag in flags {
            let (key, value) = flag
                .split_once('=')
                .ok_or_else(|| ConfigError::Flag(flag.clone()))?;
            insert_dotted(&mut table, key.trim(), value.trim());
        }
        Self::from_table(table)
    }

    fn from_table(table: toml::Table) -> Result<Self, ConfigError> {
        // Parsing the merged document as text keeps the offending line in the error message.
        let text = toml::to_string(&table).map_err(|e| ConfigError::Parse(e.to_string()))?;
        let config: Config =
            toml::from_str(&text).map_err(|e| ConfigError::Parse(e.to_string()))?;
        config.validate()?;
        Ok(config)
    }

    fn validate(&self) -> Result<(), ConfigError> {
        let positive = [
            ("session_duration", self.session_duration),
            ("max_session_duration", self.max_session_duration),
            ("idle_timeout", self.idle_timeout),
            ("sweep_interval", self.sweep_interval),
            ("access_token_ttl", self.access_token_ttl),
            ("login_max_delay", self.login_max_delay),
            ("login_lock_duration", self.login_lock_duration),
            (
                "login_rate_per_minute",
                u64::from(self.login_rate_per_minute),
            ),
            ("max_sessions_per_user", self.max_sessions_per_user as u64),
            ("login_lock_after", u64::from(self.login_lock_after)),
        ];
        for (key, value) in positive {
            if value == 0 {
                return Err(ConfigError::Invalid {
                    key,
                    reason: "must be greater than 0".into(),
                });
            }
        }
        if self.session_duration > self.max_session_duration {
            return Err(ConfigError::Invalid {
                key: "session_duration",
                reason: format!(
                    "{} is longer than max_session_duration ({})",
                    self.session_duration, self.max_session_duration
                ),
            });
        }
        if self.jwt_leeway > 30 {
            return Err(ConfigError::Invalid {
                key: "jwt_leeway",
                reason: format!("{} s is more than the 30 s allowed", self.jwt_leeway),
            });
        }
        if self.access_token_renew_within >= self.access_token_ttl {
            return Err(ConfigError::Invalid {
                key: "access_token_renew_within",
                reason: "must be shorter than access_token_ttl".into(),
            });
        }
        if self.login_lock_after >= 100 {
            return Err(ConfigError::Invalid {
                key: "login_lock_after",
                reason: "must be below 100 (NIST SP 800-63B)".into(),
            });
        }
        if self.max_request_bytes < 1024 {
            return Err(ConfigError::Invalid {
                key: "max_request_bytes",
                reason: "must be at least 1024".into(),
            });
        }
        if self.jwt_issuer.is_empty() || self.jwt_audience.is_empty() {
            return Err(ConfigError::Invalid {
                key: "jwt_issuer",
                reason: "jwt_issuer and jwt_audience must not be empty".into(),
            });
        }
        self.browser
            .validate()
            .map_err(|(key, reason)| ConfigError::Invalid { key, reason })?;
        self.http
            .validate()
            .map_err(|(key, reason)| ConfigError::Invalid { key, reason })?;
        Ok(())
    }
}

/// Sets `a.b.c = value` in `table`, parsing `value` as a TOML value when it is one (numbers,
/// booleans, arrays) and as a string otherwise.
fn insert_dotted(table: &mut toml::Table, key: &str, raw: &str) {
    let value = format!("v = {raw}")
        .parse::<toml::Table>()
        .ok()
        .and_then(|mut t| t.remove("v"))
        .unwrap_or_else(|| toml::Value::String(raw.to_owned()));
    let mut parts: Vec<&str> = key.split('.').collect();
    let Some(last) = parts.pop() else { return };
    let mut current = table;
    for part in parts {
        let entry = current
            .entry(part.to_owned())
            .or_insert_with(|| toml::Value::Table(toml::Table::new()));
        if !entry.is_table() {
            *entry = toml::Value::Table(toml::Table::new());
        }
        let toml::Value::Table(next) = entry else {
            return;
        };
        current = next;
    }
    current.insert(last.to_owned(), value);
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(text: &str) -> Result<Config, ConfigError> {
        Config::from_table(
            text.parse::<toml::Table>()
                .map_err(|e| ConfigError::Parse(e.to_string()))?,
        )
    }

    #[test]
    fn defaults_are_valid() {
        assert!(parse("").is_ok());
    }

    #[test]
    fn unknown_key_is_named() {
        let err = parse("idle_timout = 5")
            .err()
            .map(|e| e.to_string())
            .unwrap_or_default();
        assert!(err.contains("idle_timout"), "{err}");
    }

    #[test]
    fn wrong_type_names_the_key() {
        let err = parse("idle_timeout = \"soon\"")
            .err()
            .map(|e| e.to_string())
            .unwrap_or_default();
        assert!(err.contains("idle_timeout"), "{err}");
    }

    #[test]
    fn leeway_is_capped() {
        let err = parse("jwt_leeway = 60")
            .err()
            .map(|e| e.to_string())
            .unwrap_or_default();
        assert!(err.contains("jwt_leeway"), "{err}");
    }

    #[test]
    fn dotted_keys_nest_and_values_parse() {
        let mut table = toml::Table::new();
        insert_dotted(&mut table, "idle_timeout", "5");
        insert_dotted(&mut table, "roles.viewer", "[\"session:create\"]");
        insert_dotted(&mut table, "jwt_issuer", "me");
        assert_eq!(table["idle_timeout"].as_integer(), Some(5));
        assert_eq!(table["jwt_issuer"].as_str(), Some("me"));
        assert!(table["roles"]["viewer"].is_array());
    }
}
