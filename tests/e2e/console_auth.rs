//! The web console's sign-in over plain HTTP (no browser needed): the failure limit never locks
//! out the right password, sessions end with sign-out and with the account, and `scepd admin`
//! works with and without a running server.

use std::process::Command;

use crate::support::server::BIN;
use crate::support::{http, Server};

/// Fetches the sign-in form; returns its token (also its cookie).
fn login_token(base: &str) -> String {
    let page = http::get(&format!("{base}/ui/login")).unwrap();
    assert_eq!(page.status, 200);
    let cookie = page.header("set-cookie").unwrap().to_string();
    assert!(
        cookie.contains("HttpOnly") && cookie.contains("SameSite=Strict"),
        "{cookie}"
    );
    assert!(!cookie.contains("Secure"), "not over plain HTTP: {cookie}");
    let token = cookie
        .trim_start_matches("scepd_login=")
        .split(';')
        .next()
        .unwrap()
        .to_string();
    assert!(page.text().contains(&format!("value=\"{token}\"")));
    token
}

/// `POST /ui/login`; the response.
fn sign_in(base: &str, name: &str, password: &str) -> http::Response {
    let token = login_token(base);
    let body = format!("login_csrf={token}&name={name}&password={password}");
    http::request(
        "POST",
        &format!("{base}/ui/login"),
        &[
            ("content-type", "application/x-www-form-urlencoded"),
            ("cookie", &format!("scepd_login={token}")),
        ],
        body.as_bytes(),
    )
    .unwrap()
}

/// The session cookie a successful sign-in set.
fn session(resp: &http::Response) -> String {
    assert_eq!(resp.status, 303, "{}", resp.text());
    assert_eq!(resp.header("location"), Some("/ui/"));
    let cookie = resp
        .headers
        .iter()
        .filter(|(k, _)| k.eq_ignore_ascii_case("set-cookie"))
        .map(|(_, v)| v)
        .find(|v| v.starts_with("scepd_session="))
        .expect("a session cookie");
    assert!(cookie.contains("HttpOnly") && cookie.contains("SameSite=Strict") && cookie.contains("Path=/ui/"));
    cookie.split(';').next().unwrap().to_string()
}

fn overview_status(base: &str, cookie: &str) -> u16 {
    http::request("GET", &format!("{base}/ui/"), &[("cookie", cookie)], b"")
        .unwrap()
        .status
}

fn last_line(out: &std::process::Output) -> String {
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    String::from_utf8_lossy(&out.stdout).lines().last().unwrap().to_string()
}

#[test]
fn failed_sign_ins_are_limited_and_audited_but_never_lock_out_the_right_password() {
    let server = Server::start(&["--auth-failures-per-minute", "3"]);
    let base = server.base.trim();
    let password = last_line(&server.cli(&["admin", "add", "olga"]));
    assert!(
        password.len() >= 20 && password.chars().all(|c| c.is_ascii_alphanumeric()),
        "{password}"
    );
    for _ in 0..3 {
        let r = sign_in(base, "olga", "wrong");
        assert_eq!(r.status, 401);
        assert!(r.text().contains("Wrong name, password or token."));
    }
    let r = sign_in(base, "olga", "wrong");
    assert_eq!(r.status, 429, "past the limit");
    assert!(r.header("retry-after").is_some());
    // The right password from the same address, right after: accepted.
    let cookie = session(&sign_in(base, "olga", &password));
    assert_eq!(overview_status(base, &cookie), 200);
    // The budget is the address's, whatever the name: another name is still over it.
    assert_eq!(sign_in(base, "nobody", "x").status, 429);
    let trail = String::from_utf8_lossy(&server.cli(&["audit", "export"]).stdout).into_owned();
    let failures = trail
        .lines()
        .filter(|l| l.contains("auth.failed") && l.contains("\"console\""))
        .count();
    assert_eq!(failures, 5, "{trail}");
    assert!(
        trail.contains("console.signin") && trail.contains("\"actor\":\"olga\""),
        "{trail}"
    );
}

