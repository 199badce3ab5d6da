//! Starts the real `scepd` binary on an ephemeral port with a private data directory.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

use super::http;

pub const BIN: &str = env!("CARGO_BIN_EXE_scepd");

pub struct Server {
    child: Option<Child>,
    data: PathBuf,
    _tmp: Option<tempfile::TempDir>,
    pub base: String,
    pub log: PathBuf,
}

impl Server {
    /// `scepd serve` with a fresh data directory and `args`.
    pub fn start(args: &[&str]) -> Server {
        let tmp = tempfile::tempdir().unwrap();
        let data = tmp.path().join("data");
        let mut s = Server::start_in(&data, args);
        s._tmp = Some(tmp);
        s
    }

    /// `scepd serve --data DIR` (initialized first when empty).
    pub fn start_in(data: &Path, args: &[&str]) -> Server {
        Server::start_in_env(data, args, &[])
    }

    /// `scepd serve --data DIR` with more environment variables (`LD_PRELOAD` of libfaketime).
    pub fn start_in_env(data: &Path, args: &[&str], env: &[(&str, &str)]) -> Server {
        let log = data.with_extension("log");
        let _ = std::fs::remove_file(data.join("admin.url"));
        let child = Command::new(BIN)
            .args(["serve", "--data", data.to_str().unwrap(), "--listen", "127.0.0.1:0"])
            .args(args)
            .envs(env.iter().copied())
            .env("RUST_LOG", "info")
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(&log).unwrap())
            .spawn()
            .expect("start scepd");
        let deadline = Instant::now() + Duration::from_secs(60);
        let base = loop {
            if let Ok(url) = std::fs::read_to_string(data.join("admin.url")) {
                if http::get(&format!("{url}/healthz"))
                    .map(|r| r.status == 200)
                    .unwrap_or(false)
                {
                    break url;
                }
            }
            assert!(
                Instant::now() < deadline,
                "scepd did not start:\n{}",
                std::fs::read_to_string(&log).unwrap_or_default()
            );
            std::thread::sleep(Duration::from_millis(25));
        };
        Server {
            child: Some(child),
            data: data.to_path_buf(),
            _tmp: None,
            base,
            log,
        }
    }

    pub fn data(&self) -> &Path {
        &self.data
    }

    pub fn scep_url(&self) -> String {
        format!("{}/scep", self.base)
    }

    pub fn ca_pem(&self) -> PathBuf {
        self.data.join("ca.pem")
    }

    /// Runs `scepd ARGS --data DIR` (a CLI command against this server).
    pub fn cli(&self, args: &[&str]) -> Output {
        Command::new(BIN)
            .args(args)
            .args(["--data", self.data.to_str().unwrap()])
            .output()
            .unwrap()
    }

    pub fn log_text(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// SIGTERM, and the exit status once the process is gone.
    pub fn terminate(&mut self) -> std::process::ExitStatus {
        let mut child = self.child.take().expect("running");
        let _ = Command::new("kill").args(["-TERM", &child.id().to_string()]).status();
        child.wait().unwrap()
    }

    pub fn pid(&self) -> u32 {
        self.child.as_ref().expect("running").id()
    }

    /// SIGKILL, as a crash would.
    pub fn kill(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        self.kill();
    }
}
