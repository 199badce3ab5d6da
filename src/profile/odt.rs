//! Okta Device Trust: every payload an MDM deploys for it, in one profile per platform.
//!
//! Facts as Okta, Apple and Kandji publish them: Okta Verify reads its managed configuration from
//! the preference domains `com.okta.mobile` and `com.okta.mobile.auth-service-extension` (both);
//! Okta's Apple team identifier is `B7F62B65BN`; the SSO extension for Device Trust is the
//! `Credential` type with realm `Okta Device`; on iOS/iPadOS the management signal is the
//! `managementHint` secret, not a certificate.

use plist::Value;

use super::{certificate_payloads, dict, payload, s, scep_payload, ScepProfile};

pub const OKTA_TEAM_ID: &str = "B7F62B65BN";
pub const OKTA_VERIFY_DOMAINS: [&str; 2] = ["com.okta.mobile", "com.okta.mobile.auth-service-extension"];
const SSO_EXTENSION_ID: &str = "com.okta.mobile.auth-service-extension";
const CROWDSTRIKE_PLUGIN: &str = "com.crowdstrike.zta";
const CROWDSTRIKE_SIGNALS: &str = "/Library/Application Support/Crowdstrike/ZeroTrustAssessment/OVSignals.zta";

#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum Platform {
    Macos,
    Ios,
}

/// How app preferences are wrapped.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum Format {
    /// One payload per preference domain (PayloadType = the domain).
    Standard,
    /// `com.apple.ManagedClient.preferences` (Forced / mcx_preference_settings), what Jamf Pro's
    /// custom-settings upload expects.
    Jamf,
}

/// Everything the ODT profile needs.
pub struct Odt<'a> {
    /// `https://example.okta.com`
    pub org_url: String,
    /// Hosts for the SSO extension: the org domain and any custom domains, without scheme.
    pub hosts: Vec<String>,
    pub platform: Platform,
    pub format: Format,
    pub prefix: &'a str,
    pub scep: Option<ScepProfile<'a>>,
    pub management_hint: Option<&'a str>,
    pub legacy_login_item: bool,
    pub report_diagnostics: Option<bool>,
}

/// `example.okta.com` or `https://example.okta.com/` → (`https://example.okta.com`, `example.okta.com`).
pub fn org(org: &str) -> (String, String) {
    let host = org
        .trim()
        .trim_start_matches("https://")
        .trim_start_matches("http://")
        .trim_end_matches('/')
        .to_string();
    (format!("https://{host}"), host)
}

/// The same keys in each Okta Verify preference domain, as a payload per domain or wrapped
/// for Jamf.
fn app_preferences(prefix: &str, format: Format, name: &str, keys: &[(&str, Value)]) -> Vec<Value> {
    let settings = || Value::Dictionary(keys.iter().map(|(k, v)| (k.to_string(), v.clone())).collect());
    match format {
        Format::Standard => OKTA_VERIFY_DOMAINS
            .iter()
            .map(|domain| {
                let mut content: Vec<(&str, Value)> = keys.iter().map(|(k, v)| (*k, v.clone())).collect();
                content.sort_by(|a, b| a.0.cmp(b.0));
                payload(
                    domain,
                    format!("{prefix}.{name}.{domain}"),
                    &format!("Okta Verify ({domain})"),
                    content,
                )
            })
            .collect(),
        Format::Jamf => {
            let domains = OKTA_VERIFY_DOMAINS
                .iter()
                .map(|d| {
                    (
                        d.to_string(),
                        dict(vec![(
                            "Forced",
                            Value::Array(vec![dict(vec![("mcx_preference_settings", settings())])]),
                        )]),
                    )
                })
                .collect();
            vec![payload(
                "com.apple.ManagedClient.preferences",
                format!("{prefix}.{name}.managed-client"),
                "Okta Verify (managed preferences)",
                vec![("PayloadContent", Value::Dictionary(domains))],
            )]
        }
    }
}

