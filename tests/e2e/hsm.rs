//! Keys in a PKCS#11 token (issue 17), with SoftHSM2 (Debian `softhsm2`) in a private token
//! directory per test, checked with OpenSC's `pkcs11-tool`, micromdm's scepclient and `openssl`.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use crate::clients::scepclient;
use crate::support::server::BIN;
use crate::support::skip::skip;
use crate::support::{http, openssl, Server};

const MODULE: &str = "/usr/lib/softhsm/libsofthsm2.so";
const LABEL: &str = "scepd-test";
const PIN: &str = "246810";
const CHALLENGE: &str = "hsm-test-challenge";

/// A SoftHSM2 token of its own: a configuration file pointing at a private token directory.
struct SoftHsm {
    tmp: tempfile::TempDir,
    conf: PathBuf,
    pin_file: PathBuf,
}

impl SoftHsm {
    /// A fresh token labelled `label`, or None (after saying why; a failure under CI) when
    /// SoftHSM2 or OpenSC is not installed.
    fn new(test: &str, label: &str) -> Option<SoftHsm> {
        for (what, package) in [(MODULE, "softhsm2"), ("/usr/bin/pkcs11-tool", "opensc")] {
            if !Path::new(what).exists() {
                skip(test, &format!("{what} is missing (Debian package {package})"));
                return None;
            }
        }
        let tmp = tempfile::tempdir().unwrap();
        let tokens = tmp.path().join("tokens");
        std::fs::create_dir(&tokens).unwrap();
        let conf = tmp.path().join("softhsm2.conf");
        std::fs::write(
            &conf,
            format!(
                "directories.tokendir = {}\nobjectstore.backend = file\nlog.level = ERROR\n",
                tokens.display()
            ),
        )
        .unwrap();
        let pin_file = tmp.path().join("pin");
        std::fs::write(&pin_file, format!("{PIN}\n")).unwrap();
        let hsm = SoftHsm { tmp, conf, pin_file };
        let out = hsm
            .command("softhsm2-util")
            .args([
                "--init-token",
                "--free",
                "--label",
                label,
                "--pin",
                PIN,
                "--so-pin",
                "13579",
            ])
            .output()
            .expect("softhsm2-util");
        assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
        Some(hsm)
    }

