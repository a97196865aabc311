//! The remote form's flags, validated once: the URL of an `mcp-sessions serve --http` and the
//! environment variable the host reads the bearer token from. The token itself never reaches
//! `install`, so it cannot reach the host's file.

use std::net::IpAddr;
use std::str::FromStr;

/// The variable the host reads the token from unless `--token-env` says otherwise.
pub const DEFAULT_TOKEN_ENV: &str = "MCP_SESSIONS_TOKEN";

/// A URL a host may send a bearer token to: `https`, or `http` to a loopback host, where the
/// token never crosses a network.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RemoteUrl(url::Url);

impl RemoteUrl {
    pub fn as_str(&self) -> &str {
        self.0.as_str()
    }
}

fn is_loopback(host: &url::Host<&str>) -> bool {
    match host {
        url::Host::Domain(name) => *name == "localhost",
        url::Host::Ipv4(address) => IpAddr::V4(*address).is_loopback(),
        url::Host::Ipv6(address) => IpAddr::V6(*address).is_loopback(),
    }
}

impl FromStr for RemoteUrl {
    type Err = String;

    fn from_str(text: &str) -> Result<Self, String> {
        let url = url::Url::parse(text).map_err(|e| {
            format!("not a URL ({e}); give the server's endpoint, e.g. https://mcp.example.com/mcp")
        })?;
        if !url.username().is_empty() || url.password().is_some() {
            return Err(
                "the URL holds a user name or password, which would be written into the host's file; the token goes in a header from --token-env instead".into(),
            );
        }
        let host = url.host().ok_or("the URL names no host")?;
        match url.scheme() {
            "https" => {}
            "http" if is_loopback(&host) => {}
            "http" => {
                return Err(format!(
                    "http:// would send the bearer token to {host} unencrypted; use https://, or http:// only for a loopback host (localhost, 127.0.0.1, ::1)"
                ));
            }
            other => return Err(format!("the scheme is {other}; use https://")),
        }
        Ok(Self(url))
    }
}

/// An environment variable name as every shell and host accepts it: `[A-Z_][A-Z0-9_]*`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TokenEnvName(String);

impl TokenEnvName {
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl Default for TokenEnvName {
    fn default() -> Self {
        Self(DEFAULT_TOKEN_ENV.to_owned())
    }
}

impl FromStr for TokenEnvName {
    type Err = String;

    fn from_str(text: &str) -> Result<Self, String> {
        let mut chars = text.chars();
        let valid = chars
            .next()
            .is_some_and(|c| c.is_ascii_uppercase() || c == '_')
            && chars.all(|c| c.is_ascii_uppercase() || c.is_ascii_digit() || c == '_');
        if !valid {
            return Err(format!(
                "`{text}` is not an environment variable name of the form [A-Z_][A-Z0-9_]* (e.g. {DEFAULT_TOKEN_ENV})"
            ));
        }
        Ok(Self(text.to_owned()))
    }
}

/// Where the host connects and where it finds the token.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RemoteTarget {
    pub url: RemoteUrl,
    pub token_env: TokenEnvName,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn https_anywhere_and_http_only_to_loopback() {
        for ok in [
            "https://mcp.example.com/mcp",
            "https://10.0.0.5:8443/mcp",
            "http://127.0.0.1:8750/mcp",
            "http://localhost:8750/mcp",
            "http://[::1]:8750/mcp",
        ] {
            assert!(ok.parse::<RemoteUrl>().is_ok(), "{ok}");
        }
        let err = "http://mcp.example.com/mcp"
            .parse::<RemoteUrl>()
            .unwrap_err();
        assert!(
            err.contains("unencrypted") && err.contains("loopback"),
            "{err}"
        );
        for refused in [
            "http://localhost.example.com/mcp",
            "http://10.0.0.5/mcp",
            "ftp://mcp.example.com/",
            "mcp.example.com/mcp",
            "https://alice:secret@mcp.example.com/mcp",
            "https://token@mcp.example.com/mcp",
        ] {
            assert!(refused.parse::<RemoteUrl>().is_err(), "{refused}");
        }
    }

    #[test]
    fn token_variable_names() {
        for ok in ["MCP_SESSIONS_TOKEN", "_T", "TOKEN2"] {
            assert_eq!(ok.parse::<TokenEnvName>().unwrap().as_str(), ok);
        }
        for refused in ["", "2TOKEN", "token", "MY-TOKEN", "A B", "${X}", "ÄTOKEN"] {
            assert!(refused.parse::<TokenEnvName>().is_err(), "{refused:?}");
        }
        assert_eq!(TokenEnvName::default().as_str(), DEFAULT_TOKEN_ENV);
    }
}
