//! Who a caller is and what they may do: users and their argon2id passwords, JWTs and their keys,
//! personal access tokens, roles and permissions, login throttling, sealing of stored tokens, and
//! the secret types that keep all of these out of logs.

pub mod pats;
pub mod rbac;
pub mod seal;
pub mod secret;
pub mod throttle;
pub mod tokens;
pub mod users;
