//! The web console in a real browser: headless Chromium driven through chromedriver
//! (WebDriver, `fantoccini`), against the real scepd binary. Devices are enrolled by micromdm's
//! scepclient; revocations are checked in the CRL with `openssl crl`; headers and forged
//! requests with `curl`. Each page's screenshot goes to `target/console-screenshots/`.

use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use fantoccini::{Client, Locator};

use crate::clients::scepclient;
use crate::support::skip::skip;
use crate::support::{http, openssl, Server};

const CHALLENGE: &str = "console-test-challenge";
const CHROMIUM: &str = "/usr/bin/chromium";
const CHROMEDRIVER: &str = "/usr/bin/chromedriver";

/// A chromedriver process on a free port, stopped when dropped.
struct Driver {
    child: Child,
    url: String,
}

impl Driver {
    fn start() -> Driver {
        let port = TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
        let child = Command::new(CHROMEDRIVER)
            .arg(format!("--port={port}"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start chromedriver");
        let url = format!("http://127.0.0.1:{port}");
        let deadline = Instant::now() + Duration::from_secs(30);
        // Listening is enough: the WebDriver session request waits for it to be ready.
        while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
            assert!(Instant::now() < deadline, "chromedriver did not start");
            std::thread::sleep(Duration::from_millis(50));
        }
        Driver { child, url }
    }

    /// A new browser (chromedriver gives each session its own profile: no shared cookies).
    async fn browser(&self) -> Client {
        let caps = serde_json::json!({
            "goog:chromeOptions": {
                "binary": CHROMIUM,
                "args": ["--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                         "--window-size=1280,1000"],
            }
        });
        let serde_json::Value::Object(caps) = caps else {
            unreachable!()
        };
        Client::with_capabilities_and_connector(
            &self.url,
            &caps,
            hyper_util::client::legacy::connect::HttpConnector::new(),
        )
        .await
        .expect("a WebDriver session")
    }
}

impl Drop for Driver {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn screenshots() -> PathBuf {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("target/console-screenshots");
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

async fn shot(b: &Client, name: &str) {
    let png = b.screenshot().await.unwrap();
    assert!(png.starts_with(b"\x89PNG"), "a PNG screenshot");
    std::fs::write(screenshots().join(format!("{name}.png")), png).unwrap();
}

/// Clicks what navigates (a link, a submit button) and waits until the new page replaced the
/// old one (an element of the old page is then stale).
async fn click(b: &Client, what: Locator<'_>) {
    let old = b.find(Locator::Css("html")).await.unwrap();
    b.find(what).await.unwrap().click().await.unwrap();
    replaced(old).await;
}

/// Waits until `old` (an element of the page before) is stale: a new page is in.
async fn replaced(old: fantoccini::elements::Element) {
    let deadline = Instant::now() + Duration::from_secs(30);
    while old.tag_name().await.is_ok() {
        assert!(Instant::now() < deadline, "the page did not change");
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
}

async fn h1(b: &Client) -> String {
    b.find(Locator::Css("h1")).await.unwrap().text().await.unwrap()
}

async fn sign_in(b: &Client, base: &str, name: &str, password: &str) {
    b.goto(&format!("{base}/ui/")).await.unwrap();
    assert!(
        b.current_url().await.unwrap().as_str().ends_with("/ui/login"),
        "/ui/ sends to the sign-in page"
    );
    if !name.is_empty() {
        b.find(Locator::Id("name"))
            .await
            .unwrap()
            .send_keys(name)
            .await
            .unwrap();
    }
    b.find(Locator::Id("password"))
        .await
        .unwrap()
        .send_keys(password)
        .await
        .unwrap();
    click(b, Locator::Css("main button[type=submit]")).await;
}

async fn session_cookie(b: &Client) -> String {
    b.get_named_cookie("scepd_session").await.unwrap().value().to_string()
}

/// The CSRF token the page's sign-out form carries.
async fn csrf(b: &Client) -> String {
    b.find(Locator::Css("form.signout input[name=csrf]"))
        .await
        .unwrap()
        .attr("value")
        .await
        .unwrap()
        .unwrap()
}

/// `curl -si` with extra arguments: (status, headers and body).
fn curl(args: &[&str]) -> (u16, String) {
    let out = Command::new("curl").arg("-si").args(args).output().expect("curl");
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    let status = text.split_whitespace().nth(1).and_then(|s| s.parse().ok()).unwrap_or(0);
    (status, text)
}

fn cli_last_line(server: &Server, args: &[&str]) -> String {
    let out = server.cli(args);
    assert!(
        out.status.success(),
        "scepd {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .last()
        .unwrap()
        .trim()
        .to_string()
}

/// Enrolls `cn` with scepclient; returns the serial (upper-case hex, as openssl prints it).
fn enroll(dir: &Path, server: &Server, challenge: &str, cn: &str) -> String {
    let out = scepclient(dir, &server.scep_url(), challenge, cn);
    assert!(
        out.status.success(),
        "scepclient: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let serial = openssl::x509_field(dir, &dir.join("cert.pem"), "-serial");
    serial.trim().trim_start_matches("serial=").to_string()
}

fn cert_status(server: &Server, serial: &str) -> String {
    let out = server.cli(&["cert", "list", "--json"]);
    let list: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    list.as_array()
        .unwrap()
        .iter()
        .find(|c| c["serial"].as_str().is_some_and(|s| s.eq_ignore_ascii_case(serial)))
        .map(|c| c["status"].as_str().unwrap().to_string())
        .unwrap_or_default()
}

fn tools_missing() -> Option<String> {
    for tool in [CHROMIUM, CHROMEDRIVER] {
        if !Path::new(tool).exists() {
            return Some(format!("{tool} is missing (Debian packages chromium, chromium-driver)"));
        }
    }
    for tool in ["scepclient", "curl"] {
        if Command::new(tool).arg("-help").output().is_err() {
            return Some(format!("{tool} is not on PATH"));
        }
    }
    None
}

#[test]
fn console_in_a_real_browser() {
    if let Some(why) = tools_missing() {
        return skip("console_in_a_real_browser", &why);
    }
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    runtime.block_on(browse());
}

async fn browse() {
    let server = Server::start(&["--static-challenge", CHALLENGE, "--allow-des"]);
    let base = server.base.trim().to_string();
    let work = tempfile::tempdir().unwrap();
    let device1 = work.path().join("d1");
    std::fs::create_dir(&device1).unwrap();
    let serial1 = enroll(&device1, &server, CHALLENGE, "console-device-1");
    let operator_pw = cli_last_line(&server, &["admin", "add", "olga", "--role", "operator"]);
    let viewer_pw = cli_last_line(&server, &["admin", "add", "vera", "--role", "viewer"]);
    let listed = server.cli(&["admin", "list"]);
    let listed = String::from_utf8_lossy(&listed.stdout);
    assert!(
        listed.contains("olga\toperator") && listed.contains("vera\tviewer"),
        "{listed}"
    );
    let token = std::fs::read_to_string(server.data().join("admin.token"))
        .unwrap()
        .trim()
        .to_string();
    let driver = Driver::start();

    // The admin token: find the scepclient device, revoke it after the confirmation page.
    let b = driver.browser().await;
    b.goto(&format!("{base}/ui/login")).await.unwrap();
    shot(&b, "login").await;
    sign_in(&b, &base, "", &token).await;
    assert_eq!(h1(&b).await, "Overview");
    // The counts come from a background pass over the store: the first view may say so.
    let mut overview = b.source().await.unwrap();
    for _ in 0..40 {
        if !overview.contains("Counting the certificates") {
            break;
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
        b.refresh().await.unwrap();
        overview = b.source().await.unwrap();
    }
    assert!(
        overview.contains(r#"<a href="/ui/certificates?status=active">1</a>"#),
        "{overview}"
    );
    assert!(
        overview.contains("<svg class=\"chart\"") && overview.contains("<title>"),
        "the chart is inline SVG"
    );
    shot(&b, "overview").await;
    b.goto(&format!("{base}/ui/devices")).await.unwrap();
    b.find(Locator::Id("q"))
        .await
        .unwrap()
        .send_keys("console-dev")
        .await
        .unwrap();
    click(&b, Locator::Css("main button[type=submit]")).await;
    shot(&b, "devices").await;
    click(&b, Locator::LinkText("console-device-1")).await;
    assert_eq!(h1(&b).await, "Device console-device-1");
    let page = b.source().await.unwrap();
    assert!(page.contains(&serial1), "the device's certificate is listed");
    shot(&b, "device").await;
    click(&b, Locator::Css("main a.danger")).await;
    assert!(h1(&b).await.starts_with("Revoke every certificate"));
    shot(&b, "device-revoke-confirm").await;
    b.find(Locator::Id("reason"))
        .await
        .unwrap()
        .select_by_value("keyCompromise")
        .await
        .unwrap();
    click(&b, Locator::Css("main button[type=submit]")).await;
    assert_eq!(h1(&b).await, "Revoked");
    assert!(b.source().await.unwrap().contains(&serial1));
    assert_eq!(cert_status(&server, &serial1), "revoked");
    // openssl finds the serial in the CRL scepd serves.
    let crl = http::get(&format!("{base}/crl")).unwrap();
    let crl_file = openssl::write(work.path(), "crl.der", &crl.body);
    let text = String::from_utf8_lossy(&openssl::run(
        work.path(),
        &[
            "crl",
            "-inform",
            "DER",
            "-in",
            crl_file.to_str().unwrap(),
            "-noout",
            "-text",
        ],
    ))
    .into_owned();
    assert!(text.contains(&format!("Serial Number: {serial1}")), "{text}");
    assert!(text.contains("Key Compromise"), "{text}");
    // The certificate's page, its PEM, the other pages.
    b.goto(&format!("{base}/ui/certificate?serial={serial1}"))
        .await
        .unwrap();
    assert!(b.source().await.unwrap().contains("CN=console-device-1"));
    shot(&b, "certificate").await;
    b.goto(&format!("{base}/ui/certificates")).await.unwrap();
    shot(&b, "certificates").await;
    b.goto(&format!("{base}/ui/audit")).await.unwrap();
    let audit = b.source().await.unwrap();
    assert!(
        audit.contains("certificate.revoked") && audit.contains("console.signin"),
        "{audit}"
    );
    shot(&b, "audit").await;
    // 200 % zoom is half the CSS width: every page reflows, nothing scrolls sideways.
    b.set_window_size(640, 1000).await.unwrap();
    for path in [
        "/ui/",
        "/ui/devices?q=console",
        "/ui/device?id=console-device-1",
        "/ui/certificates",
        "/ui/audit",
    ] {
        b.goto(&format!("{base}{path}")).await.unwrap();
        let fits = b
            .execute(
                "return document.documentElement.scrollWidth <= window.innerWidth;",
                vec![],
            )
            .await
            .unwrap();
        assert_eq!(
            fits,
            serde_json::Value::Bool(true),
            "{path} scrolls sideways at 200 % zoom"
        );
    }
    shot(&b, "audit-narrow").await;
    b.set_window_size(1280, 1000).await.unwrap();
    // Sign-out ends the session, for this browser and for anyone holding the cookie.
    let old = session_cookie(&b).await;
    click(&b, Locator::Css("form.signout button")).await;
    assert!(b.current_url().await.unwrap().as_str().ends_with("/ui/login"));
    let (status, answer) = curl(&["-b", &format!("scepd_session={old}"), &format!("{base}/ui/")]);
    assert_eq!(status, 303, "{answer}");
    assert!(answer.to_lowercase().contains("location: /ui/login"), "{answer}");
    b.close().await.unwrap();

    // An operator: add an MDM credential (checked on the NDES page), mint a bound challenge
    // (redeemed by scepclient).
    // Keyboard only: type the name, Tab to the password, Enter submits.
    let b = driver.browser().await;
    b.goto(&format!("{base}/ui/login")).await.unwrap();
    let old = b.find(Locator::Css("html")).await.unwrap();
    b.find(Locator::Id("name"))
        .await
        .unwrap()
        .send_keys(&format!("olga\u{E004}{operator_pw}\u{E007}"))
        .await
        .unwrap();
    replaced(old).await;
    assert_eq!(h1(&b).await, "Overview");
    assert!(b.source().await.unwrap().contains("Signed in as <strong>olga</strong>"));
    b.goto(&format!("{base}/ui/mdm")).await.unwrap();
    b.find(Locator::Id("name"))
        .await
        .unwrap()
        .send_keys("jamf-console")
        .await
        .unwrap();
    click(&b, Locator::Css("main form[action='/ui/mdm/add'] button")).await;
    let mdm_password = b.find(Locator::Id("secret")).await.unwrap().text().await.unwrap();
    shot(&b, "mdm-added").await;
    let (status, _) = curl(&[
        "-u",
        &format!("jamf-console:{mdm_password}"),
        &format!("{base}/certsrv/mscep_admin/"),
    ]);
    assert_eq!(status, 200, "the password shown once works on the NDES page");
    b.goto(&format!("{base}/ui/mdm")).await.unwrap();
    shot(&b, "mdm").await;
    b.goto(&format!("{base}/ui/challenges")).await.unwrap();
    b.find(Locator::Id("device"))
        .await
        .unwrap()
        .send_keys("console-device-2")
        .await
        .unwrap();
    click(&b, Locator::Css("main button[type=submit]")).await;
    let challenge = b.find(Locator::Id("secret")).await.unwrap().text().await.unwrap();
    shot(&b, "challenge").await;
    let device2 = work.path().join("d2");
    std::fs::create_dir(&device2).unwrap();
    let serial2 = enroll(&device2, &server, &challenge, "console-device-2");
    assert_eq!(cert_status(&server, &serial2), "active");
    // A POST without (or with a wrong) CSRF token is refused, and changes nothing.
    let olga = format!("scepd_session={}", session_cookie(&b).await);
    for body in [
        format!("serial={serial2}&reason=keyCompromise"),
        format!("serial={serial2}&csrf=00&reason=keyCompromise"),
    ] {
        let (status, answer) = curl(&["-b", &olga, "--data", &body, &format!("{base}/ui/certificate/revoke")]);
        assert_eq!(status, 403, "{answer}");
    }
    assert_eq!(cert_status(&server, &serial2), "active");
    b.goto(&format!("{base}/ui/audit?event=mdm.added")).await.unwrap();
    let audit = b.source().await.unwrap();
    assert!(
        audit.contains("<td>olga</td>"),
        "audited with the signed-in name: {audit}"
    );
    b.close().await.unwrap();

    // A viewer sees no revoke button, and a forged POST (with a valid CSRF token) is refused.
    let b = driver.browser().await;
    sign_in(&b, &base, "vera", &viewer_pw).await;
    assert_eq!(h1(&b).await, "Overview");
    b.goto(&format!("{base}/ui/device?id=console-device-2")).await.unwrap();
    let page = b.source().await.unwrap();
    assert!(page.contains(&serial2) && !page.contains("Revoke all"), "{page}");
    b.goto(&format!("{base}/ui/certificate?serial={serial2}"))
        .await
        .unwrap();
    let page = b.source().await.unwrap();
    assert!(
        !page.contains("Revoke this certificate") && !page.contains("/ui/certificate/revoke"),
        "{page}"
    );
    shot(&b, "viewer-certificate").await;
    let vera = format!("scepd_session={}", session_cookie(&b).await);
    let token_field = csrf(&b).await;
    let forged = format!("serial={serial2}&reason=keyCompromise&csrf={token_field}");
    let (status, answer) = curl(&["-b", &vera, "--data", &forged, &format!("{base}/ui/certificate/revoke")]);
    assert_eq!(status, 403, "{answer}");
    let (status, _) = curl(&[
        "-b",
        &vera,
        "--data",
        &format!("id=console-device-2&csrf={token_field}"),
        &format!("{base}/ui/device/revoke"),
    ]);
    assert_eq!(status, 403);
    assert_eq!(cert_status(&server, &serial2), "active");
    // Every page: the headers, and no inline script or style.
    for path in [
        "/ui/",
        "/ui/devices?q=console",
        "/ui/certificates",
        "/ui/mdm",
        "/ui/challenges",
        "/ui/audit",
    ] {
        let (status, answer) = curl(&["-b", &vera, &format!("{base}{path}")]);
        assert_eq!(status, 200, "{path}: {answer}");
        let lower = answer.to_lowercase();
        assert!(
            lower.contains("content-security-policy: default-src 'self'; frame-ancestors 'none'"),
            "{path}: {answer}"
        );
        assert!(lower.contains("referrer-policy: no-referrer") && lower.contains("cache-control: no-store"));
        assert!(lower.contains("x-content-type-options: nosniff"));
        for inline in ["<script", " style=", " onclick=", " onload=", "javascript:"] {
            assert!(!lower.contains(inline), "{path} has {inline}");
        }
    }
    b.close().await.unwrap();

    // A wrong password is refused and audited.
    let b = driver.browser().await;
    sign_in(&b, &base, "olga", "not-the-password").await;
    assert_eq!(h1(&b).await, "Sign in to scepd");
    assert!(b.source().await.unwrap().contains("Wrong name, password or token."));
    shot(&b, "login-refused").await;
    b.close().await.unwrap();
    let out = server.cli(&["audit", "export"]);
    let trail = String::from_utf8_lossy(&out.stdout);
    assert!(
        trail
            .lines()
            .any(|l| l.contains("auth.failed") && l.contains("console")),
        "{trail}"
    );
}
