//! The `[http]` section: where the Streamable HTTP mode listens, the URL clients know it by, TLS
//! or the proxy in front of it, and the limits of its transport sessions and unauthenticated
//! traffic. Read only by `serve --http`; stdio ignores it.

use std::net::{IpAddr, SocketAddr};
use std::path::PathBuf;

use serde::Deserialize;

/// The `[http]` configuration section.
#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct HttpConfig {
    /// `address:port` to listen on when `serve --http` names none.
    pub listen: String,
    /// The MCP endpoint's canonical URL as clients reach it (`https://mcp.example.com/mcp`): the
    /// `aud` of the access tokens accepted, the `resource` of the protected-resource metadata.
    /// Unset: `http://<listen>/mcp`.
    pub public_url: Option<String>,
    /// Browser origins (`https://app.example.com`, `http://localhost:*`) whose requests are
    /// served; a request with any other `Origin` header gets 403. Empty: none.
    pub allowed_origins: Vec<String>,
    /// Host names accepted in the `Host` header besides loopback and the public URL's host.
    pub allowed_hosts: Vec<String>,
    /// PEM certificate chain and private key: serve HTTPS.
    pub tls_cert: Option<PathBuf>,
    pub tls_key: Option<PathBuf>,
    /// A reverse proxy terminates TLS: the client address is read from `X-Forwarded-For` when
    /// the connection comes from one of `trusted_proxies`.
    pub behind_proxy: bool,
    /// Addresses or CIDR blocks of the proxies whose `X-Forwarded-For` is believed.
    pub trusted_proxies: Vec<String>,
    /// A transport session (2025-11-25 clients) unused for this many seconds ends.
    pub session_idle_timeout: u64,
    /// Transport sessions one user may hold, and all users together; more answer 429.
    pub max_sessions_per_user: usize,
    pub max_sessions: usize,
    /// Transport sessions one client address may open per minute.
    pub session_create_per_minute: u32,
    /// Requests without a valid bearer token one client address may make per minute; past it,
    /// 429 until the minute is over.
    pub failed_auth_per_minute: u32,
    /// Whether create-session (a password passed through the model) works over HTTP.
    pub allow_password_login: bool,
    /// Whether a transport session must also keep its client address and User-Agent.
    pub bind_client_address: bool,
    /// The longest a request may take to get its answer started, seconds.
    pub request_timeout: u64,
    /// On SIGTERM, how long calls in flight may take to finish, seconds.
    pub shutdown_grace: u64,
}

impl Default for HttpConfig {
    fn default() -> Self {
        Self {
            listen: "127.0.0.1:8750".into(),
            public_url: None,
            allowed_origins: Vec::new(),
            allowed_hosts: Vec::new(),
            tls_cert: None,
            tls_key: None,
            behind_proxy: false,
            trusted_proxies: Vec::new(),
            session_idle_timeout: 1800,
            max_sessions_per_user: 10,
            max_sessions: 1000,
            session_create_per_minute: 60,
            failed_auth_per_minute: 30,
            allow_password_login: false,
            bind_client_address: false,
            request_timeout: 180,
            shutdown_grace: 10,
        }
    }
}

/// An address, or a block of them (`10.0.0.0/8`, `fd00::/8`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AddressBlock {
    network: IpAddr,
    prefix: u8,
}

impl AddressBlock {
    pub fn parse(text: &str) -> Option<Self> {
        let (address, prefix) = match text.split_once('/') {
            Some((address, prefix)) => (address, Some(prefix)),
            None => (text, None),
        };
        let network: IpAddr = address.trim().parse().ok()?;
        let max = if network.is_ipv4() { 32 } else { 128 };
        let prefix = match prefix {
            Some(p) => p.trim().parse::<u8>().ok().filter(|p| *p <= max)?,
            None => max,
        };
        Some(Self { network, prefix })
    }

    pub fn contains(&self, address: IpAddr) -> bool {
        let address = match address {
            IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(address, IpAddr::V4),
            v4 => v4,
        };
        match (self.network, address) {
            (IpAddr::V4(net), IpAddr::V4(a)) => {
                let mask = u32::MAX
                    .checked_shl(32 - u32::from(self.prefix))
                    .unwrap_or(0);
                u32::from(net) & mask == u32::from(a) & mask
            }
            (IpAddr::V6(net), IpAddr::V6(a)) => {
                let mask = u128::MAX
                    .checked_shl(128 - u32::from(self.prefix))
                    .unwrap_or(0);
                u128::from(net) & mask == u128::from(a) & mask
            }
            _ => false,
        }
    }
}

