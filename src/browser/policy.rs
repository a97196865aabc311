//! Where a context may navigate. Local files, browser-internal pages and cloud metadata
//! endpoints are always refused; optional allow and deny lists of origins narrow the rest.
//! The check runs on the requested URL and again on where the navigation ended (redirects).

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use url::{Host, Url};

/// Hostnames of cloud metadata services.
const METADATA_HOSTS: &[&str] = &["metadata.google.internal", "metadata", "instance-data"];

/// Why a request is refused: the rule that fired (named for the agent and the audit log) and a
/// sentence that says what to do.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Refusal {
    pub rule: &'static str,
    pub reason: String,
}

impl std::fmt::Display for Refusal {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.reason)
    }
}

#[derive(Debug, Clone, Default)]
pub struct UrlPolicy {
    allow: Vec<OriginPattern>,
    deny: Vec<OriginPattern>,
}

/// `https://example.com`, `example.com`, `*.example.com`, `http://127.0.0.1:8080`.
#[derive(Debug, Clone)]
struct OriginPattern {
    scheme: Option<String>,
    host: String,
    wildcard: bool,
    port: Option<u16>,
}

impl OriginPattern {
    fn parse(text: &str) -> Result<Self, String> {
        let (scheme, rest) = match text.split_once("://") {
            Some((scheme, rest)) => (Some(scheme.to_ascii_lowercase()), rest),
            None => (None, text),
        };
        let rest = rest.trim_end_matches('/');
        let (host, port) = match rest.rsplit_once(':') {
            Some((host, port)) if !host.ends_with(']') || rest.starts_with('[') => {
                match port.parse() {
                    Ok(port) => (host, Some(port)),
                    Err(_) => (rest, None),
                }
            }
            _ => (rest, None),
        };
        let (wildcard, host) = match host.strip_prefix("*.") {
            Some(host) => (true, host),
            None => (false, host),
        };
        if host.is_empty() || host.contains('/') {
            return Err(format!(
                "`{text}` is not an origin (e.g. https://example.com or *.example.com)"
            ));
        }
        Ok(Self {
            scheme,
            host: host
                .to_ascii_lowercase()
                .trim_matches(['[', ']'])
                .to_owned(),
            wildcard,
            port,
        })
    }

    fn matches(&self, url: &Url) -> bool {
        let Some(host) = url.host_str() else {
            return false;
        };
        let host = host.trim_matches(['[', ']']).to_ascii_lowercase();
        let host_ok =
            host == self.host || (self.wildcard && host.ends_with(&format!(".{}", self.host)));
        let scheme_ok = self.scheme.as_deref().is_none_or(|s| s == url.scheme());
        let port_ok = self
            .port
            .is_none_or(|p| Some(p) == url.port_or_known_default());
        host_ok && scheme_ok && port_ok
    }
}

impl UrlPolicy {
    pub fn new(allow: &[String], deny: &[String]) -> Result<Self, String> {
        Ok(Self {
            allow: allow
                .iter()
                .map(|o| OriginPattern::parse(o))
                .collect::<Result<_, _>>()?,
            deny: deny
                .iter()
                .map(|o| OriginPattern::parse(o))
                .collect::<Result<_, _>>()?,
        })
    }

    /// The parsed URL when it may be visited, else why not.
    pub fn check(&self, text: &str) -> Result<Url, String> {
        let url = Url::parse(text)
            .map_err(|e| format!("`{}` is not a valid absolute URL ({e})", shorten(text)))?;
        match url.scheme() {
            "http" | "https" => {}
            "about" if url.as_str() == "about:blank" => return Ok(url),
            scheme => {
                return Err(format!(
                    "the `{scheme}:` scheme is not allowed; only http and https pages (and about:blank) can be opened"
                ));
            }
        }
        if is_metadata(&url) {
            return Err("cloud metadata addresses are never reachable from the browser".into());
        }
        if self.deny.iter().any(|p| p.matches(&url)) {
            return Err(format!("{} is on the configured deny list", origin(&url)));
        }
        if !self.allow.is_empty() && !self.allow.iter().any(|p| p.matches(&url)) {
            return Err(format!(
                "{} is not on the configured allow list",
                origin(&url)
            ));
        }
        Ok(url)
    }
}

/// `scheme://host[:port]` of a URL: what the audit log records (never the path or query).
pub fn origin(url: &Url) -> String {
    url.origin().ascii_serialization()
}

fn shorten(text: &str) -> String {
    text.chars().take(80).collect()
}

fn is_metadata(url: &Url) -> bool {
    match url.host() {
        Some(Host::Ipv4(ip)) => is_metadata_ipv4(ip),
        Some(Host::Ipv6(ip)) => {
            ip == Ipv6Addr::new(0xfd00, 0xec2, 0, 0, 0, 0, 0, 0x254)
                || ip.to_ipv4_mapped().is_some_and(is_metadata_ipv4)
        }
        Some(Host::Domain(name)) => {
            let name = name.trim_end_matches('.').to_ascii_lowercase();
            METADATA_HOSTS.contains(&name.as_str())
                || name
                    .parse::<IpAddr>()
                    .is_ok_and(|ip| matches!(ip, IpAddr::V4(v4) if is_metadata_ipv4(v4)))
        }
        None => false,
    }
}

/// Link-local (169.254.0.0/16, where AWS, GCP and Azure serve metadata) and Alibaba's 100.100.100.200.
fn is_metadata_ipv4(ip: Ipv4Addr) -> bool {
    ip.is_link_local() || ip == Ipv4Addr::new(100, 100, 100, 200)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dangerous_urls_are_refused() {
        let policy = UrlPolicy::default();
        for url in [
            "file:///etc/passwd",
            "chrome://settings",
            "devtools://devtools/bundled/inspector.html",
            "view-source:https://example.com",
            "javascript:alert(1)",
            "http://169.254.169.254/latest/meta-data/",
            "http://2852039166/",
            "http://[::ffff:169.254.169.254]/",
            "http://metadata.google.internal/computeMetadata/v1/",
            "not a url",
        ] {
            assert!(policy.check(url).is_err(), "{url} allowed");
        }
        for url in [
            "https://example.com/a?b=c",
            "http://127.0.0.1:8080/",
            "about:blank",
        ] {
            assert!(policy.check(url).is_ok(), "{url} refused");
        }
    }

    #[test]
    fn allow_and_deny_lists() -> Result<(), String> {
        let policy = UrlPolicy::new(
            &["*.example.com".into(), "http://127.0.0.1:9000".into()],
            &["bad.example.com".into()],
        )?;
        assert!(policy.check("https://www.example.com/").is_ok());
        assert!(policy.check("https://bad.example.com/").is_err());
        assert!(policy.check("http://127.0.0.1:9000/x").is_ok());
        assert!(policy.check("http://127.0.0.1:9001/x").is_err());
        assert!(policy.check("https://other.org/").is_err());
        Ok(())
    }

    #[test]
    fn origin_drops_path_and_query() -> Result<(), url::ParseError> {
        assert_eq!(
            origin(&Url::parse("https://a.example:8443/p?token=secret")?),
            "https://a.example:8443"
        );
        Ok(())
    }
}
