//! What every HTTP request must pass before anything else: a `Host` this server answers to (DNS
//! rebinding), an `Origin` the operator allowed when a browser sends one, and the client address
//! it is accounted to (the connection's peer, or the client a trusted proxy names).

use std::net::IpAddr;

use http::HeaderMap;

use crate::config::http::AddressBlock;

/// The host part of a `Host` header or authority, lowercased, without its port.
pub fn host_name(authority: &str) -> String {
    let authority = authority.trim();
    let host = if let Some(rest) = authority.strip_prefix('[') {
        rest.split_once(']').map_or(rest, |(inside, _)| inside)
    } else {
        authority
            .rsplit_once(':')
            .map_or(authority, |(host, port)| {
                if port.bytes().all(|b| b.is_ascii_digit()) {
                    host
                } else {
                    authority
                }
            })
    };
    host.trim_end_matches('.').to_ascii_lowercase()
}

/// The host names requests may name: loopback, the public URL's host, and the operator's extras.
pub fn allowed_hosts(public_url: &str, extra: &[String]) -> Vec<String> {
    let mut hosts: Vec<String> = ["localhost", "127.0.0.1", "::1"]
        .iter()
        .map(|h| (*h).to_owned())
        .collect();
    if let Ok(url) = url::Url::parse(public_url)
        && let Some(host) = url.host_str()
    {
        hosts.push(host_name(host));
    }
    hosts.extend(extra.iter().map(|h| host_name(h)));
    hosts.sort();
    hosts.dedup();
    hosts
}

/// One allowed browser origin: scheme, host and port (`None`: any port, written `:*`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OriginRule {
    scheme: String,
    host: String,
    port: Option<u16>,
    null: bool,
}

fn default_port(scheme: &str) -> u16 {
    if scheme == "https" { 443 } else { 80 }
}

impl OriginRule {
    /// Parses a configured origin (validated at start-up, so a bad one is skipped here).
    pub fn parse(text: &str) -> Option<Self> {
        if text == "null" {
            return Some(Self {
                scheme: String::new(),
                host: String::new(),
                port: None,
                null: true,
            });
        }
        let any_port = text.ends_with(":*");
        let url = url::Url::parse(text.trim_end_matches(":*")).ok()?;
        let scheme = url.scheme().to_owned();
        Some(Self {
            port: if any_port {
                None
            } else {
                Some(url.port().unwrap_or(default_port(&scheme)))
            },
            host: host_name(url.host_str()?),
            scheme,
            null: false,
        })
    }

    fn matches(&self, origin: &str) -> bool {
        if origin == "null" {
            return self.null;
        }
        let Ok(url) = url::Url::parse(origin) else {
            return false;
        };
        let Some(host) = url.host_str() else {
            return false;
        };
        url.scheme() == self.scheme
            && host_name(host) == self.host
            && self
                .port
                .is_none_or(|p| url.port().unwrap_or(default_port(url.scheme())) == p)
    }
}

/// Why a request is refused before authentication.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Forbidden {
    Host,
    Origin,
}

impl Forbidden {
    pub fn as_str(self) -> &'static str {
        match self {
            Forbidden::Host => "host not allowed",
            Forbidden::Origin => "origin not allowed",
        }
    }
}

/// Checks `Host` and, when present, `Origin`.
pub fn check(
    headers: &HeaderMap,
    hosts: &[String],
    origins: &[OriginRule],
) -> Result<(), Forbidden> {
    let host = headers
        .get(http::header::HOST)
        .and_then(|h| h.to_str().ok())
        .map(host_name)
        .ok_or(Forbidden::Host)?;
    if !hosts.contains(&host) {
        return Err(Forbidden::Host);
    }
    if let Some(origin) = headers.get(http::header::ORIGIN) {
        let origin = origin.to_str().map_err(|_| Forbidden::Origin)?;
        if !origins.iter().any(|rule| rule.matches(origin)) {
            return Err(Forbidden::Origin);
        }
    }
    Ok(())
}

