//! What a context may reach. One set of rules, asked at three points: by browser-navigate before
//! it starts, for every request any target of a context makes (the DevTools `Fetch` pause, see
//! `targets`), and by the context's proxy for every connection, after it resolved the name
//! (`proxy`), so what Chromium connects to is what was checked.
//!
//! Always refused: schemes other than http(s) and ws(s) for requests (local files, browser-internal
//! pages), and cloud metadata addresses and names, in every form an address can be written in
//! (IPv4, IPv4-mapped, IPv4-compatible and NAT64 IPv6). Refused unless private networks are
//! allowed: loopback, private, shared (CGNAT), link-local and unique-local ranges, and the
//! unspecified address (which reaches loopback). Optional allow and deny lists of origins narrow
//! the rest.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use url::{Host, Url};

/// Hostnames of cloud metadata services.
const METADATA_HOSTS: &[&str] = &["metadata.google.internal", "metadata", "instance-data"];

/// The rules, by the names the agent and the audit log see.
pub mod rule {
    pub const SCHEME: &str = "scheme";
    pub const METADATA: &str = "metadata";
    pub const PRIVATE_NETWORK: &str = "private-network";
    pub const DENY_LIST: &str = "deny-list";
    pub const ALLOW_LIST: &str = "allow-list";
    pub const SERVICE_WORKER: &str = "service-worker";
    pub const TAB_LIMIT: &str = "tab-limit";
    pub const INVALID_URL: &str = "invalid-url";
}

/// Why a request is refused: the rule that fired (named for the agent and the audit log) and a
/// sentence that says what to do.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Refusal {
    pub rule: &'static str,
    pub reason: String,
}

impl Refusal {
    fn new(rule: &'static str, reason: impl Into<String>) -> Self {
        Self {
            rule,
            reason: reason.into(),
        }
    }
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
    allow_private: bool,
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

    /// Whether a request to `host:port` matches; a pattern's scheme is compared only when the
    /// request's is known (a proxy tunnel does not say whether it carries https or wss).
    fn matches(&self, scheme: Option<&str>, host: &str, port: u16) -> bool {
        let host_ok =
            host == self.host || (self.wildcard && host.ends_with(&format!(".{}", self.host)));
        let scheme_ok = match (&self.scheme, scheme) {
            (Some(pattern), Some(scheme)) => same_scheme(pattern, scheme),
            _ => true,
        };
        host_ok && scheme_ok && self.port.is_none_or(|p| p == port)
    }
}

/// `https` patterns cover `wss` and `http` patterns `ws`: the same origin's WebSockets.
fn same_scheme(pattern: &str, scheme: &str) -> bool {
    let plain = |s: &str| {
        match s {
            "wss" => "https",
            "ws" => "http",
            other => other,
        }
        .to_owned()
    };
    plain(pattern) == plain(scheme)
}

impl UrlPolicy {
    pub fn new(allow: &[String], deny: &[String], allow_private: bool) -> Result<Self, String> {
        Ok(Self {
            allow: allow
                .iter()
                .map(|o| OriginPattern::parse(o))
                .collect::<Result<_, _>>()?,
            deny: deny
                .iter()
                .map(|o| OriginPattern::parse(o))
                .collect::<Result<_, _>>()?,
            allow_private,
        })
    }

    /// Whether pages may reach private addresses.
    pub fn allows_private_networks(&self) -> bool {
        self.allow_private
    }

    /// The parsed URL when browser-navigate may open it, else why not: http(s) pages and
    /// about:blank.
    pub fn check(&self, text: &str) -> Result<Url, Refusal> {
        let url = Url::parse(text).map_err(|e| {
            Refusal::new(
                rule::INVALID_URL,
                format!("`{}` is not a valid absolute URL ({e})", shorten(text)),
            )
        })?;
        match url.scheme() {
            "http" | "https" => {}
            "about" if url.as_str() == "about:blank" => return Ok(url),
            scheme => {
                return Err(Refusal::new(
                    rule::SCHEME,
                    format!(
                        "the `{scheme}:` scheme is not allowed; only http and https pages (and about:blank) can be opened"
                    ),
                ));
            }
        }
        self.check_url_host(&url)?;
        Ok(url)
    }

    /// Whether a request a page makes by itself may go: http(s) and ws(s) to allowed hosts, and
    /// content that never leaves the browser (data:, blob:, about:).
    pub fn check_request(&self, text: &str) -> Result<(), Refusal> {
        let url = Url::parse(text).map_err(|_| {
            Refusal::new(rule::INVALID_URL, "the request's URL could not be parsed")
        })?;
        match url.scheme() {
            "http" | "https" | "ws" | "wss" => self.check_url_host(&url),
            "data" | "blob" | "about" => Ok(()),
            scheme => Err(Refusal::new(
                rule::SCHEME,
                format!("the `{scheme}:` scheme is not reachable from a page"),
            )),
        }
    }