    fn env(&self) -> [(&'static str, &str); 1] {
        [("SOFTHSM2_CONF", self.conf.to_str().unwrap())]
    }

    fn command(&self, program: &str) -> Command {
        let mut c = Command::new(program);
        c.envs(self.env());
        c
    }

    fn pkcs11_tool(&self, args: &[&str]) -> Output {
        self.command("pkcs11-tool")
            .args(["--module", MODULE, "--login", "--pin", PIN])
            .args(args)
            .output()
            .expect("pkcs11-tool")
    }

    /// Asks the token, logged in as its user, for the private exponent and primes of each key
    /// (pkcs11-tool has no command that tries): the token must refuse them as sensitive.
    /// This is the one place the test process loads the module itself, so SOFTHSM2_CONF is set
    /// in its environment (no other test loads SoftHSM in-process).
    fn assert_private_values_unreadable(&self, labels: &[&str]) {
        use cryptoki::context::{CInitializeArgs, CInitializeFlags, Pkcs11};
        use cryptoki::object::{Attribute, AttributeInfo, AttributeType, ObjectClass};
        use cryptoki::session::UserType;
        std::env::set_var("SOFTHSM2_CONF", &self.conf);
        let ctx = Pkcs11::new(MODULE).unwrap();
        ctx.initialize(CInitializeArgs::new(CInitializeFlags::OS_LOCKING_OK))
            .unwrap();
        let slot = ctx.get_slots_with_token().unwrap()[0];
        let session = ctx.open_ro_session(slot).unwrap();
        session.login(UserType::User, Some(&PIN.to_string().into())).unwrap();
        let secret = [
            AttributeType::PrivateExponent,
            AttributeType::Prime1,
            AttributeType::Prime2,
        ];
        for label in labels {
            let found = session
                .find_objects(&[
                    Attribute::Class(ObjectClass::PRIVATE_KEY),
                    Attribute::Label(label.as_bytes().to_vec()),
                ])
                .unwrap();
            assert_eq!(found.len(), 1, "{label}");
            let info = session.get_attribute_info(found[0], &secret).unwrap();
            assert!(
                info.iter().all(|i| matches!(i, AttributeInfo::Sensitive)),
                "{label}: {info:?}"
            );
            let values = session.get_attributes(found[0], &secret).unwrap();
            assert!(values.is_empty(), "{label}: the token gave out {values:?}");
        }
        drop(session);
        ctx.finalize().unwrap();
    }

    fn data(&self) -> PathBuf {
        self.tmp.path().join("data")
    }

    /// `scepd init` with the keys made in the token.
    fn init(&self, extra: &[&str]) -> Output {
        self.init_naming_keys(&[&["--pkcs11-token", LABEL], extra].concat())
    }

    /// `scepd init` with the token's module and PIN but no token to make keys in: keys named by
    /// URI come from the token, the others are made in files.
    fn init_naming_keys(&self, extra: &[&str]) -> Output {
        let data = self.data();
        self.command(BIN)
            .args(["init", "--data", data.to_str().unwrap(), "--pkcs11-module", MODULE])
            .args(["--pkcs11-pin-file", self.pin_file.to_str().unwrap()])
            .args(extra)
            .output()
            .unwrap()
    }

    fn serve(&self) -> Server {
        self.serve_with(&[])
    }

    fn serve_with(&self, extra: &[&str]) -> Server {
        let pin = self.pin_file.to_str().unwrap();
        let mut args = vec!["--static-challenge", CHALLENGE, "--allow-des", "--pkcs11-pin-file", pin];
        args.extend_from_slice(extra);
        Server::start_in_env(&self.data(), &args, &self.env())
    }
}

fn text(out: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

/// scepclient enrolls and `openssl verify` accepts the certificate under the CA.
fn enroll(server: &Server, cn: &str) {
    enroll_in(server, tempfile::tempdir().unwrap().path(), cn);
}

/// scepclient enrolls `cn` in `dir`; the certificate verifies against the CA and carries the
/// client's key. Returns the certificate's path.
fn enroll_in(server: &Server, dir: &Path, cn: &str) -> PathBuf {
    let out = scepclient(dir, &server.scep_url(), CHALLENGE, cn);
    assert!(
        out.status.success(),
        "scepclient: {}\n{}",
        text(&out),
        server.log_text()
    );
    let cert = dir.join("cert.pem");
    assert!(openssl::verifies(dir, &server.ca_pem(), &cert));
    assert_eq!(
        openssl::cert_pubkey(dir, &cert),
        openssl::key_pubkey(dir, &dir.join("key.pem"))
    );
    cert
}

/// `scepd_key_operations_total{key,op,result="ok"}` of this server, and that nothing counted as
/// an error.
fn key_operations(server: &Server, key: &str, op: &str) -> f64 {
    let (count, text) = key_operations_so_far(server, key, op);
    count.unwrap_or_else(|| {
        let operations: Vec<&str> = text
            .lines()
            .filter(|l| l.starts_with("scepd_key_operations_total"))
            .collect();
        panic!(
            "scepd_key_operations_total{{key=\"{key}\",op=\"{op}\"}} not among {operations:#?}\n{}",
            server.log_text()
        )
    })
}

/// The same count, or None while that key has done no such operation (a series appears with
/// its first operation), with the metrics text it was read from.
fn key_operations_so_far(server: &Server, key: &str, op: &str) -> (Option<f64>, String) {
    let text = http::get(&format!("{}/metrics", server.base)).unwrap().text();
    assert!(!text.contains("result=\"error\""), "{text}");
    let labels = format!("scepd_key_operations_total{{key=\"{key}\",op=\"{op}\",result=\"ok\"}}");
    if !text.contains(&labels) {
        return (None, text);
    }
    let count = crate::operations::metric(&text, &labels);
    let timed = format!("scepd_key_operation_duration_seconds_count{{key=\"{key}\",op=\"{op}\"}}");
    assert_eq!(crate::operations::metric(&text, &timed), count, "{text}");
    (Some(count), text)
}

#[test]
fn keys_made_in_the_token_stay_there_and_serve_enrollments_crls_and_restarts() {
    let Some(hsm) = SoftHsm::new("hsm keys made in the token", LABEL) else {
        return;
    };
    let out = hsm.init(&["--ocsp-signer"]);
    assert!(out.status.success(), "init: {}", text(&out));

    // The data directory holds certificates and references, no private key.
    let mut names: Vec<String> = std::fs::read_dir(hsm.data())
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .collect();
    names.sort();
    for key_file in ["ca.key", "ra.key", "ocsp.key", "ca.key.pending"] {
        assert!(
            !names.iter().any(|n| n == key_file),
            "{key_file} in the data directory: {names:?}"
        );
    }
    for name in &names {
        let contents = std::fs::read_to_string(hsm.data().join(name)).unwrap_or_default();
        assert!(!contents.contains("PRIVATE KEY"), "{name} holds a private key");
    }
    for key in ["ca", "ra", "ocsp"] {
        let uri = std::fs::read_to_string(hsm.data().join(format!("{key}.key.uri"))).unwrap();
        assert!(
            uri.starts_with(&format!("pkcs11:token={LABEL};object=scepd-{key};id=")),
            "{uri}"
        );
    }

    // OpenSC sees three sensitive, never-extractable private keys, and cannot read one out.
    let listed = text(&hsm.pkcs11_tool(&["--list-objects", "--type", "privkey"]));
    for key in ["scepd-ca", "scepd-ra", "scepd-ocsp"] {
        let object = listed
            .split("Private Key Object")
            .find(|o| o.contains(&format!("label:      {key}\n")))
            .unwrap_or_else(|| panic!("{key} not listed:\n{listed}"));
        assert!(
            object.contains("Access:     sensitive, always sensitive, never extractable"),
            "{object}"
        );
    }
    hsm.assert_private_values_unreadable(&["scepd-ca", "scepd-ra", "scepd-ocsp"]);

    // The certificates the token keys signed verify with openssl.
    let d = hsm.data();
    let (ok, out) = openssl::try_run(&d, &["verify", "-CAfile", "ca.pem", "ra.pem", "ocsp.pem"]);
    assert!(ok, "{out}");

    let mut server = hsm.serve();
    enroll(&server, "hsm-device-1");
    let crl_dir = tempfile::tempdir().unwrap();
    crate::lifecycle::fetch_crl(&server, crl_dir.path());
    assert!(server.terminate().success());

    // A restart finds the keys again through the references.
    let server = hsm.serve();
    enroll(&server, "hsm-device-2");
    assert!(!server.log_text().contains(PIN), "the PIN was logged");

    // A backup says it holds references, not keys, and holds no key.
    let backup = hsm.tmp.path().join("backup");
    let out = server.cli(&["backup", backup.to_str().unwrap()]);
    assert!(out.status.success(), "{}", text(&out));
    let said = text(&out);
    assert!(
        said.contains("references to keys in a PKCS#11 token") && said.contains("not the keys"),
        "{said}"
    );
    assert!(said.contains("ca.key.uri") && said.contains("ocsp.key.uri"), "{said}");
    assert!(!backup.join("ca.key").exists() && backup.join("ca.key.uri").exists());
}

/// `scepd serve` with this environment exits non-zero, without a panic; its stderr.
fn serve_fails(data: &Path, args: &[&str], env: &[(&str, &str)]) -> String {
    let mut cmd = Command::new(BIN);
    cmd.env_remove("SCEPD_PKCS11_PIN").envs(env.iter().copied());
    crate::faults::start::refused_serve(cmd, data, args)
}

#[test]
fn token_failures_stop_serve_with_one_line_naming_what_and_where() {
    let Some(hsm) = SoftHsm::new("hsm failures", LABEL) else {
        return;
    };
    assert!(hsm.init(&[]).status.success());
    let data = hsm.data();
    let env = hsm.env();
    let one_line = |text: &str, wants: &[&str]| {
        let lines: Vec<&str> = text.lines().filter(|l| l.starts_with("scepd: ")).collect();
        assert_eq!(lines.len(), 1, "{text}");
        for want in wants {
            assert!(lines[0].contains(want), "{want:?} not in {text}");
        }
    };

    // Wrong PIN.
    let wrong = hsm.tmp.path().join("wrong-pin");
    std::fs::write(&wrong, "000000\n").unwrap();
    let text = serve_fails(&data, &["--pkcs11-pin-file", wrong.to_str().unwrap()], &env);
    one_line(&text, &["wrong PIN", LABEL, MODULE]);
    assert!(!text.contains("000000"), "the PIN was printed: {text}");

    // No PIN at all.
    one_line(&serve_fails(&data, &[], &env), &["--pkcs11-pin-file", LABEL]);

    let pin = ["--pkcs11-pin-file", hsm.pin_file.to_str().unwrap()];
    // The token is not there (another SoftHSM configuration, with another token).
    let Some(other) = SoftHsm::new("hsm failures", "another-token") else {
        return;
    };
    one_line(
        &serve_fails(&data, &pin, &other.env()),
        &["no token labelled", LABEL, MODULE],
    );

    // The key is not in the token.
    let uri_file = data.join("ra.key.uri");
    let uri = std::fs::read_to_string(&uri_file).unwrap();
    std::fs::write(&uri_file, uri.replace("object=scepd-ra", "object=gone")).unwrap();
    one_line(
        &serve_fails(&data, &pin, &env),
        &["no such private key", "object=gone", LABEL],
    );

    // The module is missing.
    std::fs::write(&uri_file, uri.replace(MODULE, "/nonexistent/libpkcs11.so")).unwrap();
    one_line(
        &serve_fails(&data, &pin, &env),
        &["/nonexistent/libpkcs11.so", "cannot be loaded"],
    );
}

/// The RA key in the token refuses a bad RSA block with an error (CKR_ENCRYPTED_DATA_INVALID):
/// that answer is the very one a wrong-length key or bad content padding gets, and the one a
/// file-key server gives, so the token is no padding oracle; a good request still enrolls.
#[test]
fn a_decryption_the_token_refuses_gets_the_implicit_rejection_answer() {
    use crate::negative::{assert_failure, corrupt_content, corrupt_key, wrong_key_length};
    use crate::support::requester::{recipient, Opts};
    use crate::support::Requester;
    use scepd::scep::cipher::ContentCipher;
    use scepd::scep::client::signer_cert_of;
    use scepd::scep::envelope;

    let Some(hsm) = SoftHsm::new("hsm implicit rejection", LABEL) else {
        return;
    };
    assert!(hsm.init(&[]).status.success());
    let token_server = hsm.serve();
    let file_server = Server::start(&["--static-challenge", CHALLENGE]);
    let requester = Requester::new(scepd_ca::KeyBits::Rsa2048);
    let csr = requester.csr("CN=oracle", Some(CHALLENGE));
    for server in [&token_server, &file_server] {
        let ra = recipient(&server.scep_url());
        let sealed = envelope::seal(&csr, ContentCipher::Aes128Cbc, &signer_cert_of(&ra).unwrap()).unwrap();
        for bad in [
            corrupt_key(&sealed, |k| k[10] ^= 0xff),
            corrupt_key(&sealed, |k| k[0] ^= 0x01),
            corrupt_content(&sealed),
            wrong_key_length(&ra, &csr),
        ] {
            let rep = requester.post(&server.scep_url(), &requester.sign_envelope(&bad, &Opts::default()));
            assert_failure(&rep, "1", "cannot decrypt the request");
        }
        // Refused ciphertexts are not told apart in the public metrics (no padding oracle).
        assert!(key_operations(server, "ra", "decrypt") >= 3.0);
    }
    enroll(&token_server, "hsm-after-rejections");
}

/// OpenSSL's PKCS#11 engine (Debian `libengine-pkcs11-openssl`): the test makes the certificate
/// of a key already in the token with it, since scepd's own code is what is under test.
const OPENSSL_PKCS11_ENGINE: &str = "/usr/lib/x86_64-linux-gnu/engines-3/pkcs11.so";

#[test]
fn a_ca_key_made_beforehand_in_the_token_is_imported_by_its_uri_and_issues() {
    let test = "hsm import by URI";
    let Some(hsm) = SoftHsm::new(test, LABEL) else {
        return;
    };
    if !Path::new(OPENSSL_PKCS11_ENGINE).exists() {
        skip(
            test,
            "the OpenSSL PKCS#11 engine is missing (Debian package libengine-pkcs11-openssl)",
        );
        return;
    }
    let made = hsm.pkcs11_tool(&[
        "--keypairgen",
        "--key-type",
        "rsa:2048",
        "--label",
        "issuing",
        "--id",
        "1a2b3c",
    ]);
    assert!(made.status.success(), "{}", text(&made));

    // A self-signed CA certificate for it, signed in the token by OpenSSL's engine.
    let dir = hsm.tmp.path();
    let engine_key = format!("pkcs11:token={LABEL};object=issuing;type=private;pin-value={PIN}");
    let out = hsm
        .command("openssl")
        .current_dir(dir)
        .env("PKCS11_MODULE_PATH", MODULE)
        .args([
            "req",
            "-new",
            "-x509",
            "-engine",
            "pkcs11",
            "-keyform",
            "engine",
            "-key",
            &engine_key,
        ])
        .args([
            "-subj",
            "/CN=Imported Token CA",
            "-days",
            "30",
            "-out",
            "imported-ca.pem",
        ])
        .args(["-addext", "basicConstraints=critical,CA:TRUE"])
        .args(["-addext", "keyUsage=critical,keyCertSign,cRLSign,digitalSignature"])
        .output()
        .unwrap();
    assert!(out.status.success(), "openssl req: {}", text(&out));

    let cert = dir.join("imported-ca.pem");
    let uri = format!("pkcs11:token={LABEL};object=issuing;type=private");
    let out = hsm.init_naming_keys(&["--import-ca-cert", cert.to_str().unwrap(), "--import-ca-key", &uri]);
    assert!(out.status.success(), "init: {}", text(&out));
    assert!(!hsm.data().join("ca.key").exists());
    // Mixed: no token to make keys in, so the RA key was made in a file beside the token's CA key.
    assert!(hsm.data().join("ra.key").exists() && !hsm.data().join("ra.key.uri").exists());
    let saved = std::fs::read_to_string(hsm.data().join("ca.key.uri")).unwrap();
    assert!(
        saved.starts_with(&format!("pkcs11:token={LABEL};object=issuing;id=%1A%2B%3C")),
        "{saved}"
    );
    assert_eq!(
        openssl::cert_pubkey(dir, &hsm.data().join("ca.pem")),
        openssl::cert_pubkey(dir, &cert)
    );
    let (ok, out) = openssl::try_run(dir, &["verify", "-CAfile", "imported-ca.pem", "data/ra.pem"]);
    assert!(ok, "{out}");

    let server = hsm.serve();
    // The start-up CRL is signed by the maintenance task, which may not have run yet.
    let ca_signed_at_start = key_operations_so_far(&server, "ca", "sign").0.unwrap_or(0.0);
    enroll(&server, "hsm-imported-1");
    let crl_dir = tempfile::tempdir().unwrap();
    crate::lifecycle::fetch_crl(&server, crl_dir.path());

    // The token keys' work is counted: the RA decrypted the request and signed the CertRep,
    // the CA signed the certificate (and a CRL, unless one was made at start).
    assert!(key_operations(&server, "ra", "decrypt") >= 1.0);
    assert!(key_operations(&server, "ra", "sign") >= 1.0);
    assert!(key_operations(&server, "ca", "sign") > ca_signed_at_start);
}

/// The SoftHSM2 token directory moved away while serving, then back. SoftHSM notices at once
/// (it rereads its files on each operation), marks the token invalid and fails logins with
/// CKR_GENERAL_ERROR until the module is initialized again, which scepd does by itself.
#[test]
fn a_token_that_goes_away_makes_scep_and_readyz_503_and_service_resumes_when_it_is_back() {
    use crate::support::requester::{recipient, Opts};
    use crate::support::Requester;

    let Some(hsm) = SoftHsm::new("hsm token removed", LABEL) else {
        return;
    };
    assert!(hsm.init(&["--ocsp-signer"]).status.success());
    let server = hsm.serve();
    enroll(&server, "hsm-before-removal");
    let readyz = || http::get(&format!("{}/readyz", server.base)).unwrap();
    assert_eq!(readyz().status, 200);

    let tokens = hsm.tmp.path().join("tokens");
    let away = hsm.tmp.path().join("tokens.away");
    std::fs::rename(&tokens, &away).unwrap();

    // /readyz names every key that no longer signs, by its URI, the OCSP signer included.
    let not_ready = readyz();
    assert_eq!(not_ready.status, 503);
    let body = not_ready.text();
    for key in ["ca", "ra", "ocsp"] {
        assert!(
            body.contains(&format!("{key} key pkcs11:token={LABEL};object=scepd-{key};")),
            "{key} not named: {body}"
        );
    }

    // A SCEP request gets 503 with Retry-After: not a 500, not a FAILURE the client would keep.
    let ra = recipient(&server.scep_url());
    let requester = Requester::new(scepd_ca::KeyBits::Rsa2048);
    let message = requester.message(&requester.csr("CN=hsm-away", Some(CHALLENGE)), &ra, &Opts::default());
    let url = format!("{}?operation=PKIOperation", server.scep_url());
    let refused = http::post(&url, "application/x-pki-message", &message).unwrap();
    assert_eq!(refused.status, 503, "{}\n{}", refused.text(), server.log_text());
    assert!(refused.header("retry-after").is_some());
    let metrics = http::get(&format!("{}/metrics", server.base)).unwrap().text();
    let failed = "scepd_key_operations_total{key=\"ra\",op=\"decrypt\",result=\"error\"}";
    assert!(crate::operations::metric(&metrics, failed) >= 1.0, "{metrics}");

    // The files are back: the next operations reopen the token, without a restart.
    std::fs::rename(&away, &tokens).unwrap();
    assert_eq!(readyz().status, 200, "{}", readyz().text());
    let rep = requester.post(&server.scep_url(), &message);
    assert_eq!(rep.certificates.len(), 1);
    enroll(&server, "hsm-after-removal");
}

/// A PKCSReq or RenewalReq answered SUCCESS: the certificate, written as PEM to `name` in `dir`
/// and checked by `openssl verify` under the server's CA.
fn issued_pem(server: &Server, dir: &Path, rep: &scepd::scep::client::CertRep, name: &str) -> PathBuf {
    assert_eq!(
        rep.header.reply.pki_status.as_deref(),
        Some("0"),
        "{:?}",
        rep.header.reply
    );
    let pem = openssl::write(
        dir,
        name,
        scepd_ca::pem::encode("CERTIFICATE", &rep.certificates[0]).as_bytes(),
    );
    assert!(openssl::verifies(dir, &server.ca_pem(), &pem), "{name} does not verify");
    pem
}

/// The whole lifecycle on keys that never leave the token: certmonger enrolls, the delegated
/// OCSP signer (a token key) answers good then revoked, the CRL (signed in the token) lists a
/// revocation, and a RenewalReq is answered with a new certificate — each checked by openssl.
#[test]
fn a_token_backed_ca_serves_certmonger_ocsp_revocation_and_renewal() {
    use crate::lifecycle::{fetch_crl, holder_of, list, ocsp_status, renew};
    use crate::support::requester::{recipient, Opts};
    use crate::support::Requester;

    let Some(hsm) = SoftHsm::new("hsm lifecycle", LABEL) else {
        return;
    };
    let out = hsm.init(&["--ocsp-signer"]);
    assert!(out.status.success(), "init: {}", text(&out));
    let server = hsm.serve_with(&["--renewal-window", "100"]);
    let dir = tempfile::tempdir().unwrap();

    // certmonger (GET, AES-256, its own quirks) enrolls; OCSP from the token's signer: good.
    let cm = dir.path().join("cm");
    let out = crate::clients::certmonger(&server.scep_url(), &server.ca_pem(), CHALLENGE, "hsm-certmonger", &cm);
    assert!(
        out.status.success(),
        "certmonger: {}\n{}",
        text(&out),
        server.log_text()
    );
    let leaf = cm.join("cert.pem");
    assert!(openssl::verifies(dir.path(), &server.ca_pem(), &leaf));
    assert!(ocsp_status(&server, dir.path(), &leaf).contains(": good"));

    // Revoked: OCSP says so, and the CRL signed in the token lists it.
    let serial = list(&server, &["--device", "hsm-certmonger"])[0]["serial"]
        .as_str()
        .unwrap()
        .to_string();
    let revoked = server.cli(&["cert", "revoke", &serial, "--reason", "keyCompromise"]);
    assert!(revoked.status.success(), "{}", text(&revoked));
    assert!(ocsp_status(&server, dir.path(), &leaf).contains(": revoked"));
    let (crl, _) = fetch_crl(&server, dir.path());
    assert!(crl.contains(&serial), "{crl}");

    // A device enrolls, then renews with a RenewalReq signed by its certificate: the new
    // certificate comes from the token CA too.
    let ra = recipient(&server.scep_url());
    let device = Requester::new(scepd_ca::KeyBits::Rsa2048);
    let first = device.post(
        &server.scep_url(),
        &device.message(&device.csr("CN=hsm-renewing", Some(CHALLENGE)), &ra, &Opts::default()),
    );
    issued_pem(&server, dir.path(), &first, "first.pem");
    let holder = holder_of(&first.certificates[0], &device.key_pem());
    let next = Requester::new(scepd_ca::KeyBits::Rsa2048);
    let renewed = renew(&server, &holder, &next.csr("CN=hsm-renewing", None));
    issued_pem(&server, dir.path(), &renewed, "renewed.pem");
    let history = list(&server, &["--device", "hsm-renewing"]);
    assert_eq!(history[0]["kind"], "renewal", "{history:?}");
    assert_eq!(history[1]["status"], "superseded", "{history:?}");
}

/// The RA and OCSP signer keys made beforehand in the token by `pkcs11-tool`, named by their
/// URIs at `scepd init`, beside a CA key kept in a (passphrase-less) file: the reverse of the
/// mixed set-up above. scepd issues their certificates for the token's public keys, and they
/// decrypt requests, sign CertReps and sign OCSP responses that `openssl ocsp` verifies.
#[test]
fn ra_and_ocsp_keys_made_beforehand_in_the_token_are_imported_by_their_uris() {
    let test = "hsm RA and OCSP keys by URI";
    let Some(hsm) = SoftHsm::new(test, LABEL) else {
        return;
    };
    for (label, id) in [("front-ra", "0a01"), ("ocsp-responder", "0a02")] {
        let made = hsm.pkcs11_tool(&["--keypairgen", "--key-type", "rsa:2048", "--label", label, "--id", id]);
        assert!(made.status.success(), "{}", text(&made));
    }
    let uri = |object: &str| format!("pkcs11:token={LABEL};object={object};type=private");
    let data = hsm.data();
    let out = hsm.init_naming_keys(&[
        "--import-ra-key",
        &uri("front-ra"),
        "--import-ocsp-key",
        &uri("ocsp-responder"),
    ]);
    assert!(out.status.success(), "init: {}", text(&out));

    // The CA key is a file; the RA and OCSP keys are references to the token's objects.
    assert!(data.join("ca.key").exists());
    for (file, object) in [("ra", "front-ra"), ("ocsp", "ocsp-responder")] {
        assert!(!data.join(format!("{file}.key")).exists(), "{file}.key");
        let saved = std::fs::read_to_string(data.join(format!("{file}.key.uri"))).unwrap();
        assert!(
            saved.starts_with(&format!("pkcs11:token={LABEL};object={object};")),
            "{saved}"
        );

        // The certificate scepd issued carries the token's public key, read back by pkcs11-tool.
        let dir = hsm.tmp.path();
        let der = dir.join(format!("{object}.pub.der"));
        let read = hsm.pkcs11_tool(&[
            "--read-object",
            "--type",
            "pubkey",
            "--label",
            object,
            "-o",
            der.to_str().unwrap(),
        ]);
        assert!(read.status.success(), "{}", text(&read));
        let token_pubkey = String::from_utf8(openssl::run(
            dir,
            &[
                "pkey",
                "-pubin",
                "-inform",
                "DER",
                "-in",
                der.to_str().unwrap(),
                "-pubout",
            ],
        ))
        .unwrap();
        assert_eq!(
            openssl::cert_pubkey(dir, &data.join(format!("{file}.pem"))),
            token_pubkey,
            "{file}"
        );
    }

    let server = hsm.serve();
    let dir = tempfile::tempdir().unwrap();
    let leaf = enroll_in(&server, dir.path(), "hsm-imported-ra");
    let status = crate::lifecycle::ocsp_status(&server, dir.path(), &leaf);
    assert!(status.contains(": good"), "{status}");

    assert!(key_operations(&server, "ra", "decrypt") >= 1.0);
    assert!(key_operations(&server, "ra", "sign") >= 1.0);
    assert!(key_operations(&server, "ocsp", "sign") >= 1.0);
}

/// `scepd bench --floor` opens the token keys the data directory refers to (with the PIN) and
/// times the floor through the token, beside the server's CPU per enrollment.
#[test]
fn bench_measures_the_floor_through_the_token() {
    let Some(hsm) = SoftHsm::new("hsm bench floor", LABEL) else {
        return;
    };
    let out = hsm.init(&[]);
    assert!(out.status.success(), "init: {}", text(&out));
    let server = hsm.serve();
    let data = hsm.data();
    let pin = hsm.pin_file.to_str().unwrap();
    let floor = ["--floor", data.to_str().unwrap(), "--pkcs11-pin-file", pin];
    let summary = crate::bench::bench(&server, CHALLENGE, &floor, &hsm.env());
    crate::bench::assert_floor_measured(&summary, 2048);
}

/// `scepd ca rollover` on a token-backed CA makes the next CA's and RA's keys in the same
/// token (the data directory gets references only); after `ca activate-next` they issue, also
/// after a restart.
#[test]
fn a_rollover_of_a_token_backed_ca_makes_the_next_keys_in_the_token() {
    let Some(hsm) = SoftHsm::new("hsm rollover", LABEL) else {
        return;
    };
    let out = hsm.init(&[]);
    assert!(out.status.success(), "{}", text(&out));
    let server = hsm.serve();
    enroll(&server, "before-rollover");
    let data = hsm.data();
    let out = hsm
        .command(BIN)
        .args(["ca", "rollover", "--data", data.to_str().unwrap()])
        .args(["--pkcs11-pin-file", hsm.pin_file.to_str().unwrap()])
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", text(&out));
    let list = crate::rollover::ca_list(&server);
    let next = crate::rollover::role(&list, "next")[0].clone();
    let generation = data.join("cas").join(next["issuer"].as_str().unwrap());
    for key in ["ca", "ra"] {
        assert!(generation.join(format!("{key}.key.uri")).exists(), "{key}.key.uri");
        assert!(!generation.join(format!("{key}.key")).exists(), "no {key}.key file");
    }
    // Two CA keys and two RA keys in the token now, each sensitive and never extractable.
    let objects = text(&hsm.pkcs11_tool(&["--list-objects", "--type", "privkey"]));
    assert_eq!(objects.matches("label:      scepd-ca").count(), 2, "{objects}");
    assert_eq!(objects.matches("label:      scepd-ra").count(), 2, "{objects}");
    assert_eq!(objects.matches("never extractable").count(), 4, "{objects}");

    crate::rollover::cli_ok(&server, &["ca", "activate-next"]);
    let next_ca = generation.join("ca.pem");
    let check = |server: &Server, cn: &str| {
        let dir = tempfile::tempdir().unwrap();
        let out = scepclient(dir.path(), &server.scep_url(), CHALLENGE, cn);
        assert!(
            out.status.success(),
            "scepclient: {}\n{}",
            text(&out),
            server.log_text()
        );
        assert!(openssl::verifies(dir.path(), &next_ca, &dir.path().join("cert.pem")));
    };
    check(&server, "after-rollover");
    drop(server);
    let server = hsm.serve();
    check(&server, "after-restart");
    assert!(key_operations(&server, "ca", "sign") > 0.0);
}
