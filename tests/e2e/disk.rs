//! The embedded store on a disk that fills up or fails with I/O errors under load: every request
//! gets a 503 (or a signed FAILURE), no client receives a certificate that is not stored, /readyz
//! names the store, and service resumes by itself, without a restart, once the disk is back.
//! The data directory is a small filesystem of its own (the tests run as root, as CI does).

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use scepd_ca::KeyBits;

use crate::challenges::{admin_auth, api_challenge};
use crate::multinode::{enroll, listed_serials, metric, Outcome};
use crate::support::requester::recipient;
use crate::support::{http, Requester, Server};

const CHALLENGE: &str = "disk-challenge";

/// Filesystems mounted for one test (and a loop device attached), undone when dropped.
struct Mounts {
    dir: tempfile::TempDir,
    mounted: Vec<PathBuf>,
    loop_device: Option<String>,
}

impl Mounts {
    fn new() -> Mounts {
        Mounts {
            dir: tempfile::tempdir().unwrap(),
            mounted: Vec::new(),
            loop_device: None,
        }
    }

    /// A tmpfs of `size` at `name` in the test's directory.
    fn tmpfs(&mut self, name: &str, size: &str) -> PathBuf {
        let at = self.dir.path().join(name);
        std::fs::create_dir(&at).unwrap();
        run(
            "mount",
            &[
                "-t",
                "tmpfs",
                "-o",
                &format!("size={size},mode=0700"),
                "tmpfs",
                path(&at),
            ],
        );
        self.mounted.push(at.clone());
        at
    }

    /// An ext2 filesystem at `name` on a loop device whose (sparse) backing file is `image`:
    /// when the filesystem holding `image` is full, writes to this one fail with EIO. ext2 has no
    /// journal to abort, and errors=continue lets it work again once the backing store has room.
    fn ext2_on(&mut self, image: &Path, name: &str) -> PathBuf {
        run("truncate", &["-s", "256M", path(image)]);
        let out = Command::new("losetup")
            .args(["-f", "--show", path(image)])
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "losetup: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        let device = String::from_utf8(out.stdout).unwrap().trim().to_string();
        self.loop_device = Some(device.clone());
        run("mkfs.ext2", &["-q", &device]);
        let at = self.dir.path().join(name);
        std::fs::create_dir(&at).unwrap();
        run("mount", &["-o", "errors=continue", &device, path(&at)]);
        std::fs::set_permissions(&at, std::os::unix::fs::PermissionsExt::from_mode(0o700)).unwrap();
        self.mounted.push(at.clone());
        at
    }
}

impl Drop for Mounts {
    fn drop(&mut self) {
        for at in self.mounted.iter().rev() {
            let _ = Command::new("umount").args(["-l", path(at)]).status();
        }
        if let Some(device) = &self.loop_device {
            let _ = Command::new("losetup").args(["-d", device]).status();
        }
    }
}

/// Fills the filesystem at `dir` (dd stops, and fails, when it is full).
fn fill(dir: &Path) {
    let _ = Command::new("dd")
        .args(["if=/dev/zero", &format!("of={}", path(&dir.join("filler"))), "bs=64k"])
        .output();
}

fn unfill(dir: &Path) {
    std::fs::remove_file(dir.join("filler")).unwrap();
}

fn path(p: &Path) -> &str {
    p.to_str().unwrap()
}

