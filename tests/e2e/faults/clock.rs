//! Clock jumps while serving: the server's clock (libfaketime, re-read on every call) set back
//! an hour, then forward a day, then right again. Serials stay unique, the CRL number only
//! grows and thisUpdate never goes back, notBefore is the (faked) moment of issue minus the
//! configured margin, and challenges neither all expire nor live on after their expiry.
//! Dates are read with `openssl` and converted with GNU `date`.

use std::collections::HashSet;
use std::path::Path;
use std::process::Command;

use scepd_ca::KeyBits;

use crate::support::requester::{recipient, Opts};
use crate::support::{http, openssl, Requester, Server};

const LIBFAKETIME: &str = "/usr/lib/x86_64-linux-gnu/faketime/libfaketimeMT.so.1";
const CHALLENGE: &str = "clock-jump-static";

fn unix(date: &str) -> i64 {
    let out = Command::new("date").args(["-u", "-d", date, "+%s"]).output().unwrap();
    assert!(out.status.success(), "date cannot read {date:?}");
    String::from_utf8(out.stdout).unwrap().trim().parse().unwrap()
}

fn real_now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64
}

/// `openssl ... -noout FIELD -dateopt iso_8601` → the date after `=`, as Unix time.
fn openssl_date(dir: &Path, args: &[&str]) -> i64 {
    let text = String::from_utf8(openssl::run(dir, args)).unwrap();
    unix(text.trim().split_once('=').unwrap().1)
}

/// (CRL number, thisUpdate) of the CRL the server publishes now.
fn published_crl(server: &Server, dir: &Path) -> (u64, i64) {
    let path = openssl::write(
        dir,
        "now.crl",
        &http::get(&format!("{}/crl", server.base)).unwrap().body,
    );
    let path = path.to_str().unwrap();
    let number = String::from_utf8(openssl::run(
        dir,
        &["crl", "-inform", "DER", "-in", path, "-noout", "-crlnumber"],
    ))
    .unwrap();
    let number = u64::from_str_radix(number.trim().trim_start_matches("crlNumber=0x"), 16).unwrap();
    let this_update = openssl_date(
        dir,
        &[
            "crl",
            "-inform",
            "DER",
            "-in",
            path,
            "-noout",
            "-lastupdate",
            "-dateopt",
            "iso_8601",
        ],
    );
    (number, this_update)
}

struct Enrolled {
    serial: String,
    not_before: i64,
}

fn enroll(server: &Server, dir: &Path, cn: &str, challenge: &str) -> Option<Enrolled> {
    let requester = Requester::new(KeyBits::Rsa2048);
    let ra = recipient(&server.scep_url());
    let rep = requester.post(
        &server.scep_url(),
        &requester.message(&requester.csr(cn, Some(challenge)), &ra, &Opts::default()),
    );
    let der = rep.certificates.first()?;
    let pem = openssl::write(dir, "leaf.der", der);
    let pem = pem.to_str().unwrap();
    let serial = String::from_utf8(openssl::run(
        dir,
        &["x509", "-inform", "DER", "-in", pem, "-noout", "-serial"],
    ))
    .unwrap()
    .trim()
    .trim_start_matches("serial=")
    .to_string();
    let not_before = openssl_date(
        dir,
        &[
            "x509",
            "-inform",
            "DER",
            "-in",
            pem,
            "-noout",
            "-startdate",
            "-dateopt",
            "iso_8601",
        ],
    );
    Some(Enrolled { serial, not_before })
}

#[test]
fn clock_set_back_an_hour_and_forward_a_day_while_serving() {
    if !Path::new(LIBFAKETIME).exists() {
        assert!(
            std::env::var("CI").as_deref() != Ok("true"),
            "{LIBFAKETIME} missing: apt-get install faketime"
        );
        eprintln!("skipped: {LIBFAKETIME} missing (apt-get install faketime)");
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    let offset_file = dir.join("faketime.rc");
    let set_clock = |offset: &str| std::fs::write(&offset_file, format!("{offset}\n")).unwrap();
    set_clock("+0");
    let server = Server::start_in_env(
        &dir.join("d"),
        &["--static-challenge", CHALLENGE, "--not-before-backdate", "2m"],
        &[
            ("LD_PRELOAD", LIBFAKETIME),
            ("FAKETIME_TIMESTAMP_FILE", offset_file.to_str().unwrap()),
            ("FAKETIME_NO_CACHE", "1"),
            // tokio's timers run on the monotonic clock, which a real clock step leaves alone.
            ("FAKETIME_DONT_FAKE_MONOTONIC", "1"),
        ],
    );
    let minted_before_jumps = String::from_utf8(server.cli(&["challenge", "new", "--ttl", "600"]).stdout).unwrap();

    let mut serials = HashSet::new();
    let mut last_crl = (0, i64::MIN);
    // (offset, its seconds): the clock as it is, an hour back, a day ahead, right again.
    for (step, (offset, seconds)) in [("+0", 0), ("-1h", -3600), ("+1d", 86_400), ("+0", 0)]
        .into_iter()
        .enumerate()
    {
        set_clock(offset);
        let issued = enroll(&server, dir, &format!("CN=clock-{step}"), CHALLENGE).expect("a certificate");
        let expected = real_now() + seconds - 120;
        assert!(
            (issued.not_before - expected).abs() <= 30,
            "clock {offset}: notBefore {} is not (faked now − 2m) ≈ {expected}",
            issued.not_before
        );
        assert!(
            serials.insert(issued.serial.clone()),
            "serial {} issued twice",
            issued.serial
        );
        let revoked = server.cli(&["cert", "revoke", &issued.serial]);
        assert!(revoked.status.success(), "{}", String::from_utf8_lossy(&revoked.stderr));
        let crl = published_crl(&server, dir);
        assert!(
            crl.0 > last_crl.0,
            "clock {offset}: CRL number {} after {}",
            crl.0,
            last_crl.0
        );
        assert!(
            crl.1 >= last_crl.1,
            "clock {offset}: thisUpdate {} went back from {}",
            crl.1,
            last_crl.1
        );
        last_crl = crl;

        if offset == "-1h" {
            // Minted before the clock went back, it still redeems: the jump did not expire it.
            assert!(
                enroll(&server, dir, "CN=minted-before", minted_before_jumps.trim()).is_some(),
                "a challenge minted before the clock went back was refused"
            );
        }
    }

    // A challenge minted while the clock was an hour back (expiry: that clock + 10 min) is
    // refused once the clock is right: it does not outlive its expiry.
    set_clock("-1h");
    let minted_behind = String::from_utf8(server.cli(&["challenge", "new", "--ttl", "600"]).stdout).unwrap();
    set_clock("+0");
    assert!(
        enroll(&server, dir, "CN=minted-behind", minted_behind.trim()).is_none(),
        "a challenge past its expiry was accepted"
    );
}
