//! Dynamic one-time challenges: the MDM endpoints (NDES page, Jamf webhook, JSON API, CLI),
//! their authentication, redemption by real clients, expiry, binding, concurrency and crashes.

use std::collections::HashSet;
use std::sync::atomic::{AtomicUsize, Ordering};

use base64::Engine;
use scepd_ca::KeyBits;

use crate::clients::{certmonger, scepclient};
use crate::support::requester::{recipient, Opts};
use crate::support::{http, Requester, Server};

pub(crate) fn basic(user: &str, password: &str) -> String {
    format!(
        "Basic {}",
        base64::engine::general_purpose::STANDARD.encode(format!("{user}:{password}"))
    )
}

/// `scepd mdm add NAME`: the password alone on the last line.
pub(crate) fn add_mdm(server: &Server, name: &str) -> String {
    let out = server.cli(&["mdm", "add", name]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    String::from_utf8(out.stdout)
        .unwrap()
        .lines()
        .last()
        .unwrap()
        .to_string()
}

fn ndes(server: &Server, path: &str, auth: &str) -> http::Response {
    http::request(
        "GET",
        &format!("{}{path}", server.base),
        &[("Authorization", auth)],
        b"",
    )
    .unwrap()
}

/// The challenge as Fleet reads it from the NDES page.
fn fleet_parse(html: &str) -> String {
    let re = regex::Regex::new(r"(?i)The enrollment challenge password is: <B> (?P<password>\S*)").unwrap();
    re.captures(html)
        .expect("Fleet's regex matches")
        .name("password")
        .unwrap()
        .as_str()
        .to_string()
}

fn jamf_body(event: &str) -> Vec<u8> {
    serde_json::json!({
        "webhook": {"id": 7, "name": "scepd", "webhookEvent": event},
        "event": {"scepServerUrl": "https://scep.example.test/scep", "payloadIdentifier": "com.example.scep.payload-1",
                  "payloadTypes": ["com.apple.security.scep"]}
    })
    .to_string()
    .into_bytes()
}

pub(crate) fn api_challenge(server: &Server, auth: &str, body: &str) -> http::Response {
    http::request(
        "POST",
        &format!("{}/api/v1/challenges", server.base),
        &[("Authorization", auth), ("Content-Type", "application/json")],
        body.as_bytes(),
    )
    .unwrap()
}

pub(crate) fn api_mint(server: &Server, auth: &str, body: &str) -> String {
    let resp = api_challenge(server, auth, body);
    assert_eq!(resp.status, 201, "{}", resp.text());
    let v: serde_json::Value = serde_json::from_slice(&resp.body).unwrap();
    v["challenge"].as_str().unwrap().to_string()
}

pub(crate) fn admin_auth(server: &Server) -> String {
    format!(
        "Bearer {}",
        std::fs::read_to_string(server.data().join("admin.token"))
            .unwrap()
            .trim()
    )
}

#[test]
fn ndes_page_format_auth_and_lifetime() {
    let server = Server::start(&["--challenge-ttl", "1800"]);
    let password = add_mdm(&server, "jamf-pro");
    assert_eq!(password.len(), 32);
    for path in ["/certsrv/mscep_admin/", "/certsrv/mscep_admin"] {
        let resp = ndes(&server, path, &basic("jamf-pro", &password));
        assert_eq!(resp.status, 200, "{path}");
        assert_eq!(resp.header("content-type"), Some("text/html; charset=utf-8"));
        assert_eq!(resp.header("cache-control"), Some("no-store"));
        let html = resp.text();
        let challenge = fleet_parse(&html);
        assert!(
            html.contains(&format!("The enrollment challenge password is: <B> {challenge} </B>")),
            "{html}"
        );
        assert!(
            challenge.len() >= 22 && challenge.bytes().all(|b| b.is_ascii_alphanumeric()),
            "{challenge}"
        );
        assert!(
            html.contains("can be used only once") && html.contains("expire within 30 minutes"),
            "{html}"
        );
    }
    // Two fetches, two challenges.
    let a = fleet_parse(&ndes(&server, "/certsrv/mscep_admin/", &basic("jamf-pro", &password)).text());
    let b = fleet_parse(&ndes(&server, "/certsrv/mscep_admin/", &basic("jamf-pro", &password)).text());
    assert_ne!(a, b);
    for auth in [
        basic("jamf-pro", "wrong"),
        basic("nobody", &password),
        "Basic !!!".to_string(),
        String::new(),
    ] {
        let resp = ndes(&server, "/certsrv/mscep_admin/", &auth);
        assert_eq!(resp.status, 401, "{auth}");
        assert_eq!(resp.header("www-authenticate"), Some("Basic realm=\"scepd\""));
    }
    assert!(
        !server.log_text().contains(&a) && !server.log_text().contains(&password),
        "secrets must not be logged"
    );
}

#[test]
fn jamf_webhook_and_json_api() {
    let server = Server::start(&["--challenge-max-ttl", "7200"]);
    let password = add_mdm(&server, "jamf");
    let auth = basic("jamf", &password);
    let url = format!("{}/api/v1/webhooks/jamf/scep-challenge", server.base);
    let resp = http::request("POST", &url, &[("Authorization", &auth)], &jamf_body("SCEPChallenge")).unwrap();
    assert_eq!(resp.status, 200, "{}", resp.text());
    assert!(resp.header("content-type").unwrap().starts_with("text/plain"));
    let challenge = resp.text();
    assert!(
        challenge.len() >= 22 && challenge.bytes().all(|b| b.is_ascii_alphanumeric()),
        "bare challenge: {challenge:?}"
    );
    assert!(
        server
            .log_text()
            .contains("payload_identifier=com.example.scep.payload-1"),
        "payloadIdentifier recorded"
    );
    assert_eq!(
        http::request("POST", &url, &[("Authorization", &auth)], &jamf_body("ComputerAdded"))
            .unwrap()
            .status,
        400
    );
    assert_eq!(
        http::request("POST", &url, &[("Authorization", &auth)], b"{not json")
            .unwrap()
            .status,
        400
    );
    assert_eq!(
        http::request("POST", &url, &[], &jamf_body("SCEPChallenge"))
            .unwrap()
            .status,
        401
    );

    // JSON API with MDM credentials and with the admin token.
    let resp = api_challenge(&server, &auth, r#"{"device_id": "C02XYZ", "ttl_seconds": 600}"#);
    assert_eq!(resp.status, 201);
    let v: serde_json::Value = serde_json::from_slice(&resp.body).unwrap();
    let expires = time::OffsetDateTime::parse(
        v["expires_at"].as_str().unwrap(),
        &time::format_description::well_known::Rfc3339,
    )
    .unwrap();
    let ttl = (expires - time::OffsetDateTime::now_utc()).whole_seconds();
    assert!((590..=600).contains(&ttl), "expires in {ttl} s");
    let resp = api_challenge(&server, &admin_auth(&server), r#"{"ttl_seconds": 999999999}"#);
    assert_eq!(resp.status, 201);
    let v: serde_json::Value = serde_json::from_slice(&resp.body).unwrap();
    assert_eq!(v["ttl_seconds"], 7200, "capped at challenge_max_ttl");
    assert_eq!(
        api_challenge(&server, &admin_auth(&server), "").status,
        201,
        "an empty body is allowed"
    );
    assert_eq!(api_challenge(&server, &auth, r#"{"colour": "red"}"#).status, 400);
    assert_eq!(api_challenge(&server, &auth, r#"{"ttl_seconds": 0}"#).status, 400);
    assert_eq!(api_challenge(&server, &basic("jamf", "nope"), "{}").status, 401);
    assert_eq!(api_challenge(&server, "Bearer nope", "{}").status, 401);

    // The CLI prints the challenge alone.
    let out = server.cli(&["challenge", "new", "--device", "C02XYZ", "--ttl", "120"]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let text = String::from_utf8(out.stdout).unwrap();
    assert_eq!(text.lines().count(), 1);
    assert_eq!(text.trim().len(), 22);
}

#[test]
fn mdm_credentials_list_rotate_remove_and_rate_limit() {
    let server = Server::start(&["--auth-failures-per-minute", "3"]);
    let first = add_mdm(&server, "fleet");
    let dup = server.cli(&["mdm", "add", "fleet"]);
    assert!(!dup.status.success() && String::from_utf8_lossy(&dup.stderr).contains("409"));
    let list = server.cli(&["mdm", "list", "--json"]);
    let v: serde_json::Value = serde_json::from_slice(&list.stdout).unwrap();
    assert_eq!(v[0]["name"], "fleet");
    assert!(
        !String::from_utf8_lossy(&list.stdout).contains(&first),
        "passwords are never listed"
    );

    let out = server.cli(&["mdm", "rotate", "fleet"]);
    assert!(out.status.success());
    let second = String::from_utf8(out.stdout)
        .unwrap()
        .lines()
        .last()
        .unwrap()
        .to_string();
    assert_ne!(first, second);
    assert_eq!(
        ndes(&server, "/certsrv/mscep_admin/", &basic("fleet", &second)).status,
        200
    );

    // The old password fails; after three failures a wrong password gets 429 with Retry-After,
    // and the right one still works (issue 15: a lockout must not lock out the right
    // credential).
    for _ in 0..3 {
        assert_eq!(
            ndes(&server, "/certsrv/mscep_admin/", &basic("fleet", &first)).status,
            401
        );
    }
    let limited = ndes(&server, "/certsrv/mscep_admin/", &basic("fleet", &first));
    assert_eq!(limited.status, 429);
    assert!(limited.header("retry-after").unwrap().parse::<u64>().unwrap() >= 1);
    assert_eq!(
        ndes(&server, "/certsrv/mscep_admin/", &basic("fleet", &second)).status,
        200
    );

    let server = Server::start(&[]);
    let pw = add_mdm(&server, "gone");
    assert!(server.cli(&["mdm", "remove", "gone"]).status.success());
    assert_eq!(ndes(&server, "/certsrv/mscep_admin/", &basic("gone", &pw)).status, 401);
    assert!(!server.cli(&["mdm", "remove", "gone"]).status.success());
}

#[test]
fn real_clients_redeem_challenges_from_every_endpoint_once() {
    let server = Server::start(&["--allow-des"]);
    let password = add_mdm(&server, "mdm");
    let auth = basic("mdm", &password);
    let from_ndes = fleet_parse(&ndes(&server, "/certsrv/mscep_admin/", &auth).text());
    let from_jamf = http::request(
        "POST",
        &format!("{}/api/v1/webhooks/jamf/scep-challenge", server.base),
        &[("Authorization", &auth)],
        &jamf_body("SCEPChallenge"),
    )
    .unwrap()
    .text();
    let from_api = api_mint(&server, &auth, "{}");
    let from_cli = String::from_utf8(server.cli(&["challenge", "new"]).stdout)
        .unwrap()
        .trim()
        .to_string();

    for (i, challenge) in [&from_ndes, &from_jamf].into_iter().enumerate() {
        let dir = tempfile::tempdir().unwrap();
        let out = scepclient(dir.path(), &server.scep_url(), challenge, &format!("scepclient-{i}"));
        assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
        // The same challenge again: refused.
        let again = tempfile::tempdir().unwrap();
        let out = scepclient(
            again.path(),
            &server.scep_url(),
            challenge,
            &format!("scepclient-{i}-again"),
        );
        assert!(!out.status.success());
        assert!(
            String::from_utf8_lossy(&out.stderr).contains("badRequest")
                || String::from_utf8_lossy(&out.stdout).contains("badRequest")
        );
    }
    for (i, challenge) in [&from_api, &from_cli].into_iter().enumerate() {
        let dir = tempfile::tempdir().unwrap();
        let out = certmonger(
            &server.scep_url(),
            &server.ca_pem(),
            challenge,
            &format!("certmonger-{i}"),
            &dir.path().join("a"),
        );
        assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
        let out = certmonger(
            &server.scep_url(),
            &server.ca_pem(),
            challenge,
            &format!("certmonger-{i}-again"),
            &dir.path().join("b"),
        );
        assert_eq!(
            out.status.code(),
            Some(5),
            "reused challenge must be rejected: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    // An expired challenge, with a real client.
    let expiring = api_mint(&server, &auth, r#"{"ttl_seconds": 1}"#);
    std::thread::sleep(std::time::Duration::from_millis(2100));
    let dir = tempfile::tempdir().unwrap();
    let out = scepclient(dir.path(), &server.scep_url(), &expiring, "scepclient-expired");
    assert!(!out.status.success());
    let log = server.log_text();
    assert!(log.contains("challenge_rejection=\"used\""), "{log}");
    assert!(log.contains("challenge_rejection=\"expired\""), "{log}");

    // Each certificate records the kind of challenge that issued it, and who minted it where.
    let listed = crate::lifecycle::list(&server, &[]);
    let challenge_of = |cn: &str| {
        let found = listed
            .iter()
            .find(|c| c["subject"].as_str().unwrap().contains(&format!("CN={cn}")))
            .unwrap_or_else(|| panic!("{cn}: {listed:?}"));
        (
            found["challenge"]["kind"].as_str().unwrap().to_string(),
            found["challenge"]["endpoint"].as_str().unwrap().to_string(),
            found["challenge"]["minted_by"].as_str().unwrap().to_string(),
        )
    };
    let minted = |endpoint: &str, by: &str| ("minted".to_string(), endpoint.to_string(), by.to_string());
    assert_eq!(challenge_of("scepclient-0"), minted("ndes", "mdm"));
    assert_eq!(challenge_of("scepclient-1"), minted("jamf", "mdm"));
    assert_eq!(challenge_of("certmonger-0"), minted("api", "mdm"));
    assert_eq!(challenge_of("certmonger-1").2, "admin");
}

#[test]
fn expired_unknown_and_mismatched_challenges_get_the_same_answer() {
    let server = Server::start(&[]);
    let admin = admin_auth(&server);
    let ra = recipient(&server.scep_url());
    let requester = Requester::new(KeyBits::Rsa2048);
    let enroll = |cn: &str, challenge: &str| {
        requester.post(
            &server.scep_url(),
            &requester.message(&requester.csr(cn, Some(challenge)), &ra, &Opts::default()),
        )
    };
    let short = api_mint(&server, &admin, r#"{"ttl_seconds": 1}"#);
    std::thread::sleep(std::time::Duration::from_millis(2100));
    let bound = api_mint(&server, &admin, r#"{"device_id": "UDID-1234"}"#);
    let cn_bound = api_mint(&server, &admin, r#"{"subject_cn": "exact-cn"}"#);
    let mut texts = HashSet::new();
    for (cn, challenge) in [
        ("CN=x", short.as_str()),
        ("CN=x", "NoSuchChallenge0000000"),
        ("CN=other-device", bound.as_str()),
        ("CN=not-exact", cn_bound.as_str()),
    ] {
        let rep = enroll(cn, challenge);
        assert_eq!(rep.header.reply.pki_status.as_deref(), Some("2"));
        assert_eq!(rep.header.reply.fail_info.as_deref(), Some("2"));
        texts.insert(rep.header.reply.fail_info_text.clone());
    }
    assert_eq!(texts.len(), 1, "no oracle: {texts:?}");
    let log = server.log_text();
    for reason in ["expired", "unknown", "mismatch"] {
        assert!(
            log.contains(&format!("challenge_rejection=\"{reason}\"")),
            "{reason} not logged"
        );
    }
    // The bound challenges still work for a matching CSR; the device is recorded.
    let rep = enroll("CN=Mac managementAttestation UDID-1234", &bound);
    assert_eq!(rep.header.reply.pki_status.as_deref(), Some("0"));
    assert_eq!(
        enroll("CN=exact-cn", &cn_bound).header.reply.pki_status.as_deref(),
        Some("0")
    );
    let list: serde_json::Value =
        serde_json::from_slice(&server.cli(&["cert", "list", "--json", "--device", "UDID-1234"]).stdout).unwrap();
    assert_eq!(list.as_array().unwrap().len(), 1);
    assert_eq!(list[0]["device_id"], "UDID-1234");
}

#[test]
fn concurrent_requests_sharing_one_challenge_get_exactly_one_certificate() {
    // 31 of the 32 are refused: keep the brute-force guard out of the way.
    let server = Server::start(&["--challenge-failures-per-minute", "1000"]);
    let challenge = api_mint(&server, &admin_auth(&server), "{}");
    let ra = recipient(&server.scep_url());
    let requesters: Vec<Requester> = (0..4).map(|_| Requester::new(KeyBits::Rsa2048)).collect();
    // Build all 32 messages first so that they hit the server together.
    let messages: Vec<(usize, Vec<u8>)> = (0..32)
        .map(|i| {
            let r = &requesters[i % 4];
            (
                i % 4,
                r.message(
                    &r.csr(&format!("CN=racer-{i}"), Some(&challenge)),
                    &ra,
                    &Opts::default(),
                ),
            )
        })
        .collect();
    let successes = AtomicUsize::new(0);
    let barrier = std::sync::Barrier::new(32);
    std::thread::scope(|s| {
        for (who, message) in &messages {
            let (server, requesters, successes, barrier) = (&server, &requesters, &successes, &barrier);
            s.spawn(move || {
                barrier.wait();
                let rep = requesters[*who].post(&server.scep_url(), message);
                match rep.header.reply.pki_status.as_deref() {
                    Some("0") => {
                        successes.fetch_add(1, Ordering::SeqCst);
                    }
                    Some("2") => assert_eq!(rep.header.reply.fail_info.as_deref(), Some("2")),
                    other => panic!("unexpected status {other:?}"),
                }
            });
        }
    });
    assert_eq!(successes.load(Ordering::SeqCst), 1);
    let list: serde_json::Value = serde_json::from_slice(&server.cli(&["cert", "list", "--json"]).stdout).unwrap();
    assert_eq!(list.as_array().unwrap().len(), 1, "exactly one certificate stored");
}

/// Challenges an earlier build minted, stored under their keyed hash alone (before keys opened
/// with the mint time), keep their meaning after the upgrade: a usable one enrolls once, an
/// expired or used one is refused for that reason. The rows are written straight into the
/// PostgreSQL store, their keys computed by `openssl mac` from the data directory's
/// challenge.key: an implementation independent of scepd's.
#[test]
fn challenges_stored_under_the_earlier_key_keep_their_state() {
    let Some(db) = crate::support::scratch_db::ScratchDb::create(
        "challenges::challenges_stored_under_the_earlier_key_keep_their_state",
    ) else {
        return;
    };
    // --allow-des: micromdm's scepclient encrypts its request with single DES. The sweep of
    // expired challenges runs at start, then not for an hour: the row that expires below stays
    // to be refused as expired, not swept away and refused as unknown.
    let server = Server::start(&["--allow-des", "--store", &db.url, "--challenge-sweep-interval", "3600"]);
    let tmp = tempfile::tempdir().unwrap();
    let secret = std::fs::read_to_string(server.data().join("challenge.key")).unwrap();
    let earlier_key = |challenge: &str| -> Vec<u8> {
        let message = crate::support::openssl::write(
            tmp.path(),
            "message",
            format!("scepd challenge\0{challenge}").as_bytes(),
        );
        let mac = crate::support::openssl::run(
            tmp.path(),
            &[
                "mac",
                "-digest",
                "SHA256",
                "-macopt",
                &format!("hexkey:{}", secret.trim()),
                "-in",
                message.to_str().unwrap(),
                "HMAC",
            ],
        );
        let key = hex::decode(String::from_utf8(mac).unwrap().trim()).unwrap();
        assert_eq!(key.len(), 32);
        key
    };
    let now = scepd_ca::time::unix_now() as i64;
    let mut client = postgres::Client::connect(&db.url, postgres::NoTls).unwrap();
    // 22 letters drawn at random, as earlier builds minted them: usable, about to expire, used.
    let (usable, expired, used) = (
        "q7RvX2mKp9LwT4bZs8NcYe",
        "Hn3Jw8QzL0pV5xRt2KbMa7",
        "Z4cYt9WqE1uN6sDf3GhJk8",
    );
    let rows: [(&str, i64, Option<i64>); 3] = [
        (usable, now + 3600, None),
        (expired, now + 3, None),
        (used, now + 3600, Some(now - 30)),
    ];
    for (challenge, expires_at, redeemed_at) in rows {
        client
            .execute(
                "INSERT INTO challenges (hash, expires_at, created_at, minted_by, endpoint, redeemed_at) \
                 VALUES ($1, $2, $3, 'mdm', 'api', $4)",
                &[&earlier_key(challenge), &expires_at, &(now - 120), &redeemed_at],
            )
            .unwrap();
    }

    let enroll = |challenge: &str, cn: &str| {
        let dir = tempfile::tempdir().unwrap();
        scepclient(dir.path(), &server.scep_url(), challenge, cn)
    };
    let out = enroll(usable, "upgraded");
    assert!(
        out.status.success(),
        "{}\n{}",
        String::from_utf8_lossy(&out.stderr),
        server.log_text()
    );
    let redeemed: Option<i64> = client
        .query_one(
            "SELECT redeemed_at FROM challenges WHERE hash = $1",
            &[&earlier_key(usable)],
        )
        .unwrap()
        .get(0);
    assert!(redeemed.is_some(), "the row under the earlier key was redeemed");
    // Past its expiry by a second more than the server's steady clock may lag the wall clock.
    while scepd_ca::time::unix_now() as i64 <= now + 4 {
        std::thread::sleep(std::time::Duration::from_millis(200));
    }
    for (challenge, why) in [(usable, "used"), (expired, "expired"), (used, "used")] {
        let log_before = server.log_text().len();
        assert!(!enroll(challenge, "refused").status.success(), "{challenge} enrolled");
        let log = server.log_text();
        assert!(
            log[log_before..].contains(&format!("challenge_rejection=\"{why}\"")),
            "{challenge}: {}",
            &log[log_before..]
        );
    }
}

#[test]
fn a_redeemed_challenge_stays_redeemed_after_kill_9() {
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("d");
    let mut server = Server::start_in(&data, &[]);
    let challenge = api_mint(&server, &admin_auth(&server), "{}");
    // Minted, then made durable by the background flush within a second.
    std::thread::sleep(std::time::Duration::from_millis(1500));
    let ra = recipient(&server.scep_url());
    let requester = Requester::new(KeyBits::Rsa2048);
    let rep = requester.post(
        &server.scep_url(),
        &requester.message(&requester.csr("CN=crash", Some(&challenge)), &ra, &Opts::default()),
    );
    assert_eq!(rep.header.reply.pki_status.as_deref(), Some("0"));
    server.kill();
    let server = Server::start_in(&data, &[]);
    let rep = requester.post(
        &server.scep_url(),
        &requester.message(
            &requester.csr("CN=crash-again", Some(&challenge)),
            &ra,
            &Opts::default(),
        ),
    );
    assert_eq!(
        rep.header.reply.pki_status.as_deref(),
        Some("2"),
        "redeemed before the crash, redeemed after"
    );
    let list: serde_json::Value = serde_json::from_slice(&server.cli(&["cert", "list", "--json"]).stdout).unwrap();
    assert_eq!(list.as_array().unwrap().len(), 1, "the certificate survived the crash");
}

#[test]
fn expired_challenges_are_swept_and_static_still_works() {
    let server = Server::start(&["--challenge-sweep-interval", "1", "--static-challenge", "kandji-static"]);
    let admin = admin_auth(&server);
    for _ in 0..50 {
        // Long enough to still be there when counted below, short enough to be swept soon.
        api_mint(&server, &admin, r#"{"ttl_seconds": 3}"#);
    }
    let kept = api_mint(&server, &admin, r#"{"ttl_seconds": 3600}"#);
    let stats = |server: &Server| -> u64 {
        let r = http::request(
            "GET",
            &format!("{}/api/v1/stats", server.base),
            &[("Authorization", &admin)],
            b"",
        )
        .unwrap();
        serde_json::from_slice::<serde_json::Value>(&r.body).unwrap()["challenges_stored"]
            .as_u64()
            .unwrap()
    };
    assert!(stats(&server) >= 51);
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    while stats(&server) != 1 {
        assert!(
            std::time::Instant::now() < deadline,
            "expired challenges were not swept: {}",
            stats(&server)
        );
        std::thread::sleep(std::time::Duration::from_millis(200));
    }
    // Both the static and the kept dynamic challenge are accepted.
    let ra = recipient(&server.scep_url());
    let requester = Requester::new(KeyBits::Rsa2048);
    for (cn, c) in [("CN=kandji", "kandji-static"), ("CN=dynamic", kept.as_str())] {
        let rep = requester.post(
            &server.scep_url(),
            &requester.message(&requester.csr(cn, Some(c)), &ra, &Opts::default()),
        );
        assert_eq!(rep.header.reply.pki_status.as_deref(), Some("0"), "{cn}");
    }
}