/// The address a request is accounted to. Behind a trusted proxy, the right-most
/// `X-Forwarded-For` entry that is not itself a trusted proxy; otherwise the peer.
pub fn client_address(peer: IpAddr, headers: &HeaderMap, proxies: &[AddressBlock]) -> IpAddr {
    let trusted = |a: IpAddr| proxies.iter().any(|p| p.contains(a));
    if !trusted(peer) {
        return peer;
    }
    let mut client = peer;
    let hops = headers
        .get_all("x-forwarded-for")
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .map(str::trim)
        .collect::<Vec<_>>();
    for hop in hops.iter().rev() {
        let Ok(address) = hop.parse::<IpAddr>() else {
            // Not an address: what lies beyond it cannot be believed.
            return client;
        };
        client = address;
        if !trusted(address) {
            return address;
        }
    }
    client
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(pairs: &[(&'static str, &str)]) -> HeaderMap {
        let mut map = HeaderMap::new();
        for (name, value) in pairs {
            map.append(*name, value.parse().unwrap());
        }
        map
    }

    #[test]
    fn host_names_lose_their_ports() {
        assert_eq!(host_name("LocalHost:8750"), "localhost");
        assert_eq!(host_name("[::1]:8750"), "::1");
        assert_eq!(host_name("127.0.0.1"), "127.0.0.1");
        assert_eq!(host_name("mcp.example.com."), "mcp.example.com");
    }

    #[test]
    fn hosts_and_origins_are_checked() {
        let hosts = allowed_hosts("https://mcp.example.com/mcp", &[]);
        let origins = vec![OriginRule::parse("https://app.example.com").unwrap()];
        assert_eq!(
            check(&headers(&[("host", "127.0.0.1:8750")]), &hosts, &origins),
            Ok(())
        );
        assert_eq!(
            check(&headers(&[("host", "mcp.example.com")]), &hosts, &origins),
            Ok(())
        );
        assert_eq!(
            check(&headers(&[("host", "evil.example:8750")]), &hosts, &origins),
            Err(Forbidden::Host)
        );
        assert_eq!(check(&headers(&[]), &hosts, &origins), Err(Forbidden::Host));
        let with = |origin| headers(&[("host", "localhost"), ("origin", origin)]);
        assert_eq!(
            check(&with("https://app.example.com"), &hosts, &origins),
            Ok(())
        );
        assert_eq!(
            check(&with("https://app.example.com:443"), &hosts, &origins),
            Ok(())
        );
        assert_eq!(
            check(&with("https://app.example.com:8443"), &hosts, &origins),
            Err(Forbidden::Origin)
        );
        assert_eq!(
            check(&with("http://app.example.com"), &hosts, &origins),
            Err(Forbidden::Origin)
        );
        assert_eq!(
            check(&with("null"), &hosts, &origins),
            Err(Forbidden::Origin)
        );
        let any = vec![OriginRule::parse("http://localhost:*").unwrap()];
        assert_eq!(check(&with("http://localhost:6274"), &hosts, &any), Ok(()));
    }

    #[test]
    fn only_trusted_proxies_name_the_client() {
        let proxies = vec![AddressBlock::parse("10.0.0.0/8").unwrap()];
        let forwarded = headers(&[("x-forwarded-for", "203.0.113.9, 10.1.1.1")]);
        let proxy: IpAddr = "10.0.0.2".parse().unwrap();
        let stranger: IpAddr = "198.51.100.4".parse().unwrap();
        assert_eq!(
            client_address(proxy, &forwarded, &proxies),
            "203.0.113.9".parse::<IpAddr>().unwrap()
        );
        assert_eq!(client_address(stranger, &forwarded, &proxies), stranger);
        assert_eq!(client_address(proxy, &headers(&[]), &proxies), proxy);
        let spoofed = headers(&[("x-forwarded-for", "1.2.3.4, garbage, 10.1.1.1")]);
        assert_eq!(
            client_address(proxy, &spoofed, &proxies),
            "10.1.1.1".parse::<IpAddr>().unwrap()
        );
    }
}
