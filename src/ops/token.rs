//! `mcp-sessions token create|list|revoke`: the personal access tokens that HTTP clients present
//! as `Authorization: Bearer`. A token is printed once, at creation, and kept nowhere but as a
//! keyed hash; every creation and revocation is audited (never the token or its hash).

use std::io::Write;

use anyhow::Context;
use clap::Subcommand;
use serde_json::json;

use crate::audit::{AuditEvent, AuditLog, nist};
use crate::auth::pats::{PatRecord, PatStore};
use crate::auth::users::UserStore;
use crate::config::Paths;

#[derive(Debug, Subcommand)]
pub enum TokenCommand {
    /// Issue a personal access token to a user of users.toml. The token is printed once, alone
    /// on stdout; only its keyed hash is kept, so a lost token is revoked and issued anew.
    #[command(
        after_help = "Examples:\n  mcp-sessions token create alice --name laptop\n  \
                      mcp-sessions token create ci-bot --name nightly --ttl 2592000   (expires in 30 days)\n  \
                      TOKEN=$(mcp-sessions token create alice)"
    )]
    Create {
        username: String,
        /// A label for the token, unique per user (letters, digits, '.', '_', '-'). Default:
        /// token-<first 8 characters of its id>.
        #[arg(long, value_name = "NAME")]
        name: Option<String>,
        /// Lifetime in seconds (at most 10 years). Default: until revoked.
        #[arg(long, value_name = "SECONDS")]
        ttl: Option<u64>,
    },
    /// List the tokens: id, user, name, creation and expiry (never the tokens or their hashes).
    #[command(
        after_help = "Examples:\n  mcp-sessions token list\n  mcp-sessions token list --user alice"
    )]
    List {
        /// Only the tokens of this user.
        #[arg(long, value_name = "USER")]
        user: Option<String>,
    },
    /// Revoke a token by its id, or by its name with --user. A running server refuses it from
    /// its next request on.
    #[command(
        after_help = "Examples:\n  mcp-sessions token revoke 3f9c0a1e5b7d4c2a8e6f1b3d5a7c9e0f\n  \
                      mcp-sessions token revoke --user alice laptop"
    )]
    Revoke {
        /// The token's id (see `token list`), or its name when --user is given.
        id_or_name: String,
        /// The user whose token is named.
        #[arg(long, value_name = "USER")]
        user: Option<String>,
    },
}

/// Runs a `token` subcommand against `paths`.
pub fn run_token_command(command: TokenCommand, paths: &Paths) -> anyhow::Result<()> {
    match command {
        TokenCommand::Create {
            username,
            name,
            ttl,
        } => create(paths, &username, name.as_deref(), ttl),
        TokenCommand::List { user } => list(paths, user.as_deref()),
        TokenCommand::Revoke { id_or_name, user } => revoke(paths, &id_or_name, user.as_deref()),
    }
}

/// The audit log, opened before the action so that an unwritable log stops it (fail closed).
/// The command never rotates the file: a running server, which holds it open, does.
fn open_audit(paths: &Paths) -> anyhow::Result<AuditLog> {
    let key = crate::auth::tokens::load_signing_key(None, &paths.audit_key_file())?;
    Ok(AuditLog::open(&paths.audit_file(), &key, 0)?)
}

fn open_store(paths: &Paths) -> anyhow::Result<PatStore> {
    let key = crate::auth::tokens::load_signing_key(None, &paths.pat_key_file())?;
    Ok(PatStore::open(paths.tokens_file(), key)?)
}

fn expiry_text(record: &PatRecord) -> String {
    record
        .expires_ms
        .map_or_else(|| "never".to_owned(), crate::clock::rfc3339)
}

/// What the audit line says of a token: never the token or its hash.
fn audit_detail(record: &PatRecord) -> serde_json::Value {
    json!({
        "tokenId": record.id,
        "name": record.name,
        "expiresAt": record.expires_ms.map(crate::clock::rfc3339),
    })
}