/// The SSO extension in its Okta Device Trust form (not the `Redirect` type of Desktop Password
/// Sync, a different product).
fn sso_extension(o: &Odt<'_>) -> Value {
    let mut content = vec![
        ("ExtensionIdentifier", s(SSO_EXTENSION_ID)),
        ("TeamIdentifier", s(OKTA_TEAM_ID)),
        ("Type", s("Credential")),
        ("Realm", s("Okta Device")),
        ("Hosts", Value::Array(o.hosts.iter().map(|h| s(h.clone())).collect())),
    ];
    if o.platform == Platform::Ios {
        if let Some(hint) = o.management_hint {
            content.push(("ExtensionData", dict(vec![("managementHint", s(hint))])));
        }
    }
    payload(
        "com.apple.extensiblesso",
        format!("{}.sso-extension", o.prefix),
        "Okta Verify SSO extension",
        content,
    )
}

fn login_items(o: &Odt<'_>) -> Vec<Value> {
    let mut out = vec![payload(
        "com.apple.servicemanagement",
        format!("{}.login-item", o.prefix),
        "Okta Verify login item",
        vec![(
            "Rules",
            Value::Array(vec![dict(vec![
                ("RuleType", s("TeamIdentifier")),
                ("RuleValue", s(OKTA_TEAM_ID)),
                ("Comment", s("Okta Verify")),
            ])]),
        )],
    )];
    if o.legacy_login_item {
        out.push(payload(
            "com.apple.loginitems.managed",
            format!("{}.login-item.legacy", o.prefix),
            "Okta Verify login item (macOS 12 and older)",
            vec![(
                "AutoLaunchedApplicationDictionary-managed",
                Value::Array(vec![dict(vec![
                    ("Path", s("/Applications/Okta Verify.app")),
                    ("Hide", Value::Boolean(false)),
                ])]),
            )],
        ));
    }
    out
}

/// The payloads of the ODT profile for `o.platform`.
pub fn payloads(o: &Odt<'_>) -> Vec<Value> {
    let mut out = Vec::new();
    match o.platform {
        Platform::Macos => {
            if let Some(scep) = &o.scep {
                out.extend(certificate_payloads(o.prefix, scep.ca_der, scep.chain));
                out.push(scep_payload(scep));
            }
            let mut keys = vec![
                ("OktaVerify.OrgUrl", s(o.org_url.clone())),
                ("OktaVerify.EnrollmentOptions", s("SilentEnrollmentEnabled")),
            ];
            if let Some(d) = o.report_diagnostics {
                keys.push(("OktaVerify.ReportDiagnostics", Value::Boolean(d)));
            }
            out.extend(app_preferences(o.prefix, o.format, "okta-verify", &keys));
            out.extend(login_items(o));
            out.push(sso_extension(o));
        }
        Platform::Ios => out.push(sso_extension(o)),
    }
    out
}

/// iOS/iPadOS managed app configuration for Okta Verify (pasted into the MDM's App Config).
pub fn ios_app_config(org_url: &str, management_hint: Option<&str>) -> Value {
    let mut entries = vec![("OktaVerify.OrgUrl", s(org_url))];
    if let Some(hint) = management_hint {
        entries.push(("managementHint", s(hint)));
    }
    dict(entries)
}

/// The EDR plugin settings (CrowdStrike ZTA signals), deployed as a profile of their own.
pub fn crowdstrike_payloads(prefix: &str, format: Format) -> Vec<Value> {
    let keys = [
        ("OktaVerify.Plugins", Value::Array(vec![s(CROWDSTRIKE_PLUGIN)])),
        (
            CROWDSTRIKE_PLUGIN,
            dict(vec![
                ("location", s(CROWDSTRIKE_SIGNALS)),
                ("format", s("JWT")),
                ("type", s("file")),
            ]),
        ),
    ];
    app_preferences(prefix, format, "edr.crowdstrike", &keys)
}
