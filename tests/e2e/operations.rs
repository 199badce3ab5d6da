//! Operations: metrics (checked with promtool), JSON logs without secrets, readiness, graceful
//! shutdown, config check, the Apple profile (parsed with Python's plistlib), deploy files
//! (systemd-analyze, promtool).

use std::io::{Read, Write};
use std::path::Path;
use std::process::Command;

use scepd_ca::KeyBits;

use crate::support::requester::{recipient, Opts};
use crate::support::server::BIN;
use crate::support::skip::skip;
use crate::support::{http, Requester, Server};

const CHALLENGE: &str = "operations-challenge-value";

pub(crate) fn metric(text: &str, line_prefix: &str) -> f64 {
    text.lines()
        .find(|l| l.starts_with(line_prefix))
        .and_then(|l| l.rsplit(' ').next())
        .and_then(|v| v.parse().ok())
        .unwrap_or_else(|| panic!("{line_prefix} not in metrics"))
}

fn repo(path: &str) -> std::path::PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join(path)
}

/// A checking tool from a Debian package (`prometheus`, `systemd`; CI installs both), or None
/// when it is not installed: the part of `test` that needs it is skipped (a failure under CI).
fn tool(test: &str, name: &str, package: &str) -> Option<Command> {
    let installed = Command::new("sh")
        .args(["-c", &format!("command -v {name}")])
        .output()
        .is_ok_and(|o| o.status.success());
    if !installed {
        skip(test, &format!("{name} is not installed (Debian package {package})"));
    }
    installed.then(|| Command::new(name))
}

