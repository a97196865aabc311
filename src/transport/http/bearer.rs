//! Authentication of every MCP request, from `Authorization: Bearer` alone: a personal access
//! token (`mcps_…`, looked up by keyed hash) or an access JWT of this server whose audience is
//! the public URL. A token anywhere else (the query string) is refused, never used.

use http::HeaderMap;

use crate::auth::tokens::TokenKind;
use crate::server::{Credential, ServerState};
use crate::sessions::SessionId;

/// Why a request is not authenticated; each says what to do in its `error_description`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Unauthenticated {
    Missing,
    NotBearer,
    InQuery,
    Invalid,
}

impl Unauthenticated {
    /// For the audit record.
    pub fn reason(self) -> &'static str {
        match self {
            Unauthenticated::Missing => "no bearer token",
            Unauthenticated::NotBearer => "not a bearer token",
            Unauthenticated::InQuery => "token in the query string",
            Unauthenticated::Invalid => "invalid token",
        }
    }

    /// The RFC 6750 error code, where one applies (none for a request that sent no token).
    pub fn error(self) -> Option<&'static str> {
        match self {
            Unauthenticated::Missing => None,
            Unauthenticated::NotBearer | Unauthenticated::InQuery => Some("invalid_request"),
            Unauthenticated::Invalid => Some("invalid_token"),
        }
    }

    pub fn description(self) -> &'static str {
        match self {
            Unauthenticated::Missing => {
                "send Authorization: Bearer <token> (create one with `mcp-sessions token create USER`)"
            }
            Unauthenticated::NotBearer => "the Authorization header must be `Bearer <token>`",
            Unauthenticated::InQuery => {
                "tokens in the URL are refused (they end up in logs): send Authorization: Bearer <token>"
            }
            Unauthenticated::Invalid => {
                "the token is unknown, expired, revoked or not for this server; get a new one"
            }
        }
    }
}

/// Query parameters that would carry a token; a request with one is refused outright.
const TOKEN_PARAMETERS: &[&str] = &["access_token", "token", "bearer", "authorization"];

pub fn token_in_query(query: Option<&str>) -> bool {
    query.is_some_and(|q| {
        q.split('&').any(|pair| {
            let name = pair.split_once('=').map_or(pair, |(n, _)| n);
            TOKEN_PARAMETERS
                .iter()
                .any(|t| name.eq_ignore_ascii_case(t))
        })
    })
}

/// The bearer token of the `Authorization` header.
pub fn bearer_token(headers: &HeaderMap) -> Result<&str, Unauthenticated> {
    let mut values = headers.get_all(http::header::AUTHORIZATION).iter();
    let value = values.next().ok_or(Unauthenticated::Missing)?;
    if values.next().is_some() {
        return Err(Unauthenticated::NotBearer);
    }
    let value = value.to_str().map_err(|_| Unauthenticated::NotBearer)?;
    let (scheme, token) = value.split_once(' ').ok_or(Unauthenticated::NotBearer)?;
    let token = token.trim();
    if !scheme.eq_ignore_ascii_case("bearer") || token.is_empty() || token.contains(' ') {
        return Err(Unauthenticated::NotBearer);
    }
    Ok(token)
}

/// Who a verified token belongs to.
pub struct Bearer {
    pub user_id: String,
    pub username: String,
    pub credential: Credential,
}

/// Verifies `token`: a live personal access token of an enabled user, or an access JWT (audience
/// the public URL) of a live session. Roles are not read here: the tools read them per call.
pub fn verify(state: &ServerState, token: &str, now_ms: u64) -> Result<Bearer, Unauthenticated> {
    state.users.refresh();
    let live_user = |id: &str| state.users.by_id(id).filter(|u| !u.disabled);
    if token.starts_with(crate::auth::pats::TOKEN_PREFIX) {
        let record = state
            .pats
            .verify(token, now_ms)
            .ok_or(Unauthenticated::Invalid)?;
        let user = live_user(&record.user_id).ok_or(Unauthenticated::Invalid)?;
        return Ok(Bearer {
            user_id: user.id.clone(),
            username: user.username.clone(),
            credential: Credential::Pat(record.id),
        });
    }
    let claims = state
        .tokens
        .verify(token, TokenKind::Access, now_ms / 1000)
        .map_err(|_| Unauthenticated::Invalid)?;
    let id = SessionId::parse(&claims.sid).ok_or(Unauthenticated::Invalid)?;
    let session = state
        .sessions
        .peek(id, now_ms)
        .map_err(|_| Unauthenticated::Invalid)?;
    if session.user.id != claims.sub {
        return Err(Unauthenticated::Invalid);
    }
    let user = live_user(&claims.sub).ok_or(Unauthenticated::Invalid)?;
    Ok(Bearer {
        user_id: user.id.clone(),
        username: user.username.clone(),
        credential: Credential::Session(id),
    })
}

/// Where the RFC 9728 metadata of `resource` lives: the well-known path before its path.
pub fn metadata_url(resource: &str) -> String {
    match url::Url::parse(resource) {
        Ok(url) => {
            let path = url.path().trim_end_matches('/');
            format!(
                "{}/.well-known/oauth-protected-resource{path}",
                url.origin().ascii_serialization()
            )
        }
        Err(_) => format!("{resource}/.well-known/oauth-protected-resource"),
    }
}

/// The `WWW-Authenticate` value of a 401.
pub fn challenge(metadata: &str, why: Unauthenticated) -> String {
    match why.error() {
        None => format!("Bearer resource_metadata=\"{metadata}\""),
        Some(error) => format!(
            "Bearer resource_metadata=\"{metadata}\", error=\"{error}\", error_description=\"{}\"",
            why.description()
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_the_header_carries_a_token() {
        assert!(token_in_query(Some("access_token=abc")));
        assert!(token_in_query(Some("x=1&Token=abc")));
        assert!(!token_in_query(Some("tokens=1")));
        assert!(!token_in_query(None));
        let mut headers = HeaderMap::new();
        assert_eq!(bearer_token(&headers), Err(Unauthenticated::Missing));
        headers.insert("authorization", "Basic YTpi".parse().unwrap());
        assert_eq!(bearer_token(&headers), Err(Unauthenticated::NotBearer));
        headers.insert("authorization", "bearer abc".parse().unwrap());
        assert_eq!(bearer_token(&headers), Ok("abc"));
    }

    #[test]
    fn metadata_sits_before_the_resource_path() {
        assert_eq!(
            metadata_url("https://mcp.example.com/mcp"),
            "https://mcp.example.com/.well-known/oauth-protected-resource/mcp"
        );
        assert_eq!(
            metadata_url("http://127.0.0.1:8750/mcp"),
            "http://127.0.0.1:8750/.well-known/oauth-protected-resource/mcp"
        );
    }
}
