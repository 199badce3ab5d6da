//! The client's address: the TCP peer, or — only when the peer is a configured trusted proxy —
//! the address that proxy reports in `Forwarded` (RFC 7239) or `X-Forwarded-For`. Everything
//! per source (failure limits, logs, the audit trail) uses it. Nobody else's forwarding headers
//! are believed: a client could name any address in them.

use std::net::IpAddr;

use hyper::HeaderMap;

/// An address or a CIDR range, e.g. `10.0.0.1`, `10.0.0.0/8`, `fd00::/8`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct AddressRange {
    network: IpAddr,
    prefix: u8,
}

impl AddressRange {
    pub fn parse(text: &str) -> Result<AddressRange, String> {
        let bad = || format!("trusted proxy {text:?} is not an address or CIDR range");
        let (addr, prefix) = match text.trim().split_once('/') {
            Some((a, p)) => (a, Some(p.parse::<u8>().map_err(|_| bad())?)),
            None => (text.trim(), None),
        };
        let network: IpAddr = addr.parse().map_err(|_| bad())?;
        let max = if network.is_ipv4() { 32 } else { 128 };
        let prefix = prefix.unwrap_or(max);
        if prefix > max {
            return Err(bad());
        }
        Ok(AddressRange { network, prefix })
    }

    pub fn contains(&self, ip: IpAddr) -> bool {
        fn bits(ip: IpAddr) -> (u128, u32) {
            match ip {
                IpAddr::V4(v4) => (u128::from(u32::from(v4)), 32),
                IpAddr::V6(v6) => (u128::from(v6), 128),
            }
        }
        let ip = match ip {
            IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(ip, IpAddr::V4),
            v4 => v4,
        };
        let ((net, width), (addr, addr_width)) = (bits(self.network), bits(ip));
        if width != addr_width {
            return false;
        }
        let shift = width - u32::from(self.prefix);
        shift >= width || (net >> shift) == (addr >> shift)
    }
}

/// The configured trusted proxies.
#[derive(Clone, Debug, Default)]
pub struct TrustedProxies(Vec<AddressRange>);

impl TrustedProxies {
    pub fn parse(entries: &[String]) -> Result<TrustedProxies, String> {
        entries
            .iter()
            .map(|e| AddressRange::parse(e))
            .collect::<Result<_, _>>()
            .map(TrustedProxies)
    }

    pub fn trusts(&self, ip: IpAddr) -> bool {
        self.0.iter().any(|r| r.contains(ip))
    }

    /// The client address of a request that arrived from `peer`. Proxies append the address
    /// they received from, so the header is read right to left, skipping trusted proxies: the
    /// first address that is not one is the client (what is left of it, anyone could have
    /// written). `Forwarded` is preferred over `X-Forwarded-For` when both are present.
    pub fn client(&self, peer: IpAddr, headers: &HeaderMap) -> IpAddr {
        if !self.trusts(peer) {
            return peer;
        }
        let chain = forwarded_for(headers).or_else(|| x_forwarded_for(headers));
        let Some(chain) = chain else {
            return peer;
        };
        let mut client = peer;
        for hop in chain.iter().rev() {
            match hop {
                Some(ip) => {
                    client = *ip;
                    if !self.trusts(*ip) {
                        break;
                    }
                }
                // An obfuscated or unknown hop: nothing further left can be believed.
                None => break,
            }
        }
        client
    }
}

/// The `for=` values of every `Forwarded` header, in order (`None` for one that is not an IP
/// address: `unknown`, an obfuscated identifier).
fn forwarded_for(headers: &HeaderMap) -> Option<Vec<Option<IpAddr>>> {
    let mut hops = Vec::new();
    for value in headers.get_all("forwarded") {
        let text = value.to_str().ok()?;
        for element in text.split(',') {
            let for_value = element.split(';').find_map(|pair| {
                let (k, v) = pair.split_once('=')?;
                k.trim().eq_ignore_ascii_case("for").then(|| v.trim())
            });
            if let Some(v) = for_value {
                hops.push(parse_node(v.trim_matches('"')));
            }
        }
    }
    (!hops.is_empty()).then_some(hops)
}

fn x_forwarded_for(headers: &HeaderMap) -> Option<Vec<Option<IpAddr>>> {
    let mut hops = Vec::new();
    for value in headers.get_all("x-forwarded-for") {
        let text = value.to_str().ok()?;
        hops.extend(text.split(',').map(|h| parse_node(h.trim())));
    }
    (!hops.is_empty()).then_some(hops)
}

/// `192.0.2.1`, `192.0.2.1:4711`, `[2001:db8::1]`, `[2001:db8::1]:4711`, `2001:db8::1`.
fn parse_node(node: &str) -> Option<IpAddr> {
    if let Ok(ip) = node.parse() {
        return Some(ip);
    }
    if let Some(rest) = node.strip_prefix('[') {
        return rest.split_once(']')?.0.parse().ok();
    }
    node.rsplit_once(':')?.0.parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(pairs: &[(&'static str, &'static str)]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for (k, v) in pairs {
            h.append(*k, v.parse().unwrap());
        }
        h
    }

    #[test]
    fn ranges() {
        let r = AddressRange::parse("10.0.0.0/8").unwrap();
        assert!(r.contains("10.1.2.3".parse().unwrap()));
        assert!(!r.contains("11.0.0.1".parse().unwrap()));
        assert!(r.contains("::ffff:10.0.0.1".parse().unwrap()));
        assert!(AddressRange::parse("::/0")
            .unwrap()
            .contains("2001:db8::1".parse().unwrap()));
        assert!(AddressRange::parse("192.0.2.1")
            .unwrap()
            .contains("192.0.2.1".parse().unwrap()));
        assert!(AddressRange::parse("10.0.0.0/33").is_err() && AddressRange::parse("proxy").is_err());
    }

    #[test]
    fn only_a_trusted_peer_is_believed_and_the_chain_is_read_from_the_right() {
        let proxies = TrustedProxies::parse(&["127.0.0.1".into(), "10.0.0.0/8".into()]).unwrap();
        let proxy: IpAddr = "127.0.0.1".parse().unwrap();
        let stranger: IpAddr = "192.0.2.9".parse().unwrap();
        let xff = headers(&[("x-forwarded-for", "203.0.113.7, 198.51.100.1, 10.0.0.5")]);
        assert_eq!(proxies.client(proxy, &xff), "198.51.100.1".parse::<IpAddr>().unwrap());
        assert_eq!(proxies.client(stranger, &xff), stranger);
        let fwd = headers(&[("forwarded", "for=192.0.2.60;proto=http, for=\"[2001:db8::1]:4711\"")]);
        assert_eq!(proxies.client(proxy, &fwd), "2001:db8::1".parse::<IpAddr>().unwrap());
        assert_eq!(proxies.client(proxy, &headers(&[])), proxy);
        let unknown = headers(&[("forwarded", "for=unknown")]);
        assert_eq!(proxies.client(proxy, &unknown), proxy);
    }
}