fn create(
    paths: &Paths,
    username: &str,
    name: Option<&str>,
    ttl: Option<u64>,
) -> anyhow::Result<()> {
    // Arguments first: a refused command opens (and creates) nothing.
    if let Some(name) = name {
        crate::auth::pats::check_name(name)?;
    }
    if let Some(ttl) = ttl {
        crate::auth::pats::check_ttl(ttl)?;
    }
    let users_file = paths.users_file();
    let users = UserStore::open(users_file.clone(), false)?;
    let Some(user) = users.by_name(username) else {
        anyhow::bail!(
            "no user `{username}` in {}; add one with `mcp-sessions user add {username}`",
            users_file.display()
        );
    };
    if user.disabled {
        anyhow::bail!(
            "user `{username}` is disabled; enable it first with `mcp-sessions user enable {username}`"
        );
    }
    let audit = open_audit(paths)?;
    let store = open_store(paths)?;
    let (record, token) =
        store.create(&user.id, &user.username, name, ttl, crate::clock::now_ms())?;
    let event = AuditEvent::new("token.create", "success", &[nist::IA_5, nist::AU_3])
        .user(&record.user_id, &record.username)
        .detail(audit_detail(&record));
    if let Err(e) = audit.record(event) {
        // Unaudited, the token must not exist: take it back before saying why.
        let undone = store.revoke(&record.id, None, crate::clock::now_ms());
        return Err(anyhow::Error::from(e)).context(match undone {
            Ok(_) => "the token was not issued".to_owned(),
            Err(undo) => format!(
                "the token {} could not be audited nor withdrawn ({undo}); revoke it",
                record.id
            ),
        });
    }
    writeln!(std::io::stdout().lock(), "{}", token.expose())?;
    // The token is out; a closed stderr must not turn that into a failure.
    let _ = writeln!(
        std::io::stderr().lock(),
        "created token {} (`{}`) for {}, expires {}. It is shown this once and cannot be \
         recovered; a client sends it as the header `Authorization: Bearer <token>`.",
        record.id,
        record.name,
        record.username,
        expiry_text(&record)
    );
    Ok(())
}

fn list(paths: &Paths, user: Option<&str>) -> anyhow::Result<()> {
    // Listing needs no key: it reads the records and shows no hash.
    let records = crate::auth::pats::read_file(&paths.tokens_file())?;
    let now = crate::clock::now_ms();
    let mut out = std::io::stdout().lock();
    writeln!(
        out,
        "{:<32}  {:<24}  {:<24}  {:<24}  expires",
        "id", "user", "name", "created"
    )?;
    for record in records
        .iter()
        .filter(|r| user.is_none_or(|u| r.username == u))
    {
        let mut expires = expiry_text(record);
        if record.is_expired(now) {
            expires.push_str(" (expired)");
        }
        writeln!(
            out,
            "{:<32}  {:<24}  {:<24}  {:<24}  {expires}",
            record.id,
            record.username,
            record.name,
            crate::clock::rfc3339(record.created_ms)
        )?;
    }
    Ok(())
}

fn revoke(paths: &Paths, id_or_name: &str, user: Option<&str>) -> anyhow::Result<()> {
    let audit = open_audit(paths)?;
    let store = open_store(paths)?;
    let record = store.revoke(id_or_name, user, crate::clock::now_ms())?;
    writeln!(
        std::io::stdout().lock(),
        "revoked token {} (`{}`) of {}",
        record.id,
        record.name,
        record.username
    )?;
    let event = AuditEvent::new("token.revoke", "success", &[nist::IA_5, nist::AC_12])
        .user(&record.user_id, &record.username)
        .detail(audit_detail(&record));
    audit
        .record(event)
        .context("the token is revoked, but the audit log could not record it")?;
    Ok(())
}

/// Revokes every token of a user being removed; how many there were. Touches nothing (not even
/// the key) when no token was ever issued.
pub(super) fn revoke_user_tokens(paths: &Paths, user_id: &str) -> anyhow::Result<usize> {
    if !paths.tokens_file().exists() {
        return Ok(0);
    }
    Ok(open_store(paths)?.revoke_user(user_id)?)
}
