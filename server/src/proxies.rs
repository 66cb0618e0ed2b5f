//! Who the client is behind a reverse proxy. Only a peer listed in `--trusted-proxies` is
//! believed about whom it forwards for (`Forwarded`, else `X-Forwarded-For`); from anyone else
//! the headers are ignored, or any client could pick the address its limits are counted against.

use std::net::IpAddr;

use axum::http::HeaderMap;
use forwarded_header_value::ForwardedHeaderValue;
use ipnet::IpNet;

/// The networks whose peers are reverse proxies.
#[derive(Debug, Clone, Default)]
pub struct TrustedProxies(Vec<IpNet>);

/// A request's client address, as the listener worked it out (a request extension).
#[derive(Debug, Clone, Copy)]
pub struct ClientAddr(pub IpAddr);

/// The client's address from a request's extensions (see [`ClientAddr`]), else its peer's, else
/// unspecified.
pub fn client_of(extensions: &axum::http::Extensions) -> IpAddr {
    if let Some(ClientAddr(ip)) = extensions.get::<ClientAddr>() {
        return *ip;
    }
    extensions
        .get::<axum::extract::ConnectInfo<std::net::SocketAddr>>()
        .map_or(IpAddr::from([0, 0, 0, 0]), |c| c.0.ip())
}

impl TrustedProxies {
    /// CIDRs (`10.0.0.0/8`) or single addresses.
    pub fn parse(list: &[String]) -> Result<TrustedProxies, String> {
        list.iter()
            .map(|s| s.trim())
            .filter(|s| !s.is_empty())
            .map(|s| {
                s.parse::<IpNet>()
                    .or_else(|_| s.parse::<IpAddr>().map(IpNet::from))
                    .map_err(|_| format!("--trusted-proxies: `{s}` is not an address or a CIDR"))
            })
            .collect::<Result<_, _>>()
            .map(TrustedProxies)
    }

    pub fn trusts(&self, ip: IpAddr) -> bool {
        self.0.iter().any(|net| net.contains(&ip))
    }

    /// The client: `peer`, unless `peer` is a trusted proxy; then the nearest address of the
    /// forwarding chain that is not one (the remotest when all are). A chain that does not parse
    /// leaves the peer.
    pub fn client(&self, peer: IpAddr, headers: &HeaderMap) -> IpAddr {
        if !self.trusts(peer) {
            return peer;
        }
        let header = |name: &str| headers.get(name).and_then(|v| v.to_str().ok());
        let chain = header("forwarded")
            .and_then(|v| ForwardedHeaderValue::from_forwarded(v).ok())
            .or_else(|| header("x-forwarded-for").and_then(|v| ForwardedHeaderValue::from_x_forwarded_for(v).ok()));
        let Some(chain) = chain else { return peer };
        let hops: Vec<IpAddr> = chain.iter().filter_map(|s| s.forwarded_for_ip()).collect();
        hops.iter().rev().find(|ip| !self.trusts(**ip)).or(hops.first()).copied().unwrap_or(peer)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(pairs: &[(&'static str, &str)]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for (k, v) in pairs {
            h.insert(*k, v.parse().unwrap());
        }
        h
    }

    #[test]
    fn only_a_trusted_peer_is_believed_and_the_nearest_untrusted_hop_is_the_client() {
        let proxies = TrustedProxies::parse(&["10.0.0.0/8".into(), "192.168.1.5".into()]).unwrap();
        let ip = |s: &str| s.parse::<IpAddr>().unwrap();
        let spoofed = headers(&[("x-forwarded-for", "6.6.6.6, 203.0.113.7")]);
        assert_eq!(proxies.client(ip("198.51.100.1"), &spoofed), ip("198.51.100.1"), "not a proxy: ignored");
        assert_eq!(proxies.client(ip("10.1.2.3"), &spoofed), ip("203.0.113.7"), "the nearest hop");
        let through_two = headers(&[("x-forwarded-for", "203.0.113.7, 10.9.9.9")]);
        assert_eq!(proxies.client(ip("192.168.1.5"), &through_two), ip("203.0.113.7"));
        let forwarded = headers(&[("forwarded", "for=203.0.113.8;proto=https"), ("x-forwarded-for", "1.1.1.1")]);
        assert_eq!(proxies.client(ip("10.0.0.1"), &forwarded), ip("203.0.113.8"), "Forwarded first");
        let garbage = headers(&[("x-forwarded-for", "not an address")]);
        assert_eq!(proxies.client(ip("10.0.0.1"), &garbage), ip("10.0.0.1"));
        assert!(TrustedProxies::parse(&["nonsense".into()]).is_err());
    }
}
