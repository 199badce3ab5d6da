//! Apple configuration profiles: the SCEP payload and the CA certificates a device needs.

pub mod odt;

use plist::{Dictionary, Value};
use x509_cert::name::Name;

/// A plist string.
pub fn s(v: impl Into<String>) -> Value {
    Value::String(v.into())
}

/// A plist dictionary, keys in the order given (Apple's tools and the golden file keep it).
pub fn dict(entries: Vec<(&str, Value)>) -> Value {
    Value::Dictionary(
        entries
            .into_iter()
            .map(|(k, v)| (k.to_string(), v))
            .collect::<Dictionary>(),
    )
}

/// A plist integer.
pub fn int(v: i64) -> Value {
    Value::Integer(v.into())
}

/// The XML property list document for `root`.
pub fn to_xml(root: &Value) -> String {
    let mut out = Vec::new();
    root.to_writer_xml(&mut out).expect("a plist value writes to memory");
    out.push(b'\n');
    String::from_utf8(out).expect("XML plists are UTF-8")
}

/// A random (version 4) UUID, upper case as Apple writes them.
pub fn uuid() -> String {
    let mut b = [0u8; 16];
    aws_lc_rs::rand::fill(&mut b).expect("system RNG");
    b[6] = (b[6] & 0x0f) | 0x40;
    b[8] = (b[8] & 0x3f) | 0x80;
    let h = hex::encode_upper(b);
    format!(
        "{}-{}-{}-{}-{}",
        &h[0..8],
        &h[8..12],
        &h[12..16],
        &h[16..20],
        &h[20..32]
    )
}

/// What goes into the SCEP payload.
pub struct ScepProfile<'a> {
    /// scepd's public SCEP URL.
    pub url: &'a str,
    /// The payload's Name (shown on the device, sent by Apple as GetCACert's `message`).
    pub name: &'a str,
    /// Subject, e.g. `CN=$COMPUTERNAME managementAttestation $UDID` (MDM variables pass through).
    pub subject: &'a Name,
    /// A challenge, or none for MDMs that fill it in themselves.
    pub challenge: Option<&'a str>,
    /// The issuing CA, DER.
    pub ca_der: &'a [u8],
    /// Certificates above the CA, DER (intermediates then root).
    pub chain: &'a [Vec<u8>],
    /// Reverse-DNS prefix of every PayloadIdentifier.
    pub identifier_prefix: &'a str,
}

/// `[[["CN","x"]],[["O","y"]]]`: the array-of-arrays form Apple's Subject takes, in DN order.
pub fn subject_array(subject: &Name) -> Value {
    let rdns = subject.iter_rdn().map(|rdn| {
        Value::Array(
            rdn.iter()
                .map(|atv| {
                    let key = attribute_short_name(&atv.oid);
                    let value = scepd_ca::name::attribute_string(&atv.value).unwrap_or_default();
                    Value::Array(vec![s(key), s(value)])
                })
                .collect(),
        )
    });
    Value::Array(rdns.collect())
}

fn attribute_short_name(oid: &const_oid::ObjectIdentifier) -> String {
    use const_oid::db::rfc4519;
    match *oid {
        rfc4519::CN => "CN".into(),
        rfc4519::O => "O".into(),
        rfc4519::OU => "OU".into(),
        rfc4519::C => "C".into(),
        rfc4519::L => "L".into(),
        rfc4519::ST => "ST".into(),
        rfc4519::SERIAL_NUMBER => "serialNumber".into(),
        rfc4519::UID => "UID".into(),
        other => other.to_string(),
    }
}

/// A payload dictionary's common keys.
pub fn payload(kind: &str, identifier: String, display_name: &str, mut content: Vec<(&str, Value)>) -> Value {
    let mut entries = vec![
        ("PayloadType", s(kind)),
        ("PayloadIdentifier", s(identifier)),
        ("PayloadUUID", s(uuid())),
        ("PayloadVersion", int(1)),
        ("PayloadDisplayName", s(display_name)),
    ];
    entries.append(&mut content);
    dict(entries)
}

