//! A backup carries checksums (`MANIFEST.sha256`, checked here with coreutils' `sha256sum`),
//! and `restore` refuses a backup damaged since it was made, restoring nothing.

use std::path::Path;
use std::process::{Command, Output};

use crate::support::server::BIN;
use crate::support::Server;

fn restore(data: &Path, backup: &Path) -> Output {
    Command::new(BIN)
        .args(["restore", "--data", data.to_str().unwrap(), backup.to_str().unwrap()])
        .output()
        .unwrap()
}

#[test]
fn a_backup_damaged_in_transit_is_refused_by_restore() {
    let tmp = tempfile::tempdir().unwrap();
    let server = Server::start(&[]);
    for _ in 0..20 {
        assert!(server.cli(&["challenge", "new"]).status.success());
    }
    let backup = tmp.path().join("backup");
    let made = server.cli(&["backup", backup.to_str().unwrap()]);
    assert!(made.status.success(), "{}", String::from_utf8_lossy(&made.stderr));

    // Another implementation agrees with the checksums, and they cover the store and the keys.
    let check = Command::new("sha256sum")
        .args(["--check", "--strict", "MANIFEST.sha256"])
        .current_dir(&backup)
        .output()
        .unwrap();
    assert!(check.status.success(), "{}", String::from_utf8_lossy(&check.stdout));
    let listed = String::from_utf8_lossy(&check.stdout).to_string();
    for file in ["scepd.redb: OK", "ca.key: OK", "ca.pem: OK", "challenge.key: OK"] {
        assert!(listed.contains(file), "{file} not checked:\n{listed}");
    }

    for damaged_file in ["scepd.redb", "ca.key"] {
        let copy = tmp.path().join(format!("copy-{damaged_file}"));
        assert!(Command::new("cp")
            .args(["-a", backup.to_str().unwrap(), copy.to_str().unwrap()])
            .status()
            .unwrap()
            .success());
        let path = copy.join(damaged_file);
        let mut bytes = std::fs::read(&path).unwrap();
        let middle = bytes.len() / 2;
        bytes[middle] ^= 0x01;
        std::fs::write(&path, bytes).unwrap();

        let target = tmp.path().join(format!("restored-from-damaged-{damaged_file}"));
        let out = restore(&target, &copy);
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(!out.status.success(), "a damaged {damaged_file} was restored");
        assert!(
            stderr.contains(&format!("{} does not match its checksum", path.display()))
                && stderr.contains("nothing was restored"),
            "{stderr}"
        );
        assert!(!target.join("ca.pem").exists() && !target.join("scepd.redb").exists());
    }

    let target = tmp.path().join("restored");
    let out = restore(&target, &backup);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    assert!(
        String::from_utf8_lossy(&out.stderr).is_empty(),
        "no warning for a checked backup"
    );
    let restored = Server::start_in(&target, &[]);
    assert_eq!(
        std::fs::read(restored.ca_pem()).unwrap(),
        std::fs::read(server.ca_pem()).unwrap()
    );
}
