//! The PostgreSQL store's database turned read-only (`default_transaction_read_only`, with
//! the sessions that were open terminated, as an administrator or a failover would), then
//! writable again by the same setting alone: enrollments get 503 with Retry-After (or a signed
//! FAILURE), `/readyz` is 503 naming the store, and service comes back without a restart.

use std::time::{Duration, Instant};

use scepd_ca::KeyBits;

use crate::support::requester::{recipient, Opts};
use crate::support::scratch_db::ScratchDb;
use crate::support::{http, Requester, Server};

const CHALLENGE: &str = "read-only-db";

/// One enrollment: Ok(true) a certificate, Ok(false) a signed FAILURE, Err(status) an HTTP error
/// (then with Retry-After).
fn enroll(server: &Server, requester: &Requester) -> Result<bool, u16> {
    let ra = recipient(&server.scep_url());
    let message = requester.message(&requester.csr("CN=read-only", Some(CHALLENGE)), &ra, &Opts::default());
    let url = format!("{}?operation=PKIOperation", server.scep_url());
    let resp = http::post(&url, "application/x-pki-message", &message).unwrap();
    match resp.status {
        200 => Ok(!requester.read(&resp.body).certificates.is_empty()),
        status => {
            assert!(
                status == 503 && resp.header("retry-after").is_some(),
                "HTTP {status} without Retry-After: {}",
                resp.text()
            );
            Err(status)
        }
    }
}

fn readyz(server: &Server) -> (u16, String) {
    let r = http::get(&format!("{}/readyz", server.base)).unwrap();
    (r.status, r.text())
}

#[test]
fn a_database_turned_read_only_and_back_recovers_without_a_restart() {
    let Some(db) = ScratchDb::create("faults::postgres::a_database_turned_read_only…") else {
        return;
    };
    let admin_url = std::env::var(crate::support::scratch_db::ENV).unwrap();
    let name = db
        .url
        .rsplit('/')
        .next()
        .unwrap()
        .split('?')
        .next()
        .unwrap()
        .to_string();
    let mut admin = postgres::Client::connect(&admin_url, postgres::NoTls).unwrap();
    let server = Server::start(&["--store", &db.url, "--static-challenge", CHALLENGE]);
    let requester = Requester::new(KeyBits::Rsa2048);
    assert_eq!(enroll(&server, &requester), Ok(true));

    admin
        .batch_execute(&format!(
            "ALTER DATABASE {name} SET default_transaction_read_only = on;
             SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = '{name}'"
        ))
        .unwrap();
    // Every enrollment is refused (503 or FAILURE, never a certificate), and readiness says why.
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let outcome = enroll(&server, &requester);
        assert_ne!(outcome, Ok(true), "a certificate issued by a read-only database");
        let (status, body) = readyz(&server);
        if outcome == Err(503) && status == 503 && body.contains("\"store\":\"failed") {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "no 503 naming the store: {outcome:?}, /readyz {status} {body}"
        );
        std::thread::sleep(Duration::from_millis(200));
    }
    for _ in 0..3 {
        assert_ne!(enroll(&server, &requester), Ok(true));
    }

    // Writable again by the setting alone: the sessions scepd holds were opened read-only.
    admin
        .batch_execute(&format!(
            "ALTER DATABASE {name} SET default_transaction_read_only = off"
        ))
        .unwrap();
    let writable = Instant::now();
    let deadline = writable + Duration::from_secs(30);
    while enroll(&server, &requester) != Ok(true) || readyz(&server).0 != 200 {
        assert!(Instant::now() < deadline, "no recovery: /readyz {:?}", readyz(&server));
        std::thread::sleep(Duration::from_millis(200));
    }
    eprintln!(
        "recovered {:?} after the database took writes again",
        writable.elapsed()
    );
}

/// The database's disk full (its data directory on a small tmpfs, filled up under scepd's
/// feet): PostgreSQL stays up but refuses to extend its files; enrollments get 503 (or a signed
/// FAILURE), never a certificate that is not stored, and service comes back without a restart
/// once the space is freed.
#[test]
fn a_database_whose_disk_fills_up_recovers_without_a_restart() {
    let mut mounts = crate::disk::Mounts::new();
    let disk = mounts.tmpfs("pg", "160m");
    // The postgres user runs the server: it must reach its data directory.
    std::fs::set_permissions(&disk, std::os::unix::fs::PermissionsExt::from_mode(0o755)).unwrap();
    let Some(cluster) = crate::multinode::PrivateCluster::create_in(Some(&disk)) else {
        return;
    };
    let server = Server::start(&["--store", &cluster.url(), "--static-challenge", CHALLENGE]);
    let requester = Requester::new(KeyBits::Rsa2048);
    assert_eq!(enroll(&server, &requester), Ok(true));
    let mut issued = 1;
    crate::disk::fill(&disk);
    // Refused once the database cannot write (a few may still fit in pages it has).
    let deadline = Instant::now() + Duration::from_secs(60);
    let mut refused = 0;
    while refused < 3 {
        match enroll(&server, &requester) {
            Ok(true) => issued += 1,
            Ok(false) | Err(_) => refused += 1,
        }
        assert!(Instant::now() < deadline, "the full disk refused nothing");
    }
    crate::disk::unfill(&disk);
    let freed = Instant::now();
    loop {
        if enroll(&server, &requester) == Ok(true) {
            issued += 1;
            if readyz(&server).0 == 200 {
                break;
            }
        }
        assert!(
            freed.elapsed() < Duration::from_secs(30),
            "no recovery: /readyz {:?}",
            readyz(&server)
        );
        std::thread::sleep(Duration::from_millis(200));
    }
    eprintln!(
        "recovered {:?} after the database's disk had room again",
        freed.elapsed()
    );
    // Every certificate the server sent is in the store, once.
    let listed = server.cli(&["cert", "list", "--json"]);
    assert!(listed.status.success(), "{}", String::from_utf8_lossy(&listed.stderr));
    let listed: serde_json::Value = serde_json::from_slice(&listed.stdout).unwrap();
    assert_eq!(
        listed.as_array().unwrap().len(),
        issued,
        "certificates sent and stored differ"
    );
}