#[test]
fn metrics_change_with_enrollment_challenge_failure_and_revocation_and_pass_promtool() {
    let server = Server::start(&["--static-challenge", CHALLENGE, "--log-format", "json"]);
    let ra = recipient(&server.scep_url());
    let requester = Requester::new(KeyBits::Rsa2048);
    let rep = requester.post(
        &server.scep_url(),
        &requester.message(&requester.csr("CN=metrics", Some(CHALLENGE)), &ra, &Opts::default()),
    );
    let serial = serial_hex(&rep.certificates[0]);
    requester.post(
        &server.scep_url(),
        &requester.message(
            &requester.csr("CN=metrics-bad", Some("WrongChallenge0000000000")),
            &ra,
            &Opts::default(),
        ),
    );
    assert!(server
        .cli(&["cert", "revoke", &serial, "--reason", "keyCompromise"])
        .status
        .success());
    let token = std::fs::read_to_string(server.data().join("admin.token")).unwrap();
    let text = http::get(&format!("{}/metrics", server.base)).unwrap().text();
    assert_eq!(metric(&text, "scepd_certificates_issued_total{kind=\"new\"}"), 1.0);
    assert_eq!(metric(&text, "scepd_issuance_commits_total"), 1.0);
    assert_eq!(
        metric(&text, "scepd_challenge_rejections_total{reason=\"unknown\"}"),
        1.0
    );
    assert_eq!(
        metric(&text, "scepd_certificates_revoked_total{reason=\"keyCompromise\"}"),
        1.0
    );
    assert_eq!(metric(&text, "scepd_scep_requests_total{fail_info=\"\",message_type=\"PKCSReq\",operation=\"PKIOperation\",status=\"SUCCESS\"}"), 1.0);
    assert_eq!(metric(&text, "scepd_scep_requests_total{fail_info=\"badRequest\",message_type=\"PKCSReq\",operation=\"PKIOperation\",status=\"FAILURE\"}"), 1.0);
    for name in [
        "scepd_scep_request_duration_seconds_bucket",
        "scepd_build_info",
        "scepd_ca_certificate_not_after_timestamp_seconds{cert=\"ra\"}",
        "scepd_http_requests_in_flight",
        "process_resident_memory_bytes",
        "scepd_store_size_bytes",
        "scepd_certificates_active",
    ] {
        assert!(text.contains(name), "{name} missing");
    }
    for secret in [CHALLENGE, token.trim()] {
        assert!(!text.contains(secret));
    }
    if let Some(mut promtool) = tool(
        "operations::metrics_change_with_enrollment_challenge_failure_and_revocation_and_pass_promtool",
        "promtool",
        "prometheus",
    ) {
        let mut child = promtool
            .args(["check", "metrics"])
            .stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .unwrap();
        child.stdin.take().unwrap().write_all(text.as_bytes()).unwrap();
        let out = child.wait_with_output().unwrap();
        assert!(
            out.status.success() && out.stdout.is_empty() && out.stderr.is_empty(),
            "promtool: {}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
    }
    // JSON logs: every line an object; request spans carry the SCEP fields; no secret.
    let log = server.log_text();
    let mut saw_pki = false;
    for line in log.lines() {
        let v: serde_json::Value = serde_json::from_str(line).unwrap_or_else(|e| panic!("not JSON ({e}): {line}"));
        if v["message"] == "PKIOperation" && v["status"] == "SUCCESS" {
            saw_pki = v["transaction_id"].is_string()
                && v["message_type"] == "PKCSReq"
                && v["span"]["client"].is_string()
                && v["span"]["id"].is_number();
        }
    }
    assert!(saw_pki, "no structured PKIOperation line:\n{log}");
    for secret in [CHALLENGE, "WrongChallenge0000000000", token.trim()] {
        assert!(!log.contains(secret), "a secret reached the log");
    }
}

fn serial_hex(der: &[u8]) -> String {
    let cert: x509_cert::Certificate = der::Decode::from_der(der).unwrap();
    hex::encode_upper(cert.tbs_certificate().serial_number().as_bytes())
}

#[test]
fn separate_metrics_listener_serves_only_metrics() {
    let server = Server::start(&["--metrics-listen", "127.0.0.1:0"]);
    let log = server.log_text();
    let line = log
        .lines()
        .find(|l| l.contains("metrics listener"))
        .expect("metrics listener logged");
    let addr = line.split("listen=").nth(1).unwrap().split_whitespace().next().unwrap();
    let metrics = http::get(&format!("http://{addr}/metrics")).unwrap();
    assert_eq!(metrics.status, 200);
    assert!(metrics.text().contains("scepd_build_info"));
    assert_eq!(
        http::get(&format!("http://{addr}/scep?operation=GetCACaps"))
            .unwrap()
            .status,
        404
    );
}

#[test]
fn readyz_flips_to_503_when_the_crl_is_stale() {
    let server = Server::start(&["--crl-next-update", "2s", "--challenge-sweep-interval", "3600"]);
    let ready = |s: &Server| http::get(&format!("{}/readyz", s.base)).unwrap();
    // The first maintenance pass issues the CRL.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(5);
    while ready(&server).status != 200 {
        assert!(std::time::Instant::now() < deadline, "{}", ready(&server).text());
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
    std::thread::sleep(std::time::Duration::from_millis(2500));
    let stale = ready(&server);
    assert_eq!(stale.status, 503);
    let body: serde_json::Value = serde_json::from_slice(&stale.body).unwrap();
    assert_eq!(body["ready"], false);
    assert!(body["checks"]["crl"].as_str().unwrap().starts_with("stale"), "{body}");
    assert_eq!(body["checks"]["store"], "ok");
    // Fetching the CRL renews it; ready again.
    assert_eq!(http::get(&format!("{}/crl", server.base)).unwrap().status, 200);
    assert_eq!(ready(&server).status, 200);
    assert_eq!(http::get(&format!("{}/healthz", server.base)).unwrap().status, 200);
}

#[test]
fn graceful_shutdown_finishes_an_in_flight_enrollment() {
    let mut server = Server::start(&["--static-challenge", CHALLENGE]);
    let ra = recipient(&server.scep_url());
    let requester = Requester::new(KeyBits::Rsa2048);
    let message = requester.message(&requester.csr("CN=in-flight", Some(CHALLENGE)), &ra, &Opts::default());
    let host = server.base.trim_start_matches("http://").to_string();
    let mut stream = std::net::TcpStream::connect(&host).unwrap();
    write!(
        stream,
        "POST /scep?operation=PKIOperation HTTP/1.1\r\nHost: {host}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
        message.len()
    )
    .unwrap();
    stream.write_all(&message[..message.len() / 2]).unwrap();
    std::thread::sleep(std::time::Duration::from_millis(300));
    let pid = server.pid();
    assert!(Command::new("kill")
        .args(["-TERM", &pid.to_string()])
        .status()
        .unwrap()
        .success());
    std::thread::sleep(std::time::Duration::from_millis(300));
    // New connections are refused once shutdown began…
    assert!(
        std::net::TcpStream::connect(&host).is_err(),
        "still accepting after SIGTERM"
    );
    // …but the request in flight completes.
    stream.write_all(&message[message.len() / 2..]).unwrap();
    let mut raw = Vec::new();
    stream.read_to_end(&mut raw).unwrap();
    let end = raw.windows(4).position(|w| w == b"\r\n\r\n").unwrap();
    assert!(
        raw.starts_with(b"HTTP/1.1 200"),
        "{}",
        String::from_utf8_lossy(&raw[..end])
    );
    let rep = requester.read(&raw[end + 4..]);
    assert_eq!(rep.header.reply.pki_status.as_deref(), Some("0"));
    let status = server.terminate();
    assert!(status.success(), "{status:?}");
    assert!(server.log_text().contains("scepd stopped"));
}

#[test]
fn config_check_redacts_secrets_and_rejects_bad_files() {
    let out = Command::new(BIN)
        .args([
            "config",
            "check",
            "--config",
            repo("deploy/scepd.toml").to_str().unwrap(),
            "--static-challenge",
            "hide-me",
        ])
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let text = String::from_utf8(out.stdout).unwrap();
    assert!(
        text.contains("static_challenge = \"<redacted>\"") && !text.contains("hide-me"),
        "{text}"
    );
    assert!(text.contains("min_key_bits = 2048"));
    // The printed configuration is itself a valid file.
    let dir = tempfile::tempdir().unwrap();
    let printed = dir.path().join("printed.toml");
    std::fs::write(&printed, text.replace("\"<redacted>\"", "\"x\"")).unwrap();
    assert!(Command::new(BIN)
        .args(["config", "check", "--config", printed.to_str().unwrap()])
        .status()
        .unwrap()
        .success());
    let bad = dir.path().join("bad.toml");
    std::fs::write(&bad, "renewal_window = 150\n").unwrap();
    let out = Command::new(BIN)
        .args(["config", "check", "--config", bad.to_str().unwrap()])
        .output()
        .unwrap();
    assert!(!out.status.success() && String::from_utf8_lossy(&out.stderr).contains("renewal_window"));
    // Environment beats the file, flags beat the environment.
    let out = Command::new(BIN)
        .args([
            "config",
            "check",
            "--config",
            repo("deploy/scepd.toml").to_str().unwrap(),
        ])
        .env("SCEPD_MIN_KEY_BITS", "3072")
        .output()
        .unwrap();
    assert!(String::from_utf8_lossy(&out.stdout).contains("min_key_bits = 3072"));
    let out = Command::new(BIN)
        .args(["config", "check", "--min-key-bits", "4096"])
        .env("SCEPD_MIN_KEY_BITS", "3072")
        .output()
        .unwrap();
    assert!(String::from_utf8_lossy(&out.stdout).contains("min_key_bits = 4096"));
    // The shared store: its URL printed without the password (under the file's key), the pool
    // size checked.
    let out = Command::new(BIN)
        .args([
            "config",
            "check",
            "--store",
            "postgres://scepd:hunter2@db.example/scepd",
            "--store-pool-size",
            "8",
        ])
        .output()
        .unwrap();
    let text = String::from_utf8(out.stdout).unwrap();
    assert!(
        text.contains("store_url = \"postgres://scepd:***@db.example/scepd\"") && !text.contains("hunter2"),
        "{text}"
    );
    assert!(text.contains("store_pool_size = 8"), "{text}");
    std::fs::write(&printed, &text).unwrap();
    assert!(Command::new(BIN)
        .args(["config", "check", "--config", printed.to_str().unwrap()])
        .status()
        .unwrap()
        .success());
    let out = Command::new(BIN)
        .args(["config", "check", "--store-pool-size", "0"])
        .output()
        .unwrap();
    assert!(!out.status.success() && String::from_utf8_lossy(&out.stderr).contains("store_pool_size"));
    let out = Command::new(BIN)
        .args(["config", "check", "--store", "mysql://db/scepd"])
        .output()
        .unwrap();
    assert!(!out.status.success() && String::from_utf8_lossy(&out.stderr).contains("postgres://"));
}

/// Checks a generated profile with Python's plistlib: every key, type and value.
const PLIST_CHECK: &str = r#"
import plistlib, sys, hashlib, json
p = plistlib.load(open(sys.argv[1], 'rb'))
ca = open(sys.argv[2], 'rb').read()
expect = json.loads(sys.argv[3])
assert p['PayloadType'] == 'Configuration' and p['PayloadVersion'] == 1 and p['PayloadScope'] == 'System', p
uuids = [p['PayloadUUID']] + [x['PayloadUUID'] for x in p['PayloadContent']]
assert len(set(uuids)) == len(uuids), 'PayloadUUIDs must be unique'
roots = [x for x in p['PayloadContent'] if x['PayloadType'] == 'com.apple.security.root']
assert roots and roots[0]['PayloadContent'] == ca, 'root payload carries the CA'
scep = [x for x in p['PayloadContent'] if x['PayloadType'] == 'com.apple.security.scep'][0]
c = scep['PayloadContent']
assert c['URL'] == expect['url'], c['URL']
assert c['Name'] == 'scepd'
assert c['Subject'] == expect['subject'], c['Subject']
assert c.get('Challenge') == expect['challenge'], c.get('Challenge')
assert c['Keysize'] == 2048 and isinstance(c['Keysize'], int)
assert c['Key Type'] == 'RSA' and c['Key Usage'] == 1
assert c['CAFingerprint'] == hashlib.sha256(ca).digest()
assert c['AllowAllAppsAccess'] is True and c['KeyIsExtractable'] is False
print('profile ok')
"#;

#[test]
fn profile_generator_output_parses_with_plistlib() {
    let server = Server::start(&[]);
    let dir = tempfile::tempdir().unwrap();
    let ca_der = http::get(&format!("{}/ca.crt", server.base)).unwrap().body;
    let ca_path = dir.path().join("ca.der");
    std::fs::write(&ca_path, &ca_der).unwrap();
    let cases = [
        (vec!["--challenge", "static-one"], serde_json::json!("static-one")),
        (vec!["--mint"], serde_json::Value::Null),
    ];
    for (extra, challenge) in cases {
        let mut args = vec![
            "profile",
            "--url",
            "https://scep.example.test/scep",
            "--subject",
            "CN=$COMPUTERNAME managementAttestation $UDID,O=Example",
        ];
        args.extend(extra.iter().copied());
        let out = server.cli(&args);
        assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
        let path = dir.path().join("scep.mobileconfig");
        std::fs::write(&path, &out.stdout).unwrap();
        let minted;
        let challenge = if challenge.is_null() {
            // A freshly minted one-time challenge: 22 alphanumerics.
            let text = String::from_utf8_lossy(&out.stdout).into_owned();
            let start = text.find("<key>Challenge</key>").unwrap();
            let value = text[start..]
                .split("<string>")
                .nth(1)
                .unwrap()
                .split("</string>")
                .next()
                .unwrap()
                .to_string();
            assert_eq!(value.len(), 22);
            minted = serde_json::json!(value);
            &minted
        } else {
            &challenge
        };
        let expect = serde_json::json!({
            "url": "https://scep.example.test/scep",
            "subject": [[["O", "Example"]], [["CN", "$COMPUTERNAME managementAttestation $UDID"]]],
            "challenge": challenge,
        });
        let check = Command::new("python3")
            .args([
                "-c",
                PLIST_CHECK,
                path.to_str().unwrap(),
                ca_path.to_str().unwrap(),
                &expect.to_string(),
            ])
            .output()
            .expect("python3");
        assert!(
            check.status.success(),
            "{}{}",
            String::from_utf8_lossy(&check.stdout),
            String::from_utf8_lossy(&check.stderr)
        );
    }
}

#[test]
fn deploy_files_pass_their_linters() {
    if let Some(mut promtool) = tool(
        "operations::deploy_files_pass_their_linters (promtool)",
        "promtool",
        "prometheus",
    ) {
        let out = promtool
            .args([
                "check",
                "config",
                repo("deploy/prometheus/prometheus.yml").to_str().unwrap(),
            ])
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        let out = Command::new("promtool")
            .args([
                "check",
                "rules",
                repo("deploy/prometheus/scepd-rules.yml").to_str().unwrap(),
            ])
            .output()
            .unwrap();
        assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stdout));
        let rules = std::fs::read_to_string(repo("deploy/prometheus/scepd-rules.yml")).unwrap();
        for alert in [
            "CaCertificateExpiringSoon",
            "CrlStale",
            "ScepFailureRatioHigh",
            "ChallengeRejectionSpike",
            "NotReady",
            "StoreContention",
        ] {
            assert!(rules.contains(alert), "{alert}");
        }
    }
    if tool(
        "operations::deploy_files_pass_their_linters (systemd-analyze)",
        "systemd-analyze",
        "systemd",
    )
    .is_some()
    {
        // verify wants the ExecStart binary to exist: point it at the one just built.
        let dir = tempfile::tempdir().unwrap();
        let unit = std::fs::read_to_string(repo("deploy/systemd/scepd.service"))
            .unwrap()
            .replace("/usr/local/bin/scepd", BIN);
        let path = dir.path().join("scepd.service");
        std::fs::write(&path, unit).unwrap();
        let out = Command::new("systemd-analyze")
            .args(["verify", path.to_str().unwrap()])
            .output()
            .unwrap();
        assert!(
            out.status.success() && out.stderr.is_empty(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    let dashboard: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(repo("deploy/grafana/scepd.json")).unwrap()).unwrap();
    let exprs: Vec<String> = dashboard["panels"]
        .as_array()
        .unwrap()
        .iter()
        .flat_map(|p| {
            p["targets"]
                .as_array()
                .unwrap()
                .iter()
                .map(|t| t["expr"].as_str().unwrap().to_string())
        })
        .collect();
    for m in [
        "scepd_scep_requests_total",
        "scepd_certificates_issued_total",
        "scepd_challenges_minted_total",
        "scepd_crl_next_update_timestamp_seconds",
        "scepd_store_retries_total",
    ] {
        assert!(exprs.iter().any(|e| e.contains(m)), "dashboard lacks {m}");
    }
    check_kubernetes_manifests();
    let dockerfile = std::fs::read_to_string(repo("deploy/container/Dockerfile")).unwrap();
    assert!(dockerfile.contains("USER scepd") && dockerfile.contains("HEALTHCHECK") && dockerfile.contains("/healthz"));
}

/// The Kubernetes manifests (read with PyYAML): the StatefulSet keeps one replica with a volume
/// claim for the embedded store; the PostgreSQL Deployment runs three with no claim, takes the
/// store URL from a Secret, and its configuration passes `scepd config check` with that store.
fn check_kubernetes_manifests() {
    const SUMMARY: &str = r#"
import json, sys, yaml
out = {}
for path in sys.argv[1:]:
    for doc in yaml.safe_load_all(open(path)):
        if doc["kind"] in ("StatefulSet", "Deployment"):
            spec = doc["spec"]
            pod = spec["template"]["spec"]
            out[doc["kind"]] = {
                "replicas": spec["replicas"],
                "claims": len(spec.get("volumeClaimTemplates", [])),
                "env": [e["name"] for c in pod["containers"] for e in c.get("env", [])],
                "args": pod["containers"][0]["args"],
            }
        if doc["kind"] == "ConfigMap":
            out.setdefault("configs", []).append(doc["data"]["scepd.toml"])
print(json.dumps(out))
"#;
    let out = Command::new("python3")
        .args(["-c", SUMMARY])
        .args([
            repo("deploy/kubernetes/scepd-statefulset.yaml"),
            repo("deploy/kubernetes/scepd-deployment-postgres.yaml"),
        ])
        .output()
        .expect("python3");
    assert!(
        out.status.success(),
        "PyYAML (Debian python3-yaml): {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let summary: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(
        (
            summary["StatefulSet"]["replicas"].as_u64(),
            summary["StatefulSet"]["claims"].as_u64()
        ),
        (Some(1), Some(1))
    );
    assert_eq!(
        (
            summary["Deployment"]["replicas"].as_u64(),
            summary["Deployment"]["claims"].as_u64()
        ),
        (Some(3), Some(0))
    );
    assert!(summary["Deployment"]["env"]
        .as_array()
        .unwrap()
        .iter()
        .any(|e| e == "SCEPD_STORE"));
    let dir = tempfile::tempdir().unwrap();
    for config in summary["configs"].as_array().unwrap() {
        let path = dir.path().join("scepd.toml");
        std::fs::write(&path, config.as_str().unwrap()).unwrap();
        let check = Command::new(BIN)
            .args(["config", "check", "--config", path.to_str().unwrap()])
            .env("SCEPD_STORE", "postgres://scepd:secret@db.example/scepd")
            .output()
            .unwrap();
        let printed = String::from_utf8_lossy(&check.stdout);
        assert!(check.status.success(), "{}", String::from_utf8_lossy(&check.stderr));
        assert!(
            printed.contains("postgres://scepd:***@db.example/scepd") && !printed.contains("secret"),
            "{printed}"
        );
    }
}

/// A python TLS client: one keep-alive connection across the reload, then a new one.
const TLS_CLIENT: &str = r#"
import socket, ssl, sys
ctx = ssl.create_default_context(cafile=sys.argv[2])
host, port = sys.argv[1].rsplit(':', 1)
def get(conn, path):
    conn.sendall(f"GET {path} HTTP/1.1\r\nHost: {host}\r\n\r\n".encode())
    data = b''
    while b'\r\n\r\n' not in data:
        data += conn.recv(4096)
    head, _, body = data.partition(b'\r\n\r\n')
    length = int([l.split(b':')[1] for l in head.split(b'\r\n') if l.lower().startswith(b'content-length')][0])
    while len(body) < length:
        body += conn.recv(4096)
    return head.split(b' ')[1].decode()
def connect():
    return ctx.wrap_socket(socket.create_connection((host, int(port))), server_hostname=host)
c = connect()
print('first', c.getpeercert()['serialNumber'], get(c, '/healthz'), flush=True)
sys.stdin.readline()
print('same-connection', get(c, '/healthz'), flush=True)
d = connect()
print('new', d.getpeercert()['serialNumber'], get(d, '/healthz'), flush=True)
"#;

fn server_cert(dir: &Path, name: &str, serial: &str) {
    crate::support::openssl::write(
        dir,
        &format!("{name}.ext"),
        b"subjectAltName=IP:127.0.0.1\nextendedKeyUsage=serverAuth\n",
    );
    crate::support::openssl::run(
        dir,
        &[
            "req",
            "-new",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-keyout",
            &format!("{name}.key"),
            "-subj",
            "/CN=127.0.0.1",
            "-out",
            &format!("{name}.csr"),
        ],
    );
    crate::support::openssl::run(
        dir,
        &[
            "x509",
            "-req",
            "-in",
            &format!("{name}.csr"),
            "-CA",
            "tls-ca.pem",
            "-CAkey",
            "tls-ca.key",
            "-set_serial",
            serial,
            "-days",
            "2",
            "-extfile",
            &format!("{name}.ext"),
            "-out",
            &format!("{name}.pem"),
        ],
    );
}

#[test]
fn https_listener_serves_and_reloads_its_certificate_on_sighup() {
    use std::io::BufRead;
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    crate::support::openssl::run(
        d,
        &[
            "req",
            "-x509",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-keyout",
            "tls-ca.key",
            "-subj",
            "/CN=Test TLS CA",
            "-days",
            "2",
            "-out",
            "tls-ca.pem",
        ],
    );
    server_cert(d, "v1", "0x1111");
    server_cert(d, "v2", "0x2222");
    std::fs::copy(d.join("v1.pem"), d.join("tls.pem")).unwrap();
    std::fs::copy(d.join("v1.key"), d.join("tls.key")).unwrap();
    let server = Server::start(&[
        "--tls-listen",
        "127.0.0.1:0",
        "--tls-cert",
        d.join("tls.pem").to_str().unwrap(),
        "--tls-key",
        d.join("tls.key").to_str().unwrap(),
        "--admin-tls-only",
    ]);
    let tls_url = std::fs::read_to_string(server.data().join("tls.url")).unwrap();
    let hostport = tls_url.trim_start_matches("https://").to_string();

    // The APIs over HTTPS, checked with curl.
    let token = std::fs::read_to_string(server.data().join("admin.token")).unwrap();
    let out = Command::new("curl")
        .args([
            "-sS",
            "--cacert",
            d.join("tls-ca.pem").to_str().unwrap(),
            "-X",
            "POST",
            "-H",
            &format!("Authorization: Bearer {}", token.trim()),
            "-d",
            "{}",
            &format!("{tls_url}/api/v1/challenges"),
        ])
        .output()
        .expect("curl");
    let minted: serde_json::Value =
        serde_json::from_slice(&out.stdout).unwrap_or_else(|_| panic!("{}", String::from_utf8_lossy(&out.stderr)));
    assert_eq!(minted["challenge"].as_str().unwrap().len(), 22);

    let mut client = Command::new("python3")
        .args(["-c", TLS_CLIENT, &hostport, d.join("tls-ca.pem").to_str().unwrap()])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let mut lines = std::io::BufReader::new(client.stdout.take().unwrap()).lines();
    assert_eq!(lines.next().unwrap().unwrap(), "first 1111 200");
    std::fs::copy(d.join("v2.pem"), d.join("tls.pem")).unwrap();
    std::fs::copy(d.join("v2.key"), d.join("tls.key")).unwrap();
    assert!(Command::new("kill")
        .args(["-HUP", &server.pid().to_string()])
        .status()
        .unwrap()
        .success());
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    while !server.log_text().contains("TLS certificate reloaded") {
        assert!(
            std::time::Instant::now() < deadline,
            "no reload:\n{}",
            server.log_text()
        );
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    writeln!(client.stdin.take().unwrap()).unwrap();
    assert_eq!(
        lines.next().unwrap().unwrap(),
        "same-connection 200",
        "the open connection survives the reload"
    );
    assert_eq!(
        lines.next().unwrap().unwrap(),
        "new 2222 200",
        "new connections get the new certificate"
    );
    assert!(client.wait().unwrap().success());
}

#[test]
fn backup_while_running_and_restore_serve_the_same_state() {
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("d");
    let mut server = Server::start_in(&data, &["--static-challenge", CHALLENGE]);
    let ra = recipient(&server.scep_url());
    let requester = Requester::new(KeyBits::Rsa2048);
    let mut serials = Vec::new();
    for cn in ["CN=backup-a", "CN=backup-b"] {
        let rep = requester.post(
            &server.scep_url(),
            &requester.message(&requester.csr(cn, Some(CHALLENGE)), &ra, &Opts::default()),
        );
        serials.push(serial_hex(&rep.certificates[0]));
    }
    assert!(server
        .cli(&["cert", "revoke", &serials[0], "--reason", "keyCompromise"])
        .status
        .success());
    let crl_before = http::get(&format!("{}/crl", server.base)).unwrap().body;
    let pending = String::from_utf8(server.cli(&["challenge", "new"]).stdout)
        .unwrap()
        .trim()
        .to_string();
    let list_before = server.cli(&["cert", "list", "--json"]).stdout;

    let out = tmp.path().join("backup");
    let b = server.cli(&["backup", out.to_str().unwrap()]);
    assert!(b.status.success(), "{}", String::from_utf8_lossy(&b.stderr));
    assert_eq!(
        std::os::unix::fs::PermissionsExt::mode(&std::fs::metadata(out.join("ca.key")).unwrap().permissions()) & 0o777,
        0o600
    );
    assert!(
        std::fs::read_dir(&data)
            .unwrap()
            .all(|e| !e.unwrap().file_name().to_string_lossy().starts_with("backup-")),
        "snapshot moved out"
    );
    server.terminate();

    let restored = tmp.path().join("restored");
    let r = Command::new(BIN)
        .args(["restore", "--data", restored.to_str().unwrap(), out.to_str().unwrap()])
        .output()
        .unwrap();
    assert!(r.status.success(), "{}", String::from_utf8_lossy(&r.stderr));
    let again = Command::new(BIN)
        .args(["restore", "--data", restored.to_str().unwrap(), out.to_str().unwrap()])
        .output()
        .unwrap();
    assert!(!again.status.success(), "restore refuses a directory that holds a CA");
    let server = Server::start_in(&restored, &["--static-challenge", CHALLENGE]);
    let strip = |v: &[u8]| -> Vec<serde_json::Value> {
        serde_json::from_slice::<serde_json::Value>(v)
            .unwrap()
            .as_array()
            .unwrap()
            .clone()
    };
    assert_eq!(
        strip(&server.cli(&["cert", "list", "--json"]).stdout),
        strip(&list_before),
        "same certificates and statuses"
    );
    // The CRL: same entries, a number that never went back (the store keeps the published CRL:
    // the restored server serves it until a revocation or half its validity passes).
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    crate::support::openssl::write(d, "before.crl", &crl_before);
    crate::support::openssl::write(
        d,
        "after.crl",
        &http::get(&format!("{}/crl", server.base)).unwrap().body,
    );
    let number = |f: &str| -> u64 {
        let t = String::from_utf8(crate::support::openssl::run(
            d,
            &["crl", "-inform", "DER", "-in", f, "-noout", "-crlnumber"],
        ))
        .unwrap();
        u64::from_str_radix(t.trim().trim_start_matches("crlNumber=0x"), 16).unwrap()
    };
    assert!(number("after.crl") >= number("before.crl"));
    let text = String::from_utf8(crate::support::openssl::run(
        d,
        &["crl", "-inform", "DER", "-in", "after.crl", "-noout", "-text"],
    ))
    .unwrap();
    assert!(text.contains(&serials[0]), "{text}");
    // The pending challenge still redeems.
    let ra = recipient(&server.scep_url());
    let rep = requester.post(
        &server.scep_url(),
        &requester.message(
            &requester.csr("CN=after-restore", Some(&pending)),
            &ra,
            &Opts::default(),
        ),
    );
    assert_eq!(
        rep.header.reply.pki_status.as_deref(),
        Some("0"),
        "{:?}",
        rep.header.reply
    );
}

#[test]
fn audit_trail_records_actions_with_actor_and_request_id_and_no_secret() {
    let server = Server::start(&["--static-challenge", CHALLENGE]);
    let ra = recipient(&server.scep_url());
    let requester = Requester::new(KeyBits::Rsa2048);
    let out = server.cli(&["mdm", "add", "audited"]);
    let password = String::from_utf8(out.stdout)
        .unwrap()
        .lines()
        .last()
        .unwrap()
        .to_string();
    let minted = String::from_utf8(server.cli(&["challenge", "new", "--device", "dev-audit"]).stdout)
        .unwrap()
        .trim()
        .to_string();
    let rep = requester.post(
        &server.scep_url(),
        &requester.message(&requester.csr("CN=dev-audit", Some(&minted)), &ra, &Opts::default()),
    );
    let serial = serial_hex(&rep.certificates[0]);
    requester.post(
        &server.scep_url(),
        &requester.message(
            &requester.csr("CN=x", Some("NotAChallenge0000000000")),
            &ra,
            &Opts::default(),
        ),
    );
    assert!(server
        .cli(&["cert", "revoke", &serial, "--reason", "keyCompromise"])
        .status
        .success());
    let bad = http::request(
        "GET",
        &format!("{}/certsrv/mscep_admin/", server.base),
        &[("Authorization", "Basic YXVkaXRlZDp3cm9uZw==")],
        b"",
    )
    .unwrap();
    assert_eq!(bad.status, 401);
    assert!(server.cli(&["mdm", "remove", "audited"]).status.success());

    let out = server.cli(&["audit", "export"]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let text = String::from_utf8(out.stdout).unwrap();
    let entries: Vec<serde_json::Value> = text.lines().map(|l| serde_json::from_str(l).unwrap()).collect();
    let find = |event: &str| {
        entries
            .iter()
            .find(|e| e["event"] == event)
            .unwrap_or_else(|| panic!("{event} missing:\n{text}"))
            .clone()
    };
    assert_eq!(find("mdm.added")["detail"], "audited");
    let minted_entry = find("challenge.minted");
    assert_eq!(
        (minted_entry["actor"].as_str(), minted_entry["device_id"].as_str()),
        (Some("admin"), Some("dev-audit"))
    );
    let issued = find("certificate.issued");
    assert_eq!(issued["serial"], serial.as_str());
    assert_eq!(issued["actor"], "127.0.0.1");
    assert!(issued["request_id"].is_u64() && issued["at"].is_u64());
    assert_eq!(find("challenge.redeemed")["serial"], serial.as_str());
    assert_eq!(find("challenge.rejected")["detail"], "unknown");
    let revoked = find("certificate.revoked");
    assert_eq!(
        (revoked["serial"].as_str(), revoked["detail"].as_str()),
        (Some(serial.as_str()), Some("keyCompromise"))
    );
    assert_eq!(find("auth.failed")["detail"], "ndes");
    find("mdm.removed");
    // In order, append-only, and free of secrets.
    let seqs: Vec<u64> = entries.iter().map(|e| e["seq"].as_u64().unwrap()).collect();
    assert!(seqs.windows(2).all(|w| w[0] < w[1]));
    for secret in [CHALLENGE, minted.as_str(), password.as_str(), "NotAChallenge0000000000"] {
        assert!(!text.contains(secret), "a secret in the audit trail");
    }
    let after = server.cli(&["audit", "export", "--after", &seqs[seqs.len() - 2].to_string()]);
    assert_eq!(String::from_utf8(after.stdout).unwrap().lines().count(), 1);
}
