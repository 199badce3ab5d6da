//! Where a webhook may be sent: `https://`, or `http://` to loopback (or with `--allow-http`);
//! never to a link-local or cloud metadata address, checked again on every delivery after DNS
//! resolution (a name that resolved safely when added may not later).

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[non_exhaustive]
pub enum TargetError {
    #[error("not an absolute http(s) URL with a host")]
    NotUrl,
    #[error("only https:// URLs (http:// only to a loopback host, or with --allow-http)")]
    PlainHttp,
    #[error("URLs with user information are refused (put credentials in the URL's path or query)")]
    UserInfo,
    #[error("{0} is a link-local or cloud metadata address: refused")]
    Forbidden(IpAddr),
    #[error("{host} resolves to no address: {why}")]
    Resolve { host: String, why: String },
}

/// A parsed webhook URL.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Target {
    pub https: bool,
    /// Without IPv6 brackets.
    pub host: String,
    pub port: u16,
    pub path_and_query: String,
    /// Plain HTTP to a host that is not loopback, allowed by the operator.
    pub allow_http: bool,
}

impl Target {
    /// Checks `url` as `webhook add` does; the addresses are checked again at delivery.
    pub fn parse(url: &str, allow_http: bool) -> Result<Target, TargetError> {
        let uri: hyper::Uri = url.parse().map_err(|_| TargetError::NotUrl)?;
        let https = match uri.scheme_str() {
            Some("https") => true,
            Some("http") => false,
            _ => return Err(TargetError::NotUrl),
        };
        let authority = uri.authority().ok_or(TargetError::NotUrl)?;
        if authority.as_str().contains('@') {
            return Err(TargetError::UserInfo);
        }
        let host = authority
            .host()
            .trim_start_matches('[')
            .trim_end_matches(']')
            .to_string();
        if host.is_empty() {
            return Err(TargetError::NotUrl);
        }
        let target = Target {
            https,
            port: authority.port_u16().unwrap_or(if https { 443 } else { 80 }),
            path_and_query: uri.path_and_query().map_or("/".into(), |p| p.as_str().to_string()),
            host,
            allow_http,
        };
        if let Ok(ip) = target.host.parse::<IpAddr>() {
            target.check(ip)?;
        } else if !https && !allow_http && !target.host.eq_ignore_ascii_case("localhost") {
            return Err(TargetError::PlainHttp);
        }
        Ok(target)
    }

    /// Whether this target may be reached at `ip` (a literal host or a resolved one).
    pub fn check(&self, ip: IpAddr) -> Result<(), TargetError> {
        if forbidden(ip) {
            return Err(TargetError::Forbidden(ip));
        }
        if !self.https && !self.allow_http && !canonical(ip).is_loopback() {
            return Err(TargetError::PlainHttp);
        }
        Ok(())
    }
}

/// An IPv6 address that carries an IPv4 one, as that IPv4 address: IPv4-mapped (::ffff:0:0/96),
/// NAT64 (64:ff9b::/96), 6to4 (2002::/16, the address in bits 16–48) and the old
/// IPv4-compatible form (::/96), so that none of them reaches a forbidden IPv4 address where a
/// translator routes it.
fn canonical(ip: IpAddr) -> IpAddr {
    let IpAddr::V6(v6) = ip else {
        return ip;
    };
    if let Some(v4) = v6.to_ipv4_mapped() {
        return IpAddr::V4(v4);
    }
    let s = v6.segments();
    let v4 = |hi: u16, lo: u16| IpAddr::V4(Ipv4Addr::from((u32::from(hi) << 16) | u32::from(lo)));
    match s {
        [0x64, 0xff9b, 0, 0, 0, 0, hi, lo] => v4(hi, lo),
        [0x2002, hi, lo, ..] => v4(hi, lo),
        // ::/96 but not :: and ::1 themselves.
        [0, 0, 0, 0, 0, 0, hi, lo] if hi != 0 => v4(hi, lo),
        _ => ip,
    }
}

/// Link-local (169.254/16, where AWS, GCP and Azure serve instance metadata; fe80::/10), the
/// other clouds' metadata addresses, and what is no host at all.
fn forbidden(ip: IpAddr) -> bool {
    match canonical(ip) {
        IpAddr::V4(v4) => {
            v4.is_link_local()
                || v4.is_unspecified()
                || v4.is_broadcast()
                || v4.is_multicast()
                // Alibaba Cloud's metadata service.
                || v4 == Ipv4Addr::new(100, 100, 100, 200)
        }
        IpAddr::V6(v6) => {
            (v6.segments()[0] & 0xffc0) == 0xfe80
                || v6.is_unspecified()
                || v6.is_multicast()
                // AWS's IPv6 metadata service.
                || v6 == Ipv6Addr::new(0xfd00, 0xec2, 0, 0, 0, 0, 0, 0x254)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn https_anywhere_http_only_to_loopback() {
        assert!(Target::parse("https://siem.example.com/in", false).is_ok());
        assert!(Target::parse("http://127.0.0.1:9000/x", false).is_ok());
        assert!(Target::parse("http://[::1]:9000/x", false).is_ok());
        assert!(Target::parse("http://localhost/x", false).is_ok());
        assert_eq!(
            Target::parse("http://siem.example.com/in", false),
            Err(TargetError::PlainHttp)
        );
        assert_eq!(Target::parse("http://10.0.0.5/in", false), Err(TargetError::PlainHttp));
        assert!(Target::parse("http://10.0.0.5/in", true).is_ok());
        assert_eq!(Target::parse("ftp://x/", false), Err(TargetError::NotUrl));
        assert_eq!(Target::parse("https://u:p@x/", false), Err(TargetError::UserInfo));
    }

    #[test]
    fn link_local_and_metadata_are_refused_even_with_allow_http() {
        for url in [
            "http://169.254.169.254/latest/meta-data/",
            "https://169.254.1.1/",
            "https://[fe80::1]/",
            "https://[::ffff:169.254.169.254]/",
            // The same through NAT64, 6to4 and the IPv4-compatible form.
            "https://[64:ff9b::a9fe:a9fe]/",
            "https://[2002:a9fe:a9fe::1]/",
            "https://[::a9fe:a9fe]/",
            "https://[fd00:ec2::254]/",
            "https://100.100.100.200/",
            "https://0.0.0.0/",
        ] {
            assert!(
                matches!(Target::parse(url, true), Err(TargetError::Forbidden(_))),
                "{url}"
            );
        }
        let t = Target::parse("https://hooks.example.com/", false).unwrap();
        assert!(t.check("169.254.169.254".parse().unwrap()).is_err());
        assert!(t.check("192.0.2.1".parse().unwrap()).is_ok());
        assert!(
            t.check("64:ff9b::c000:201".parse().unwrap()).is_ok(),
            "NAT64 of 192.0.2.1"
        );
        assert!(t.check("2001:db8::1".parse().unwrap()).is_ok());
        let local = Target::parse("http://localhost:8080/", false).unwrap();
        assert!(
            local.check("192.0.2.1".parse().unwrap()).is_err(),
            "a name for loopback must resolve to it"
        );
    }
}
