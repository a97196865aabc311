//! `mcp-sessions user add|list|remove|passwd|disable|enable`: manages users.toml. Passwords come
//! from a prompt or stdin, never argv.

use std::io::Write;

use clap::Subcommand;

use super::read_password;
use crate::auth::secret::SecretString;
use crate::auth::users::{
    UserError, UserRecord, UsersFile, check_new_password, check_username, hash_password,
};
use crate::config::Paths;

#[derive(Debug, Subcommand)]
pub enum UserCommand {
    /// Add a user; the password is prompted for, or read from stdin when it is not a terminal.
    #[command(
        after_help = "Example:\n  printf '%s\\n' \"$PASSWORD\" | mcp-sessions user add alice --role user"
    )]
    Add {
        username: String,
        /// Role (admin, user, viewer or a configured one); repeatable. Default: user.
        #[arg(long = "role", value_name = "ROLE")]
        roles: Vec<String>,
    },
    /// List users (never their hashes).
    #[command(after_help = "Example:\n  mcp-sessions user list")]
    List,
    /// Remove a user; their sessions end at their next use, their personal access tokens at once.
    #[command(after_help = "Example:\n  mcp-sessions user remove alice")]
    Remove { username: String },
    /// Change a user's password; their sessions end at once.
    #[command(
        after_help = "Examples:\n  mcp-sessions user passwd alice\n  printf '%s\\n' \"$NEW_PASSWORD\" | mcp-sessions user passwd alice"
    )]
    Passwd { username: String },
    /// Disable a user; their sessions end at once.
    #[command(after_help = "Example:\n  mcp-sessions user disable alice")]
    Disable { username: String },
    /// Enable a disabled user.
    #[command(after_help = "Example:\n  mcp-sessions user enable alice")]
    Enable { username: String },
}

/// Reads a new password and checks it against the policy.
fn read_new_password(username: &str) -> Result<SecretString, UserError> {
    let password = read_password(&format!("New password for {username}: "), true)?;
    check_new_password(password.expose())?;
    Ok(password)
}

/// Runs a `user` subcommand against `paths`.
pub fn run_user_command(command: UserCommand, paths: &Paths) -> Result<(), UserError> {
    let file_path = paths.users_file();
    let mut file = UsersFile::load(&file_path)?;
    let mut out = std::io::stdout().lock();
    let write = |e: std::io::Error| UserError::Write {
        path: "stdout".into(),
        source: e,
    };
    match command {
        UserCommand::Add { username, roles } => {
            check_username(&username)?;
            file.check_available(&username)?;
            let password = read_new_password(&username)?;
            let roles = if roles.is_empty() {
                vec!["user".to_owned()]
            } else {
                roles
            };
            let record = UserRecord {
                id: uuid::Uuid::new_v4().to_string(),
                username: username.clone(),
                roles,
                password_hash: hash_password(&password)?,
                disabled: false,
            };
            writeln!(
                out,
                "added {} ({}) with roles {}",
                record.username,
                record.id,
                record.roles.join(",")
            )
            .map_err(write)?;
            file.users.push(record);
        }
        UserCommand::List => {
            writeln!(
                out,
                "{:<36}  {:<24}  {:<16}  status",
                "id", "username", "roles"
            )
            .map_err(write)?;
            for u in &file.users {
                let status = if u.disabled { "disabled" } else { "enabled" };
                writeln!(
                    out,
                    "{:<36}  {:<24}  {:<16}  {status}",
                    u.id,
                    u.username,
                    u.roles.join(",")
                )
                .map_err(write)?;
            }
            return Ok(());
        }
        UserCommand::Remove { username } => {
            let Some(user) = file.users.iter().find(|u| u.username == username) else {
                return Err(UserError::NotFound(username));
            };
            // Tokens first: should this fail, the user stays, rather than tokens without a user.
            let revoked = super::token::revoke_user_tokens(paths, &user.id).map_err(|e| {
                UserError::Policy(format!(
                    "cannot revoke the personal access tokens of {username}, so it stays: {e:#}"
                ))
            })?;
            file.users.retain(|u| u.username != username);
            if revoked == 0 {
                writeln!(out, "removed {username}").map_err(write)?;
            } else {
                writeln!(
                    out,
                    "removed {username} and revoked their {revoked} personal access token(s)"
                )
                .map_err(write)?;
            }
        }
        UserCommand::Passwd { username } => {
            file.find_mut(&username)?;
            let password = read_new_password(&username)?;
            let hash = hash_password(&password)?;
            file.find_mut(&username)?.password_hash = hash;
            writeln!(
                out,
                "changed the password of {username}; their sessions have ended"
            )
            .map_err(write)?;
        }
        UserCommand::Disable { username } => {
            file.find_mut(&username)?.disabled = true;
            writeln!(out, "disabled {username}; their sessions have ended").map_err(write)?;
        }
        UserCommand::Enable { username } => {
            file.find_mut(&username)?.disabled = false;
            writeln!(out, "enabled {username}").map_err(write)?;
        }
    }
    file.save(&file_path)
}
