//! Damaged files at start: `scepd serve` exits non-zero with one line that names the file and
//! says what to do, never panics, and never writes to the damaged store file.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use crate::support::server::BIN;
use crate::support::Server;

/// A stopped data directory whose store holds some certificates (and revocations), closed cleanly.
fn filled_data_dir(tmp: &Path) -> PathBuf {
    let data = tmp.join("d");
    let mut server = Server::start_in(&data, &[]);
    assert!(server.terminate().success());
    let fill = Command::new(BIN)
        .args(["bench-fill", "--data", data.to_str().unwrap()])
        .args(["--certificates", "400", "--revoked", "40"])
        .output()
        .unwrap();
    assert!(fill.status.success(), "{}", String::from_utf8_lossy(&fill.stderr));
    data
}

/// Copies the data directory `from` into `to` (files only, modes kept).
fn copy_dir(from: &Path, to: &Path) {
    let status = Command::new("cp")
        .args(["-a", from.to_str().unwrap(), to.to_str().unwrap()])
        .status()
        .unwrap();
    assert!(status.success());
}

/// Runs `scepd serve` on `data` (as `uid` when given) and expects it to give up: returns its stderr.
fn refused_start(data: &Path, uid: Option<u32>) -> String {
    let cmd = match uid {
        Some(uid) => {
            let mut c = Command::new("setpriv");
            c.args([
                &format!("--reuid={uid}"),
                &format!("--regid={uid}"),
                "--clear-groups",
                BIN,
            ]);
            c
        }
        None => Command::new(BIN),
    };
    refused_serve(cmd, data, &[])
}

/// Runs `cmd serve --data DIR … args` and expects it to give up: returns its stderr.
pub(crate) fn refused_serve(mut cmd: Command, data: &Path, args: &[&str]) -> String {
    let log = data.with_extension("stderr");
    let mut child = cmd
        .args(["serve", "--data", data.to_str().unwrap(), "--listen", "127.0.0.1:0"])
        .args(args)
        // Set in this environment: a panic would print a backtrace, which the test looks for.
        .env("RUST_BACKTRACE", "1")
        .env("RUST_LOG", "info")
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(&log).unwrap())
        .spawn()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(60);
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break status;
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            panic!(
                "scepd served {} instead of refusing it:\n{}",
                data.display(),
                std::fs::read_to_string(&log).unwrap_or_default()
            );
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    let stderr = std::fs::read_to_string(&log).unwrap();
    assert!(
        !status.success(),
        "exit status {status} for {}:\n{stderr}",
        data.display()
    );
    assert!(
        !stderr.contains("panicked") && !stderr.to_lowercase().contains("backtrace"),
        "a panic:\n{stderr}"
    );
    stderr
}

/// The one error line, which must name `file` and say what to do (`expect`).
fn assert_one_line(stderr: &str, file: &Path, expect: &str) {
    let errors: Vec<&str> = stderr.lines().filter(|l| l.starts_with("scepd: ")).collect();
    assert_eq!(errors.len(), 1, "one error line expected:\n{stderr}");
    assert!(
        errors[0].contains(file.to_str().unwrap()) && errors[0].contains(expect),
        "the error line should name {} and say `{expect}`:\n{stderr}",
        file.display()
    );
}

/// xorshift64: reproducible positions from a seed printed on failure.
fn positions(seed: u64, len: usize, count: usize) -> Vec<usize> {
    let mut x = seed | 1;
    (0..count)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            (x % len as u64) as usize
        })
        .collect()
}

#[test]
fn a_damaged_store_file_is_refused_and_left_as_it_is() {
    let tmp = tempfile::tempdir().unwrap();
    let intact = filled_data_dir(tmp.path());
    let original = std::fs::read(intact.join("scepd.redb")).unwrap();
    let seed = std::process::id() as u64 ^ 0x9e37_79b9_7f4a_7c15;
    let damages: Vec<(&str, Vec<u8>)> = vec![
        ("truncated", original[..original.len() / 2].to_vec()),
        ("truncated to 5000 bytes", original[..5000].to_vec()),
        ("header overwritten", [vec![0u8; 64], original[64..].to_vec()].concat()),
        ("64 bytes flipped at random places", {
            let mut b = original.clone();
            for at in positions(seed, b.len(), 64) {
                b[at] ^= 0xff;
            }
            b
        }),
    ];
    for (i, (what, bytes)) in damages.into_iter().enumerate() {
        let data = tmp.path().join(format!("damaged-{i}"));
        copy_dir(&intact, &data);
        let store = data.join("scepd.redb");
        std::fs::write(&store, &bytes).unwrap();
        let stderr = refused_start(&data, None);
        assert_one_line(&stderr, &store, "restore the data directory from a `scepd backup`");
        assert!(
            std::fs::read(&store).unwrap() == bytes,
            "{what} (seed {seed:#x}): the failed start changed the damaged file"
        );
    }
    // The intact copy still starts: the check does not refuse a good file.
    let server = Server::start_in(&intact, &[]);
    assert!(!server.log_text().contains("recover"), "{}", server.log_text());
}