impl HttpConfig {
    /// The listen address, `override_listen` (the `--http` flag's) first.
    pub fn listen_address(&self, override_listen: Option<&str>) -> Result<SocketAddr, String> {
        let text = override_listen.unwrap_or(&self.listen);
        text.parse().map_err(|_| {
            format!("`{text}` is not an address:port such as 127.0.0.1:8750 or [::1]:8750")
        })
    }

    /// The canonical URL of the MCP endpoint for a server listening on `listen`.
    pub fn resource_url(&self, listen: SocketAddr) -> String {
        match &self.public_url {
            Some(url) => url.trim_end_matches('/').to_owned(),
            None => {
                let scheme = if self.tls_cert.is_some() {
                    "https"
                } else {
                    "http"
                };
                format!("{scheme}://{listen}/mcp")
            }
        }
    }

    pub fn proxies(&self) -> Vec<AddressBlock> {
        self.trusted_proxies
            .iter()
            .filter_map(|p| AddressBlock::parse(p))
            .collect()
    }

    pub(super) fn validate(&self) -> Result<(), (&'static str, String)> {
        self.listen_address(None).map_err(|e| ("http.listen", e))?;
        if let Some(url) = &self.public_url {
            let parsed = url::Url::parse(url)
                .map_err(|e| ("http.public_url", format!("`{url}` is not a URL: {e}")))?;
            if !matches!(parsed.scheme(), "http" | "https") || parsed.host_str().is_none() {
                return Err((
                    "http.public_url",
                    format!("`{url}` must be an http(s) URL with a host"),
                ));
            }
            if parsed.query().is_some() || parsed.fragment().is_some() {
                return Err((
                    "http.public_url",
                    "must have no query or fragment (it is the tokens' audience)".into(),
                ));
            }
        }
        if self.tls_cert.is_some() != self.tls_key.is_some() {
            return Err((
                "http.tls_cert",
                "http.tls_cert and http.tls_key go together: set both or neither".into(),
            ));
        }
        for proxy in &self.trusted_proxies {
            if AddressBlock::parse(proxy).is_none() {
                return Err((
                    "http.trusted_proxies",
                    format!("`{proxy}` is not an address or CIDR block (10.0.0.0/8)"),
                ));
            }
        }
        for origin in &self.allowed_origins {
            let ok = origin == "null"
                || url::Url::parse(&origin.replace(":*", ""))
                    .is_ok_and(|u| matches!(u.scheme(), "http" | "https"));
            if !ok {
                return Err((
                    "http.allowed_origins",
                    format!("`{origin}` is not an origin such as https://app.example.com"),
                ));
            }
        }
        let positive = [
            ("http.session_idle_timeout", self.session_idle_timeout),
            (
                "http.max_sessions_per_user",
                self.max_sessions_per_user as u64,
            ),
            ("http.max_sessions", self.max_sessions as u64),
            (
                "http.session_create_per_minute",
                u64::from(self.session_create_per_minute),
            ),
            (
                "http.failed_auth_per_minute",
                u64::from(self.failed_auth_per_minute),
            ),
            ("http.request_timeout", self.request_timeout),
        ];
        for (key, value) in positive {
            if value == 0 {
                return Err((key, "must be greater than 0".into()));
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn blocks_contain_their_addresses() {
        let block = AddressBlock::parse("10.0.0.0/8").unwrap();
        assert!(block.contains("10.2.3.4".parse().unwrap()));
        assert!(block.contains("::ffff:10.2.3.4".parse().unwrap()));
        assert!(!block.contains("11.0.0.1".parse().unwrap()));
        let one = AddressBlock::parse("192.168.1.5").unwrap();
        assert!(one.contains("192.168.1.5".parse().unwrap()));
        assert!(!one.contains("192.168.1.6".parse().unwrap()));
        let v6 = AddressBlock::parse("fd00::/8").unwrap();
        assert!(v6.contains("fd12::1".parse().unwrap()));
        assert!(!v6.contains("fe80::1".parse().unwrap()));
        assert!(AddressBlock::parse("10.0.0.0/33").is_none());
        assert!(AddressBlock::parse("ten").is_none());
        assert!(
            AddressBlock::parse("0.0.0.0/0")
                .unwrap()
                .contains("8.8.8.8".parse().unwrap())
        );
    }
}