/// The root and intermediate certificate payloads: macOS does not keep the chain GetCACert
/// returns, so the profile carries it.
pub fn certificate_payloads(prefix: &str, ca_der: &[u8], chain: &[Vec<u8>]) -> Vec<Value> {
    let mut out = Vec::new();
    let all: Vec<&[u8]> = std::iter::once(ca_der).chain(chain.iter().map(Vec::as_slice)).collect();
    for (i, der) in all.iter().enumerate() {
        let cert = <scepd_ca::Certificate as der::Decode>::from_der(der).ok();
        let self_signed = cert.is_some_and(|c| c.tbs_certificate().issuer() == c.tbs_certificate().subject());
        let kind = if self_signed {
            "com.apple.security.root"
        } else {
            "com.apple.security.pkcs1"
        };
        out.push(payload(
            kind,
            format!("{prefix}.ca.{i}"),
            if i == 0 { "scepd issuing CA" } else { "CA chain" },
            vec![
                ("PayloadContent", Value::Data(der.to_vec())),
                ("PayloadCertificateFileName", s(format!("ca-{i}.cer"))),
            ],
        ));
    }
    out
}

/// The `com.apple.security.scep` payload: RSA 2048, signing only, key not extractable, all
/// apps may use it (what Okta Device Trust needs), pinned to the CA by its SHA-256 fingerprint.
pub fn scep_payload(p: &ScepProfile<'_>) -> Value {
    let fingerprint = aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, p.ca_der)
        .as_ref()
        .to_vec();
    let mut content = vec![
        ("URL", s(p.url)),
        ("Name", s(p.name)),
        ("Subject", subject_array(p.subject)),
    ];
    if let Some(challenge) = p.challenge {
        content.push(("Challenge", s(challenge)));
    }
    content.extend([
        ("Keysize", int(2048)),
        ("Key Type", s("RSA")),
        ("Key Usage", int(1)),
        ("CAFingerprint", Value::Data(fingerprint)),
        ("AllowAllAppsAccess", Value::Boolean(true)),
        ("KeyIsExtractable", Value::Boolean(false)),
        ("Retries", int(3)),
        ("RetryDelay", int(10)),
    ]);
    payload(
        "com.apple.security.scep",
        format!("{}.scep", p.identifier_prefix),
        "Device certificate (SCEP)",
        vec![("PayloadContent", dict(content))],
    )
}

/// A whole unsigned configuration profile holding `payloads`.
pub fn configuration(prefix: &str, display_name: &str, scope_system: bool, payloads: Vec<Value>) -> String {
    let mut entries = vec![
        ("PayloadType", s("Configuration")),
        ("PayloadIdentifier", s(prefix)),
        ("PayloadUUID", s(uuid())),
        ("PayloadVersion", int(1)),
        ("PayloadDisplayName", s(display_name)),
        ("PayloadContent", Value::Array(payloads)),
    ];
    if scope_system {
        entries.push(("PayloadScope", s("System")));
    }
    to_xml(&dict(entries))
}

/// A profile signed as `security cms -S` does: CMS SignedData (SHA-256) with the profile as its
/// content, DER.
pub fn sign(xml: &str, cert_pem: &str, key_pem: &str) -> Result<Vec<u8>, Box<dyn std::error::Error>> {
    use crate::scep::digest::DigestAlg;
    use crate::scep::signed::{signed_data, SignatureAlgorithmField, Signing};
    let der = scepd_ca::pem::certificates(cert_pem)?
        .into_iter()
        .next()
        .ok_or("no certificate in the signing certificate file")?;
    let cert: scepd_ca::Certificate = der::Decode::from_der(&der)?;
    let key = scepd_ca::RsaKey::from_pem(key_pem)?;
    let signing = Signing {
        cert: &cert,
        key: &key,
        digest: DigestAlg::Sha256,
        algorithm_field: SignatureAlgorithmField::ShaWithRsa,
    };
    Ok(signed_data(Some(xml.as_bytes()), Vec::new(), &signing)?)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_keep_their_order_and_text_is_escaped() {
        let xml = to_xml(&dict(vec![
            ("z<b", s("x&y")),
            ("n", int(2)),
            ("l", Value::Array(vec![Value::Boolean(true)])),
        ]));
        let key = xml.find("<key>z&lt;b</key>").expect(&xml);
        assert!(key < xml.find("<key>n</key>").expect(&xml) && xml.contains("<string>x&amp;y</string>"));
        assert!(xml.contains("<integer>2</integer>") && xml.contains("<true/>") && xml.ends_with("</plist>\n"));
        assert_eq!(uuid().len(), 36);
        assert_ne!(uuid(), uuid());
    }
}