fn run(program: &str, args: &[&str]) {
    let out = Command::new(program)
        .args(args)
        .output()
        .unwrap_or_else(|e| panic!("{program}: {e}"));
    assert!(
        out.status.success(),
        "{program} {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

fn readyz(server: &Server) -> (u16, String) {
    let r = http::get(&format!("{}/readyz", server.base)).unwrap();
    (r.status, r.text())
}

/// Four workers enroll until `stop`; returns every outcome.
fn load(server: &Server, stop: &AtomicBool) -> Vec<Outcome> {
    let ra = recipient(&server.scep_url());
    std::thread::scope(|scope| {
        let workers: Vec<_> = (0..4)
            .map(|w| {
                let ra = &ra;
                scope.spawn(move || {
                    let requester = Requester::new(KeyBits::Rsa2048);
                    let mut outcomes = Vec::new();
                    let mut i = 0;
                    while !stop.load(Ordering::Acquire) {
                        i += 1;
                        outcomes.push(enroll(
                            &requester,
                            ra,
                            &server.scep_url(),
                            &format!("CN=disk-{w}-{i}"),
                            CHALLENGE,
                        ));
                    }
                    outcomes
                })
            })
            .collect();
        workers.into_iter().flat_map(|w| w.join().unwrap()).collect()
    })
}

/// Serves from `data`, breaks the disk under load with `break_it`, checks the outage, mends it
/// with `mend`, and checks that service comes back by itself.
fn outage_and_recovery(data: &Path, break_it: impl FnOnce(), mend: impl FnOnce()) {
    let server = Server::start_in(data, &["--static-challenge", CHALLENGE]);
    let stop = AtomicBool::new(false);
    let (outcomes, outage) = std::thread::scope(|scope| {
        let load = scope.spawn(|| load(&server, &stop));
        std::thread::sleep(Duration::from_millis(500));
        break_it();
        // Enrollment fails while the disk is broken; /readyz says the store is why.
        let deadline = Instant::now() + Duration::from_secs(20);
        let (status, body) = loop {
            let (status, body) = readyz(&server);
            if status == 503 || Instant::now() > deadline {
                break (status, body);
            }
            std::thread::sleep(Duration::from_millis(100));
        };
        assert_eq!(status, 503, "{body}");
        assert!(body.contains("store"), "{body}");
        // Challenges minted now are either refused (503) or kept until the store takes them.
        let auth = admin_auth(&server);
        let minted: Vec<String> = (0..5)
            .filter_map(|_| {
                let resp = api_challenge(&server, &auth, "{}");
                assert!(matches!(resp.status, 201 | 503), "{} {}", resp.status, resp.text());
                (resp.status == 201).then(|| {
                    let v: serde_json::Value = serde_json::from_slice(&resp.body).unwrap();
                    v["challenge"].as_str().unwrap().to_string()
                })
            })
            .collect();
        std::thread::sleep(Duration::from_millis(500));
        mend();
        let mended = Instant::now();
        // Back by itself: /readyz 200 again, without a restart.
        while readyz(&server).0 != 200 {
            assert!(
                mended.elapsed() < Duration::from_secs(15),
                "not ready again: {:?}",
                readyz(&server)
            );
            std::thread::sleep(Duration::from_millis(50));
        }
        let outage = mended.elapsed();
        std::thread::sleep(Duration::from_millis(500));
        stop.store(true, Ordering::Release);
        (load.join().unwrap(), (outage, minted))
    });
    let (outage, minted) = outage;
    eprintln!("ready again {outage:?} after the disk was mended");
    let issued: Vec<&String> = outcomes
        .iter()
        .filter_map(|o| if let Outcome::Issued(s) = o { Some(s) } else { None })
        .collect();
    let refused = outcomes.iter().filter(|o| !matches!(o, Outcome::Issued(_))).count();
    assert!(refused > 0, "the broken disk refused nothing");
    for outcome in &outcomes {
        assert!(
            matches!(outcome, Outcome::Issued(_) | Outcome::Status(503) | Outcome::Failure(_)),
            "{outcome:?}"
        );
    }
    // Every certificate a client received is in the store.
    let stored = listed_serials(&server);
    for serial in &issued {
        assert!(stored.contains(serial), "{serial} was sent but not stored");
    }
    // And the server enrolls again.
    let ra = recipient(&server.scep_url());
    let after = enroll(
        &Requester::new(KeyBits::Rsa2048),
        &ra,
        &server.scep_url(),
        "CN=disk-after",
        CHALLENGE,
    );
    assert!(matches!(after, Outcome::Issued(_)), "{after:?}");
    // Every challenge acknowledged during the outage was stored once the disk came back.
    eprintln!("{} challenges minted during the outage", minted.len());
    for (i, challenge) in minted.iter().enumerate() {
        let requester = Requester::new(KeyBits::Rsa2048);
        let redeemed = enroll(
            &requester,
            &ra,
            &server.scep_url(),
            &format!("CN=minted-{i}"),
            challenge,
        );
        assert!(matches!(redeemed, Outcome::Issued(_)), "challenge {i}: {redeemed:?}");
    }
    assert!(metric(&server, "scepd_store_failures_total") >= 1);
    assert!(metric(&server, "scepd_store_reopens_total") >= 1);
}

#[test]
fn a_full_disk_gets_503s_and_the_store_reopens_itself_when_space_returns() {
    let mut mounts = Mounts::new();
    let data = mounts.tmpfs("data", "16m");
    outage_and_recovery(&data, || fill(&data), || unfill(&data));
}

#[test]
fn io_errors_from_the_device_get_503s_and_the_store_reopens_itself() {
    let mut mounts = Mounts::new();
    let backing = mounts.tmpfs("backing", "24m");
    let data = mounts.ext2_on(&backing.join("disk.img"), "data");
    outage_and_recovery(&data, || fill(&backing), || unfill(&backing));
}