#[test]
fn sessions_end_with_sign_out_and_with_the_account() {
    let server = Server::start(&[]);
    let base = server.base.trim();
    let token = std::fs::read_to_string(server.data().join("admin.token")).unwrap();
    let admin = session(&sign_in(base, "", token.trim()));
    let password = last_line(&server.cli(&["admin", "add", "vera", "--role", "viewer"]));
    let vera = session(&sign_in(base, "vera", &password));
    assert_eq!(overview_status(base, &vera), 200);
    // No session: /ui/ sends to the sign-in page and shows nothing.
    let anonymous = http::get(&format!("{base}/ui/")).unwrap();
    assert_eq!(anonymous.status, 303);
    assert!(!anonymous.text().contains("Overview"));
    assert_eq!(http::get(&format!("{base}/ui/certificates")).unwrap().status, 303);
    // Removing the account (through the running server) ends its sessions at once.
    let out = server.cli(&["admin", "remove", "vera"]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    assert_eq!(overview_status(base, &vera), 303);
    assert_eq!(sign_in(base, "vera", &password).status, 401);
    // Sign-out needs the CSRF token, then ends the session.
    let page = http::request("GET", &format!("{base}/ui/"), &[("cookie", &admin)], b"").unwrap();
    let html = page.text();
    let csrf = html
        .split("name=\"csrf\" value=\"")
        .nth(1)
        .unwrap()
        .split('"')
        .next()
        .unwrap();
    let post = |body: &str| {
        http::request(
            "POST",
            &format!("{base}/ui/logout"),
            &[
                ("cookie", &admin),
                ("content-type", "application/x-www-form-urlencoded"),
            ],
            body.as_bytes(),
        )
        .unwrap()
        .status
    };
    assert_eq!(post(""), 403, "no CSRF token");
    assert_eq!(overview_status(base, &admin), 200);
    assert_eq!(post(&format!("csrf={csrf}")), 303);
    assert_eq!(overview_status(base, &admin), 303);
}

#[test]
fn admin_accounts_without_a_server_and_names_taken_once() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let run = |args: &[&str]| {
        Command::new(BIN)
            .args(args)
            .args(["--data", data.to_str().unwrap()])
            .output()
            .unwrap()
    };
    assert!(run(&["init"]).status.success());
    let password = last_line(&run(&["admin", "add", "ops", "--role", "operator"]));
    assert!(!run(&["admin", "add", "ops"]).status.success(), "the name is taken");
    assert!(
        !run(&["admin", "add", "admin"]).status.success(),
        "`admin` is the token's"
    );
    assert!(!run(&["admin", "add", "x", "--role", "root"]).status.success());
    let listed = run(&["admin", "list", "--json"]);
    let list: serde_json::Value = serde_json::from_slice(&listed.stdout).unwrap();
    assert_eq!(list[0]["name"], "ops");
    assert_eq!(list[0]["role"], "operator");
    // The store keeps an Argon2id hash, never the password.
    let store = std::fs::read(data.join("scepd.redb")).unwrap();
    let text = String::from_utf8_lossy(&store);
    assert!(text.contains("$argon2id$") && !text.contains(&password));
    // The server started on that directory signs the account in.
    let server = Server::start_in(&data, &[]);
    let base = server.base.trim();
    assert_eq!(overview_status(base, &session(&sign_in(base, "ops", &password))), 200);
    // Through the running server now: a second add of the name is a conflict.
    let out = server.cli(&["admin", "add", "ops"]);
    assert!(!out.status.success());
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("409"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

#[test]
fn under_tls_the_cookies_are_secure() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    crate::support::openssl::self_signed(d, "tls.key", "tls.pem", "/CN=localhost", 2, &[]);
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
    let jar = d.join("jar");
    let curl = |args: &[&str]| {
        let out = Command::new("curl")
            .args(["-sik", "-c", jar.to_str().unwrap(), "-b", jar.to_str().unwrap()])
            .args(args)
            .output()
            .unwrap();
        String::from_utf8_lossy(&out.stdout).into_owned()
    };
    let page = curl(&[&format!("{}/ui/login", tls_url.trim())]);
    let cookie = page
        .lines()
        .find(|l| l.to_lowercase().starts_with("set-cookie: scepd_login="))
        .unwrap();
    assert!(cookie.contains("; Secure"), "{cookie}");
    let token_field = page
        .split("name=\"login_csrf\" value=\"")
        .nth(1)
        .unwrap()
        .split('"')
        .next()
        .unwrap();
    let admin_token = std::fs::read_to_string(server.data().join("admin.token")).unwrap();
    let answer = curl(&[
        "--data-urlencode",
        &format!("login_csrf={token_field}"),
        "--data-urlencode",
        "name=",
        "--data-urlencode",
        &format!("password={}", admin_token.trim()),
        &format!("{}/ui/login", tls_url.trim()),
    ]);
    let session = answer
        .lines()
        .find(|l| l.to_lowercase().starts_with("set-cookie: scepd_session="))
        .unwrap_or_else(|| panic!("{answer}"));
    assert!(
        session.contains("HttpOnly") && session.contains("SameSite=Strict") && session.contains("; Secure"),
        "{session}"
    );
    let overview = curl(&[&format!("{}/ui/", tls_url.trim())]);
    assert!(
        overview.starts_with("HTTP/1.1 200") && overview.contains("<h1>Overview</h1>"),
        "{overview}"
    );
}

/// The overview names the other CA generations of a rollover: the next CA (not activated yet),
/// then, after `ca activate-next`, the retired one beside the new current CA.
#[test]
fn the_overview_shows_the_next_and_the_retired_ca() {
    let server = Server::start(&[]);
    let base = &server.base;
    let token = std::fs::read_to_string(server.data().join("admin.token")).unwrap();
    let cookie = session(&sign_in(base, "", token.trim()));
    let overview = || {
        let page = http::request("GET", &format!("{base}/ui/"), &[("cookie", &cookie)], b"").unwrap();
        assert_eq!(page.status, 200);
        page.text()
    };
    assert!(!overview().contains("Next CA"));

    let out = server.cli(&["ca", "rollover", "--ca-subject", "CN=Console Second CA,O=scepd"]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let page = overview();
    let next = page
        .lines()
        .find(|l| l.contains("Next CA"))
        .unwrap_or_else(|| panic!("{page}"));
    let next = &page[page.find(next).unwrap()..];
    assert!(
        next.contains("CN=Console Second CA") && next.contains("not activated yet"),
        "{page}"
    );

    let out = server.cli(&["ca", "activate-next"]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let page = overview();
    assert!(!page.contains("Next CA") && page.contains("Retired CA"), "{page}");
}

/// A certificate's page says which kind of challenge issued it (here the static one).
#[test]
fn the_certificate_page_names_the_challenge_that_issued_it() {
    let server = Server::start(&["--static-challenge", "console-static", "--allow-des"]);
    let dir = tempfile::tempdir().unwrap();
    let out = crate::clients::scepclient(dir.path(), &server.scep_url(), "console-static", "console-device");
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let listed = crate::lifecycle::list(&server, &[]);
    let serial = listed[0]["serial"].as_str().unwrap();
    assert_eq!(listed[0]["challenge"]["kind"], "static");

    let token = std::fs::read_to_string(server.data().join("admin.token")).unwrap();
    let cookie = session(&sign_in(&server.base, "", token.trim()));
    let page = http::request(
        "GET",
        &format!("{}/ui/certificate?serial={serial}", server.base),
        &[("cookie", &cookie)],
        b"",
    )
    .unwrap();
    assert_eq!(page.status, 200);
    let text = page.text();
    assert!(
        text.contains("Challenge") && text.contains("static challenge"),
        "{text}"
    );
}

/// A burst of sign-ins: a few password checks (Argon2, about 19 MiB each) run at once, the rest
/// are told to retry (503 with Retry-After) without hashing; none fails otherwise, and the right
/// password still signs in afterwards.
#[test]
fn a_burst_of_sign_ins_hashes_a_few_at_a_time() {
    let server = Server::start(&["--auth-failures-per-minute", "1000"]);
    let base = server.base.clone();
    let password = last_line(&server.cli(&["admin", "add", "burst"]));
    let statuses: Vec<(u16, bool)> = std::thread::scope(|s| {
        let tries: Vec<_> = (0..24)
            .map(|_| {
                s.spawn(|| {
                    let r = sign_in(&base, "burst", "wrong");
                    (r.status, r.header("retry-after").is_some())
                })
            })
            .collect();
        tries.into_iter().map(|t| t.join().unwrap()).collect()
    });
    assert!(statuses.iter().all(|(s, _)| *s == 401 || *s == 503), "{statuses:?}");
    assert!(statuses.iter().filter(|(s, _)| *s == 503).all(|(_, retry)| *retry));
    assert!(
        statuses.iter().any(|(s, _)| *s == 503),
        "more than 4 at once: {statuses:?}"
    );
    assert!(statuses.iter().any(|(s, _)| *s == 401), "{statuses:?}");
    let cookie = session(&sign_in(&base, "burst", &password));
    assert_eq!(overview_status(&base, &cookie), 200);
}