    fn check_url_host(&self, url: &Url) -> Result<(), Refusal> {
        let port = url.port_or_known_default().unwrap_or(0);
        match url.host() {
            Some(Host::Ipv4(ip)) => self.check_address(IpAddr::V4(ip))?,
            Some(Host::Ipv6(ip)) => self.check_address(IpAddr::V6(ip))?,
            Some(Host::Domain(_)) => {}
            None => return Err(Refusal::new(rule::INVALID_URL, "the URL has no host")),
        }
        let host = url.host_str().unwrap_or_default();
        self.check_target(Some(url.scheme()), host, port)
    }

    /// Whether `host:port` may be reached at all, before any name is resolved: forbidden names,
    /// literal addresses and the origin lists. `scheme` is unknown for a proxy tunnel.
    pub fn check_target(&self, scheme: Option<&str>, host: &str, port: u16) -> Result<(), Refusal> {
        let host = host
            .trim_matches(['[', ']'])
            .trim_end_matches('.')
            .to_ascii_lowercase();
        if let Ok(ip) = host.parse::<IpAddr>() {
            self.check_address(ip)?;
        } else if METADATA_HOSTS.contains(&host.as_str()) {
            return Err(metadata_refusal());
        } else if !self.allow_private && (host == "localhost" || host.ends_with(".localhost")) {
            return Err(private_refusal());
        }
        let shown = match scheme {
            Some(scheme) => format!("{scheme}://{host}:{port}"),
            None => format!("{host}:{port}"),
        };
        if self.deny.iter().any(|p| p.matches(scheme, &host, port)) {
            return Err(Refusal::new(
                rule::DENY_LIST,
                format!("{shown} is on the configured deny list (browser.deny_origins)"),
            ));
        }
        if !self.allow.is_empty() && !self.allow.iter().any(|p| p.matches(scheme, &host, port)) {
            return Err(Refusal::new(
                rule::ALLOW_LIST,
                format!("{shown} is not on the configured allow list (browser.allow_origins)"),
            ));
        }
        Ok(())
    }

    /// Whether an address (literal, or what a name resolved to) may be connected to.
    pub fn check_address(&self, ip: IpAddr) -> Result<(), Refusal> {
        let ip = canonical(ip);
        if is_metadata(ip) {
            return Err(metadata_refusal());
        }
        if !self.allow_private && is_private(ip) {
            return Err(private_refusal());
        }
        Ok(())
    }
}

fn metadata_refusal() -> Refusal {
    Refusal::new(
        rule::METADATA,
        "cloud metadata addresses are never reachable from the browser",
    )
}

fn private_refusal() -> Refusal {
    Refusal::new(
        rule::PRIVATE_NETWORK,
        "loopback and private network addresses are not reachable from the browser here \
         (browser.allow_private_networks)",
    )
}

/// `scheme://host[:port]` of a URL: what the audit log records (never the path or query).
pub fn origin(url: &Url) -> String {
    url.origin().ascii_serialization()
}

/// The origin of a URL given as text, or its scheme alone when it has none (data:, file:).
pub fn origin_of(text: &str) -> String {
    match Url::parse(text) {
        Ok(url) if url.host().is_some() => origin(&url),
        Ok(url) => format!("{}:", url.scheme()),
        Err(_) => "(unparsable)".into(),
    }
}

fn shorten(text: &str) -> String {
    text.chars().take(80).collect()
}

/// An IPv6 address that carries an IPv4 one (mapped `::ffff:a.b.c.d`, compatible `::a.b.c.d`,
/// NAT64 `64:ff9b::a.b.c.d` and `64:ff9b:1::/48`) as that IPv4 address; others unchanged.
fn canonical(ip: IpAddr) -> IpAddr {
    let IpAddr::V6(v6) = ip else {
        return ip;
    };
    if let Some(v4) = v6.to_ipv4_mapped() {
        return IpAddr::V4(v4);
    }
    let s = v6.segments();
    let embedded = Ipv4Addr::new((s[6] >> 8) as u8, s[6] as u8, (s[7] >> 8) as u8, s[7] as u8);
    let compatible = s[..6] == [0; 6] && !v6.is_loopback() && !v6.is_unspecified();
    let nat64 =
        s[..6] == [0x64, 0xff9b, 0, 0, 0, 0] || (s[0] == 0x64 && s[1] == 0xff9b && s[2] == 1);
    if compatible || nat64 {
        IpAddr::V4(embedded)
    } else {
        ip
    }
}

/// Link-local IPv4 (169.254.0.0/16, where AWS, GCP and Azure serve metadata), Alibaba's
/// 100.100.100.200 and AWS's IPv6 endpoint fd00:ec2::254.
fn is_metadata(ip: IpAddr) -> bool {
    match ip {
        IpAddr::V4(v4) => v4.is_link_local() || v4 == Ipv4Addr::new(100, 100, 100, 200),
        IpAddr::V6(v6) => v6 == Ipv6Addr::new(0xfd00, 0xec2, 0, 0, 0, 0, 0, 0x254),
    }
}