#[test]
fn a_store_left_open_by_a_crash_is_recovered_and_the_recovery_logged() {
    let tmp = tempfile::tempdir().unwrap();
    let data = filled_data_dir(tmp.path());
    let mut server = Server::start_in(&data, &[]);
    server.kill();
    let server = Server::start_in(&data, &[]);
    let log = server.log_text();
    assert!(
        log.contains("not closed cleanly") && log.contains("store recovered after an unclean shutdown"),
        "{log}"
    );
}

#[test]
fn damaged_keys_and_certificates_are_named_with_what_to_do() {
    let tmp = tempfile::tempdir().unwrap();
    let intact = filled_data_dir(tmp.path());
    let other = tmp.path().join("other-ca");
    let init = Command::new(BIN)
        .args(["init", "--data", other.to_str().unwrap()])
        .output()
        .unwrap();
    assert!(init.status.success());
    type Damage = fn(&Path, &Path);
    let cases: [(&str, &str, &str, Damage); 6] = [
        ("missing key", "ca.key", "scepd backup", |d, _| {
            std::fs::remove_file(d.join("ca.key")).unwrap()
        }),
        ("garbage key", "ca.key", "scepd backup", |d, _| {
            std::fs::write(d.join("ca.key"), "not a key\n").unwrap()
        }),
        ("key of the wrong mode", "ca.key", "chmod 600", |d, _| {
            use std::os::unix::fs::PermissionsExt;
            std::fs::set_permissions(d.join("ca.key"), std::fs::Permissions::from_mode(0o644)).unwrap()
        }),
        ("CA certificate of another key", "ca.pem", "scepd backup", |d, other| {
            std::fs::copy(other.join("ca.pem"), d.join("ca.pem")).unwrap();
        }),
        ("RA key of another certificate", "ra.pem", "scepd backup", |d, other| {
            std::fs::copy(other.join("ra.key"), d.join("ra.key")).unwrap();
        }),
        ("truncated certificate", "ca.pem", "scepd backup", |d, _| {
            let pem = std::fs::read(d.join("ca.pem")).unwrap();
            std::fs::write(d.join("ca.pem"), &pem[..pem.len() / 2]).unwrap()
        }),
    ];
    for (i, (what, file, advice, damage)) in cases.into_iter().enumerate() {
        let data = tmp.path().join(format!("case-{i}"));
        copy_dir(&intact, &data);
        damage(&data, &other);
        let store = std::fs::read(data.join("scepd.redb")).unwrap();
        let stderr = refused_start(&data, None);
        assert_one_line(&stderr, &data.join(file), advice);
        assert!(
            std::fs::read(data.join("scepd.redb")).unwrap() == store,
            "{what}: store changed"
        );
    }
}

#[test]
fn a_data_directory_of_another_user_or_an_unreadable_key_is_refused() {
    use std::os::unix::fs::PermissionsExt;
    let tmp = tempfile::tempdir().unwrap();
    // The unprivileged user must be able to reach the data directories.
    std::fs::set_permissions(tmp.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
    let intact = filled_data_dir(tmp.path());
    let chown = |path: &Path, owner: &str| {
        let status = Command::new("chown")
            .args(["-R", owner, path.to_str().unwrap()])
            .status()
            .unwrap();
        assert!(status.success());
    };

    // Served by root, owned by nobody.
    let data = tmp.path().join("nobodys");
    copy_dir(&intact, &data);
    chown(&data, "nobody");
    assert_one_line(&refused_start(&data, None), &data, "chown");

    // Served by nobody, restored by root: the key is root's.
    let data = tmp.path().join("roots-key");
    copy_dir(&intact, &data);
    chown(&data, "nobody");
    chown(&data.join("ca.key"), "root");
    assert_one_line(&refused_start(&data, Some(65534)), &data.join("ca.key"), "chown");

    // Served by nobody, its own key unreadable.
    let data = tmp.path().join("unreadable-key");
    copy_dir(&intact, &data);
    chown(&data, "nobody");
    std::fs::set_permissions(data.join("ca.key"), std::fs::Permissions::from_mode(0o000)).unwrap();
    assert_one_line(&refused_start(&data, Some(65534)), &data.join("ca.key"), "scepd backup");
}
