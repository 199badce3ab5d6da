//! The admin API's writes are single store transactions: concurrent requests for one name
//! settle in the store, on both backends, whichever node each goes to.

use crate::challenges::basic;
use crate::support::scratch_db::ScratchDb;
use crate::support::{http, Server};

/// Runs `scepd mdm add NAME` from eight processes at once, spread over `servers`; exactly one
/// must create the client and every other must fail with the API's 409.
fn concurrent_adds_create_one(servers: &[&Server], name: &str) {
    let outputs: Vec<_> = std::thread::scope(|scope| {
        let runs: Vec<_> = (0..8)
            .map(|i| {
                let server = servers[i % servers.len()];
                scope.spawn(move || server.cli(&["mdm", "add", name]))
            })
            .collect();
        runs.into_iter().map(|r| r.join().unwrap()).collect()
    });
    let created: Vec<_> = outputs.iter().filter(|o| o.status.success()).collect();
    assert_eq!(created.len(), 1, "{outputs:?}");
    for refused in outputs.iter().filter(|o| !o.status.success()) {
        let stderr = String::from_utf8_lossy(&refused.stderr);
        assert!(stderr.contains("409"), "{stderr}");
    }
    // The one password printed is the one that works.
    let password = String::from_utf8_lossy(&created[0].stdout)
        .lines()
        .last()
        .unwrap()
        .trim()
        .to_string();
    let url = format!("{}/certsrv/mscep_admin/", servers[0].base);
    let page = http::request("GET", &url, &[("Authorization", &basic(name, &password))], b"").unwrap();
    assert_eq!(page.status, 200, "{}", page.text());
}

#[test]
fn concurrent_mdm_adds_of_one_name_create_it_once_embedded() {
    let server = Server::start(&[]);
    concurrent_adds_create_one(&[&server], "jamf-race");
}

#[test]
fn concurrent_mdm_adds_of_one_name_create_it_once_postgres() {
    let Some(db) = ScratchDb::create("admin::concurrent_mdm_adds_…_postgres") else {
        return;
    };
    let tmp = tempfile::tempdir().unwrap();
    let first = Server::start_in(&tmp.path().join("node0"), &["--store", &db.url]);
    let second_dir = tmp.path().join("node1");
    crate::multinode::copy_secrets(first.data(), &second_dir);
    let second = Server::start_in(&second_dir, &["--store", &db.url]);
    concurrent_adds_create_one(&[&first, &second], "fleet-race");
}