/// Loopback, private, shared (100.64.0.0/10), link-local, unique-local (fc00::/7), site-local
/// and unspecified addresses.
fn is_private(ip: IpAddr) -> bool {
    match ip {
        IpAddr::V4(v4) => {
            let [a, b, ..] = v4.octets();
            v4.is_loopback()
                || v4.is_private()
                || v4.is_link_local()
                || a == 0
                || (a == 100 && (64..128).contains(&b))
        }
        IpAddr::V6(v6) => {
            let first = v6.segments()[0];
            v6.is_loopback()
                || v6.is_unspecified()
                || (first & 0xfe00) == 0xfc00
                || (first & 0xffc0) == 0xfe80
                || (first & 0xffc0) == 0xfec0
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dangerous_urls_are_refused() -> Result<(), String> {
        let policy = UrlPolicy::new(&[], &[], true)?;
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
            "http://[::a9fe:a9fe]/",
            "http://[64:ff9b::a9fe:a9fe]/",
            "http://[64:ff9b:1::a9fe:a9fe]/",
            "http://[fd00:ec2::254]/",
            "http://100.100.100.200/",
            "http://METADATA.google.internal./",
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
        Ok(())
    }

    #[test]
    fn allow_and_deny_lists() -> Result<(), String> {
        let policy = UrlPolicy::new(
            &["*.example.com".into(), "http://127.0.0.1:9000".into()],
            &["bad.example.com".into()],
            true,
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

    #[test]
    fn private_networks_are_refused_unless_allowed() -> Result<(), String> {
        let closed = UrlPolicy::new(&[], &[], false)?;
        let open = UrlPolicy::new(&[], &[], true)?;
        for url in [
            "http://127.0.0.1:8080/",
            "http://127.9.9.9/",
            "http://0.0.0.0:80/",
            "http://10.1.2.3/",
            "http://172.16.0.1/",
            "http://192.168.1.1/",
            "http://100.64.0.1/",
            "http://[::1]/",
            "http://[::]/",
            "http://[::ffff:127.0.0.1]/",
            "http://[::ffff:7f00:1]/",
            "http://[::7f00:1]/",
            "http://[64:ff9b::a00:1]/",
            "http://[fd12:3456::1]/",
            "http://[fe80::1]/",
            "http://localhost:3000/",
            "http://app.localhost/",
            "ws://127.0.0.1/socket",
        ] {
            let refused = closed.check_request(url).map_err(|r| r.rule);
            assert_eq!(refused, Err(rule::PRIVATE_NETWORK), "{url}");
            assert!(
                open.check_request(url).is_ok(),
                "{url} refused with private networks allowed"
            );
        }
        for ip in ["8.8.8.8", "2001:4860:4860::8888", "::ffff:8.8.8.8"] {
            let ip: IpAddr = ip.parse().map_err(|e| format!("{e}"))?;
            assert!(closed.check_address(ip).is_ok(), "{ip}");
        }
        assert_eq!(
            open.check_address(
                "::ffff:169.254.169.254"
                    .parse()
                    .map_err(|e| format!("{e}"))?
            )
            .map_err(|r| r.rule),
            Err(rule::METADATA)
        );
        Ok(())
    }

    #[test]
    fn page_requests_keep_to_network_schemes() -> Result<(), String> {
        let policy = UrlPolicy::new(&[], &[], true)?;
        for url in [
            "file:///etc/passwd",
            "chrome://version",
            "devtools://x",
            "view-source:http://a/",
        ] {
            assert_eq!(
                policy.check_request(url).map_err(|r| r.rule),
                Err(rule::SCHEME),
                "{url}"
            );
        }
        for url in [
            "data:text/plain,hi",
            "blob:http://a.example/123",
            "wss://a.example/s",
        ] {
            assert!(policy.check_request(url).is_ok(), "{url}");
        }
        Ok(())
    }

    #[test]
    fn a_tunnel_is_checked_by_host_and_port() -> Result<(), String> {
        let policy = UrlPolicy::new(&["https://a.example".into()], &[], true)?;
        assert!(policy.check_target(None, "a.example", 443).is_ok());
        assert!(policy.check_request("wss://a.example/s").is_ok());
        assert_eq!(
            policy
                .check_target(None, "b.example", 443)
                .map_err(|r| r.rule),
            Err(rule::ALLOW_LIST)
        );
        assert_eq!(
            policy
                .check_target(None, "[fd00:ec2::254]", 80)
                .map_err(|r| r.rule),
            Err(rule::METADATA)
        );
        Ok(())
    }
}
