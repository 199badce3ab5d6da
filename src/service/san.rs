//! Which requested subjectAltNames an issued certificate carries (`san_types`,
//! `san_patterns`). Names of other types, or not matching the patterns for their type, are
//! dropped (and logged); the rest are copied. The extension's criticality is never copied:
//! RFC 5280 §4.2.1.6 makes it critical exactly when the subject is empty, which `issue` sets.

use der::Encode;
use x509_cert::ext::pkix::name::GeneralName;
use x509_cert::ext::pkix::SubjectAltName;
use x509_cert::ext::Extension;

/// A subjectAltName type, as the configuration names it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize, clap::ValueEnum)]
#[serde(rename_all = "snake_case")]
pub enum SanType {
    Dns,
    Email,
    Uri,
    Ip,
    /// Any otherName, Microsoft's UPN included: relying parties that map certificates to
    /// accounts by UPN trust it, so it is off unless switched on.
    #[value(name = "other_name")]
    OtherName,
}

impl SanType {
    fn of(name: &GeneralName) -> Option<SanType> {
        Some(match name {
            GeneralName::DnsName(_) => SanType::Dns,
            GeneralName::Rfc822Name(_) => SanType::Email,
            GeneralName::UniformResourceIdentifier(_) => SanType::Uri,
            GeneralName::IpAddress(_) => SanType::Ip,
            GeneralName::OtherName(_) => SanType::OtherName,
            _ => return None,
        })
    }

    fn name(self) -> &'static str {
        match self {
            SanType::Dns => "dns",
            SanType::Email => "email",
            SanType::Uri => "uri",
            SanType::Ip => "ip",
            SanType::OtherName => "other_name",
        }
    }
}

/// The default `san_types`: what a device names itself with; no otherName.
pub const DEFAULT_SAN_TYPES: [SanType; 4] = [SanType::Dns, SanType::Email, SanType::Uri, SanType::Ip];

/// The SAN policy, from the configuration.
#[derive(Clone, Debug)]
pub struct SanPolicy {
    pub types: Vec<SanType>,
    /// `(type, glob)`: when a type has patterns, its values must match one (`*` matches any
    /// run of characters; DNS names and emails compare case-insensitively).
    pub patterns: Vec<(SanType, String)>,
}

impl Default for SanPolicy {
    fn default() -> Self {
        SanPolicy {
            types: DEFAULT_SAN_TYPES.to_vec(),
            patterns: Vec::new(),
        }
    }
}

/// Parses a `san_patterns` entry: `TYPE:GLOB`, e.g. `dns:*.devices.example.com`.
pub fn parse_pattern(text: &str) -> Result<(SanType, String), String> {
    let (kind, glob) = text
        .split_once(':')
        .ok_or_else(|| format!("SAN pattern {text:?} is not TYPE:GLOB"))?;
    let kind = match kind {
        "dns" => SanType::Dns,
        "email" => SanType::Email,
        "uri" => SanType::Uri,
        "ip" => SanType::Ip,
        _ => return Err(format!("SAN pattern {text:?}: the type is one of dns, email, uri, ip")),
    };
    Ok((kind, glob.to_string()))
}

/// `*` matches any run of characters.
fn glob_matches(glob: &str, value: &str) -> bool {
    let mut parts = glob.split('*');
    let first = parts.next().unwrap_or_default();
    let Some(mut rest) = value.strip_prefix(first) else {
        return false;
    };
    let parts: Vec<&str> = parts.collect();
    let Some((last, middle)) = parts.split_last() else {
        return rest.is_empty();
    };
    for part in middle {
        match rest.find(part) {
            Some(i) => rest = &rest[i + part.len()..],
            None => return false,
        }
    }
    rest.len() >= last.len() && rest.ends_with(last)
}

pub(crate) fn text_of(name: &GeneralName) -> Option<String> {
    match name {
        GeneralName::DnsName(s) => Some(s.to_string().to_ascii_lowercase()),
        GeneralName::Rfc822Name(s) => Some(s.to_string().to_ascii_lowercase()),
        GeneralName::UniformResourceIdentifier(s) => Some(s.to_string()),
        GeneralName::IpAddress(octets) => match octets.as_bytes().len() {
            4 => <[u8; 4]>::try_from(octets.as_bytes())
                .ok()
                .map(|o| std::net::Ipv4Addr::from(o).to_string()),
            16 => <[u8; 16]>::try_from(octets.as_bytes())
                .ok()
                .map(|o| std::net::Ipv6Addr::from(o).to_string()),
            _ => None,
        },
        _ => None,
    }
}

impl SanPolicy {
    fn allows(&self, name: &GeneralName) -> bool {
        let Some(kind) = SanType::of(name) else {
            return false;
        };
        if !self.types.contains(&kind) {
            return false;
        }
        let mut globs = self.patterns.iter().filter(|(k, _)| *k == kind).peekable();
        if globs.peek().is_none() {
            return true;
        }
        let Some(value) = text_of(name) else {
            return false;
        };
        globs.any(|(_, glob)| glob_matches(&glob.to_ascii_lowercase(), &value.to_ascii_lowercase()))
    }

    /// The subjectAltName extension to issue for a requested one: the allowed names only, not
    /// critical; `None` when none is left (or the request's does not parse).
    pub fn apply(&self, requested: &Extension) -> Option<Extension> {
        let san = <SubjectAltName as der::Decode>::from_der(requested.extn_value.as_bytes()).ok()?;
        let (kept, dropped): (Vec<GeneralName>, Vec<GeneralName>) = san.0.into_iter().partition(|n| self.allows(n));
        for name in &dropped {
            let kind = SanType::of(name).map_or("other", SanType::name);
            tracing::info!(san_type = kind, "requested subjectAltName dropped by the SAN policy");
        }
        if kept.is_empty() {
            return None;
        }
        let der = SubjectAltName(kept).to_der().ok()?;
        Some(Extension {
            extn_id: requested.extn_id,
            critical: false,
            extn_value: der::asn1::OctetString::new(der).ok()?,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn globs() {
        assert!(glob_matches("*.example.com", "a.example.com"));
        assert!(glob_matches("*", "anything"));
        assert!(glob_matches("a*b*c", "a-x-b-y-c"));
        assert!(!glob_matches("*.example.com", "example.com.evil"));
        assert!(!glob_matches("exact", "exact2"));
        assert!(glob_matches("exact", "exact"));
        assert!(!glob_matches("ab*ba", "aba"));
    }

    #[test]
    fn patterns_parse() {
        assert_eq!(
            parse_pattern("dns:*.example.com").unwrap(),
            (SanType::Dns, "*.example.com".into())
        );
        assert!(parse_pattern("upn:*").is_err() && parse_pattern("nocolon").is_err());
    }
}
