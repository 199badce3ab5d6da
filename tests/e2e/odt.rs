//! `scepd profile odt`: every payload of the Okta Device Trust set, per platform and format,
//! checked with Python's plistlib (and `openssl cms` for a signed profile); a golden file for the
//! default output; a device that follows the generated SCEP payload enrolls.

use std::path::Path;
use std::process::{Command, Output};

use scepd_ca::KeyBits;

use crate::support::requester::{recipient, Opts};
use crate::support::{openssl, Requester, Server};

const ORG: &str = "example.okta.com";

fn odt(server: &Server, extra: &[&str]) -> Output {
    let mut args = vec!["profile", "odt", "--okta-org", ORG];
    args.extend_from_slice(extra);
    let out = server.cli(&args);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    out
}

/// Runs a Python check over a plist file; `expect` is handed to it as JSON.
fn python_check(script: &str, file: &Path, expect: serde_json::Value) {
    let out = Command::new("python3")
        .args(["-c", script, file.to_str().unwrap(), &expect.to_string()])
        .output()
        .expect("python3");
    assert!(
        out.status.success(),
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

const MACOS_CHECK: &str = r#"
import plistlib, sys, json
p = plistlib.load(open(sys.argv[1], 'rb')); e = json.loads(sys.argv[2])
assert p['PayloadType'] == 'Configuration' and p['PayloadScope'] == 'System'
items = p['PayloadContent']
by = {}
for x in items:
    by.setdefault(x['PayloadType'], []).append(x)
    assert x['PayloadIdentifier'].startswith(p['PayloadIdentifier'] + '.'), x['PayloadIdentifier']
    assert x['PayloadVersion'] == 1
uuids = [p['PayloadUUID']] + [x['PayloadUUID'] for x in items]
assert len(set(uuids)) == len(uuids)
assert by['com.apple.security.root'][0]['PayloadContent'][:1] == b'0'
scep = by['com.apple.security.scep'][0]['PayloadContent']
assert scep['Subject'] == [[['CN', '$COMPUTERNAME managementAttestation $UDID']]], scep['Subject']
assert scep['Keysize'] == 2048 and scep['Key Type'] == 'RSA' and scep['Key Usage'] == 1
assert scep['KeyIsExtractable'] is False and scep['AllowAllAppsAccess'] is True
assert isinstance(scep['CAFingerprint'], bytes) and len(scep['CAFingerprint']) == 32
assert isinstance(scep['Retries'], int) and isinstance(scep['RetryDelay'], int)
assert ('Challenge' in scep) == e['challenge'], scep
if e['format'] == 'standard':
    for domain in ['com.okta.mobile', 'com.okta.mobile.auth-service-extension']:
        d = by[domain][0]
        assert d['OktaVerify.OrgUrl'] == 'https://example.okta.com'
        assert d['OktaVerify.EnrollmentOptions'] == 'SilentEnrollmentEnabled'
        assert d.get('OktaVerify.ReportDiagnostics') == e.get('diagnostics'), d
    assert 'com.apple.ManagedClient.preferences' not in by
else:
    mc = by['com.apple.ManagedClient.preferences'][0]['PayloadContent']
    assert set(mc) == {'com.okta.mobile', 'com.okta.mobile.auth-service-extension'}
    for domain, v in mc.items():
        s = v['Forced'][0]['mcx_preference_settings']
        assert s['OktaVerify.OrgUrl'] == 'https://example.okta.com' and s['OktaVerify.EnrollmentOptions'] == 'SilentEnrollmentEnabled'
    assert 'com.okta.mobile' not in by
rule = by['com.apple.servicemanagement'][0]['Rules'][0]
assert rule == {'RuleType': 'TeamIdentifier', 'RuleValue': 'B7F62B65BN', 'Comment': 'Okta Verify'}, rule
assert ('com.apple.loginitems.managed' in by) == e['legacy']
if e['legacy']:
    assert by['com.apple.loginitems.managed'][0]['AutoLaunchedApplicationDictionary-managed'][0]['Path'] == '/Applications/Okta Verify.app'
sso = by['com.apple.extensiblesso'][0]
assert sso['ExtensionIdentifier'] == 'com.okta.mobile.auth-service-extension' and sso['TeamIdentifier'] == 'B7F62B65BN'
assert sso['Type'] == 'Credential' and sso['Realm'] == 'Okta Device' and sso['Hosts'] == e['hosts'], sso
assert 'ExtensionData' not in sso
assert all(x['PayloadType'] != 'com.apple.extensiblesso' or x.get('Type') != 'Redirect' for x in items)
print('ok')
"#;

#[test]
fn macos_profile_standard_and_jamf_formats() {
    let server = Server::start(&[]);
    let dir = tempfile::tempdir().unwrap();
    let out = odt(
        &server,
        &[
            "--platform",
            "macos",
            "--mdm-challenge",
            "--legacy-login-item",
            "--report-diagnostics",
            "true",
            "--okta-custom-domain",
            "login.example.com",
        ],
    );
    let f = crate::support::openssl::write(dir.path(), "std.mobileconfig", &out.stdout);
    python_check(
        MACOS_CHECK,
        &f,
        serde_json::json!({"format": "standard", "challenge": false, "legacy": true, "diagnostics": true,
        "hosts": ["example.okta.com", "login.example.com"]}),
    );
    // The SCEP URL defaults to the running server's.
    assert!(String::from_utf8_lossy(&out.stdout).contains(&format!("{}/scep", server.base)));

    let out = odt(&server, &["--platform", "macos", "--format", "jamf", "--mint"]);
    let f = crate::support::openssl::write(dir.path(), "jamf.mobileconfig", &out.stdout);
    python_check(
        MACOS_CHECK,
        &f,
        serde_json::json!({"format": "jamf", "challenge": true, "legacy": false, "diagnostics": null, "hosts": ["example.okta.com"]}),
    );
}

#[test]
fn ios_profile_app_config_and_edr() {
    let server = Server::start(&[]);
    let dir = tempfile::tempdir().unwrap();
    let out = odt(&server, &["--platform", "ios", "--management-hint", "hint-secret"]);
    let f = crate::support::openssl::write(dir.path(), "ios.mobileconfig", &out.stdout);
    python_check(
        r#"
import plistlib, sys
p = plistlib.load(open(sys.argv[1], 'rb'))
assert 'PayloadScope' not in p
types = [x['PayloadType'] for x in p['PayloadContent']]
assert types == ['com.apple.extensiblesso'], types
sso = p['PayloadContent'][0]
assert sso['ExtensionData'] == {'managementHint': 'hint-secret'} and sso['Type'] == 'Credential' and sso['Hosts'] == ['example.okta.com']
"#,
        &f,
        serde_json::json!({}),
    );
    let out = odt(
        &server,
        &["--platform", "ios", "--app-config", "--management-hint", "hint-secret"],
    );
    let f = crate::support::openssl::write(dir.path(), "appconfig.plist", &out.stdout);
    python_check(
        r#"
import plistlib, sys
assert plistlib.load(open(sys.argv[1], 'rb')) == {'OktaVerify.OrgUrl': 'https://example.okta.com', 'managementHint': 'hint-secret'}
"#,
        &f,
        serde_json::json!({}),
    );

    // EDR settings go in a profile of their own, beside the main one.
    let out_dir = dir.path().join("out");
    let out = odt(
        &server,
        &[
            "--platform",
            "macos",
            "--mdm-challenge",
            "--edr",
            "crowdstrike",
            "--out-dir",
            out_dir.to_str().unwrap(),
        ],
    );
    assert_eq!(String::from_utf8_lossy(&out.stdout).lines().count(), 2);
    python_check(
        r#"
import plistlib, sys
p = plistlib.load(open(sys.argv[1], 'rb'))
by = {x['PayloadType']: x for x in p['PayloadContent']}
assert set(by) == {'com.okta.mobile', 'com.okta.mobile.auth-service-extension'}, set(by)
for d in by.values():
    assert d['OktaVerify.Plugins'] == ['com.crowdstrike.zta']
    assert d['com.crowdstrike.zta'] == {'location': '/Library/Application Support/Crowdstrike/ZeroTrustAssessment/OVSignals.zta', 'format': 'JWT', 'type': 'file'}
"#,
        &out_dir.join("okta-verify-edr-crowdstrike-macos.mobileconfig"),
        serde_json::json!({}),
    );
    assert!(out_dir.join("okta-device-trust-macos.mobileconfig").exists());
}

#[test]
fn signed_profile_verifies_with_openssl_cms() {
    let server = Server::start(&[]);
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    openssl::self_signed(
        d,
        "sign.key",
        "sign.pem",
        "/CN=Profile Signer",
        2,
        &[
            "-addext",
            "keyUsage=digitalSignature",
            "-addext",
            "extendedKeyUsage=codeSigning,emailProtection",
        ],
    );
    let unsigned = odt(&server, &["--platform", "ios"]).stdout;
    let signed = odt(
        &server,
        &[
            "--platform",
            "ios",
            "--sign",
            d.join("sign.pem").to_str().unwrap(),
            d.join("sign.key").to_str().unwrap(),
        ],
    )
    .stdout;
    openssl::write(d, "signed.mobileconfig", &signed);
    openssl::run(
        d,
        &[
            "cms",
            "-verify",
            "-inform",
            "DER",
            "-in",
            "signed.mobileconfig",
            "-CAfile",
            "sign.pem",
            "-purpose",
            "any",
            "-out",
            "content.xml",
        ],
    );
    let content = std::fs::read_to_string(d.join("content.xml")).unwrap();
    assert!(content.starts_with("<?xml") && content.contains("com.apple.extensiblesso"));
    // Same profile but for its fresh UUIDs.
    let uuid = regex::Regex::new("[0-9A-F]{8}-[0-9A-F]{4}-[0-9A-F]{4}-[0-9A-F]{4}-[0-9A-F]{12}").unwrap();
    assert_eq!(
        uuid.replace_all(&content, "UUID"),
        uuid.replace_all(&String::from_utf8(unsigned).unwrap(), "UUID")
    );
}

/// The default macOS output, with what changes per run (UUIDs, the CA, the URL) masked.
#[test]
fn default_macos_output_matches_the_golden_file() {
    let server = Server::start(&[]);
    let out = String::from_utf8(
        odt(
            &server,
            &["--platform", "macos", "--url", "https://scep.example.com/scep"],
        )
        .stdout,
    )
    .unwrap();
    let uuid = regex::Regex::new("[0-9A-F]{8}-[0-9A-F]{4}-[0-9A-F]{4}-[0-9A-F]{4}-[0-9A-F]{12}").unwrap();
    let data = regex::Regex::new(r"(?s)<data>.*?</data>").unwrap();
    let masked = data
        .replace_all(&uuid.replace_all(&out, "UUID"), "<data>…</data>")
        .into_owned();
    let golden = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/golden/odt-macos.mobileconfig");
    if std::env::var_os("SCEPD_UPDATE_GOLDEN").is_some() {
        std::fs::write(&golden, &masked).unwrap();
    }
    assert_eq!(
        masked,
        std::fs::read_to_string(&golden).unwrap(),
        "output changed: review it, then SCEPD_UPDATE_GOLDEN=1 cargo test"
    );
}

/// A device following the generated SCEP payload (its key size, Subject with the MDM variables
/// filled in, its challenge, its URL) enrolls against scepd.
#[test]
fn a_device_following_the_generated_scep_payload_enrolls() {
    let server = Server::start(&[]);
    let dir = tempfile::tempdir().unwrap();
    let out = odt(&server, &["--platform", "macos", "--mint", "--url", &server.scep_url()]);
    let f = crate::support::openssl::write(dir.path(), "odt.mobileconfig", &out.stdout);
    let extract = Command::new("python3").args(["-c", r#"
import plistlib, sys, json
p = plistlib.load(open(sys.argv[1], 'rb'))
c = [x for x in p['PayloadContent'] if x['PayloadType'] == 'com.apple.security.scep'][0]['PayloadContent']
print(json.dumps({'url': c['URL'], 'subject': c['Subject'], 'challenge': c['Challenge'], 'keysize': c['Keysize'], 'fingerprint': c['CAFingerprint'].hex()}))
"#, f.to_str().unwrap()]).output().unwrap();
    let payload: serde_json::Value = serde_json::from_slice(&extract.stdout).unwrap();
    assert_eq!(payload["keysize"], 2048);
    assert_eq!(payload["url"], server.scep_url());
    // The MDM fills in its variables; the device makes a key of Keysize bits.
    let dn: Vec<String> = payload["subject"]
        .as_array()
        .unwrap()
        .iter()
        .rev()
        .map(|rdn| {
            let atv = &rdn[0];
            format!(
                "{}={}",
                atv[0].as_str().unwrap(),
                atv[1]
                    .as_str()
                    .unwrap()
                    .replace("$COMPUTERNAME", "Mac-17")
                    .replace("$UDID", "0000-1111-2222")
            )
        })
        .collect();
    let requester = Requester::new(KeyBits::Rsa2048);
    let ra = recipient(payload["url"].as_str().unwrap());
    let csr = requester.csr(&dn.join(","), Some(payload["challenge"].as_str().unwrap()));
    let rep = requester.post(
        payload["url"].as_str().unwrap(),
        &requester.message(&csr, &ra, &Opts::default()),
    );
    assert_eq!(
        rep.header.reply.pki_status.as_deref(),
        Some("0"),
        "{:?}",
        rep.header.reply
    );
    // The payload pins the CA that issued the certificate.
    let ca_der = crate::support::http::get(&format!("{}/ca.crt", server.base))
        .unwrap()
        .body;
    assert_eq!(
        payload["fingerprint"].as_str().unwrap(),
        hex::encode(aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, &ca_der))
    );
    let cert: x509_cert::Certificate = der::Decode::from_der(&rep.certificates[0]).unwrap();
    assert!(cert
        .tbs_certificate()
        .subject()
        .to_string()
        .contains("Mac-17 managementAttestation 0000-1111-2222"));
}

const SCEP_URL_CHECK: &str = r#"
import plistlib, sys, json
p = plistlib.load(open(sys.argv[1], 'rb')); e = json.loads(sys.argv[2])
urls = [x['PayloadContent']['URL'] for x in p['PayloadContent'] if x['PayloadType'] == 'com.apple.security.scep']
assert urls == [e['url']], urls
"#;

/// Without `--url`: the running server's SCEP URL; once no server answers, the one of the
/// public URL the server last ran with (recorded 0600 in the data directory), said on stderr;
/// a data directory no server ever ran on gets an error that says what to pass.
#[test]
fn without_url_the_profile_takes_the_server_url_then_the_recorded_one() {
    use std::os::unix::fs::PermissionsExt;
    let public = "https://scep.example.test:8443";
    let mut server = Server::start(&["--public-url", public]);
    let recorded = server.data().join("public.url");
    assert_eq!(std::fs::read_to_string(&recorded).unwrap(), public);
    assert_eq!(
        std::fs::metadata(&recorded).unwrap().permissions().mode() & 0o777,
        0o600
    );
    let dir = tempfile::tempdir().unwrap();
    let args = ["--platform", "macos", "--mdm-challenge"];
    let running = odt(&server, &args);
    let running_file = openssl::write(dir.path(), "running.mobileconfig", &running.stdout);
    let expect = serde_json::json!({ "url": format!("{public}/scep") });
    python_check(SCEP_URL_CHECK, &running_file, expect.clone());
    assert!(!String::from_utf8_lossy(&running.stderr).contains("public.url"));

    assert!(server.terminate().success());
    let stopped = odt(&server, &args);
    let stderr = String::from_utf8_lossy(&stopped.stderr);
    assert!(
        stderr.contains(recorded.to_str().unwrap()) && stderr.contains(&format!("{public}/scep")),
        "{stderr}"
    );
    let stopped_file = openssl::write(dir.path(), "stopped.mobileconfig", &stopped.stdout);
    python_check(SCEP_URL_CHECK, &stopped_file, expect);

    let never_served = dir.path().join("never-served");
    let init = std::process::Command::new(crate::support::server::BIN)
        .args(["init", "--data", never_served.to_str().unwrap()])
        .output()
        .unwrap();
    assert!(init.status.success(), "{}", String::from_utf8_lossy(&init.stderr));
    let out = std::process::Command::new(crate::support::server::BIN)
        .args([
            "profile",
            "odt",
            "--okta-org",
            ORG,
            "--data",
            never_served.to_str().unwrap(),
        ])
        .args(args)
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success() && out.stdout.is_empty(), "{stderr}");
    assert!(
        stderr.contains("pass --url") && stderr.contains("public.url"),
        "{stderr}"
    );
}
