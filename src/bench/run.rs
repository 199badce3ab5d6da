//! The load generator's phases: prepare, send, validate, report.

use std::collections::{BTreeMap, HashSet};
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use clap::Args;
use der::{Decode, Encode};
use http_body_util::{BodyExt, Full};
use hyper::Request;
use hyper_util::rt::TokioIo;
use scepd_ca::{Identity, KeyBits, RsaKey};
use x509_cert::Certificate;

use super::floor::{Bracketed, Floor};
use crate::scep::cipher::ContentCipher;
use crate::scep::client::{self, RequestParams};
use crate::scep::digest::DigestAlg;
use crate::scep::signed::{SignatureAlgorithmField, Signing};
use crate::scep::MessageType;

#[derive(Args, Debug, Clone)]
pub struct BenchArgs {
    /// SCEP URL on this machine, e.g. http://127.0.0.1:8080/scep
    #[arg(long)]
    pub url: String,
    /// Challenge password to put in every request.
    #[arg(long, default_value = "")]
    pub challenge: String,
    /// Enrollments to send.
    #[arg(long, short = 'n', default_value_t = 200)]
    pub requests: usize,
    /// Concurrent keep-alive connections.
    #[arg(long, short = 'c', default_value_t = 4)]
    pub concurrency: usize,
    /// Distinct client keys (each enrollment uses one of them; key generation is not timed).
    #[arg(long, default_value_t = 16)]
    pub keys: usize,
    /// The server's PID, to report its CPU time per enrollment.
    #[arg(long)]
    pub server_pid: Option<u32>,
    /// Stop after this many seconds even if requests remain.
    #[arg(long, default_value_t = 300)]
    pub max_seconds: u64,
    /// Content encryption of the requests.
    #[arg(long, value_enum, default_value_t = BenchCipher::Aes128)]
    pub cipher: BenchCipher,
    /// The server's data directory: after the load, time the three private-key operations of
    /// an enrollment with its keys (file or token) and report the server's CPU per enrollment
    /// as a multiple of them.
    #[arg(long, requires = "server_pid")]
    pub floor: Option<PathBuf>,
    /// File holding the token's user PIN, for --floor with keys in a token (or set
    /// SCEPD_PKCS11_PIN).
    #[arg(long, env = "SCEPD_PKCS11_PIN_FILE", requires = "floor")]
    pub pkcs11_pin_file: Option<PathBuf>,
    /// Print one JSON object instead of text.
    #[arg(long)]
    pub json: bool,
}

#[derive(Clone, Copy, Debug, clap::ValueEnum)]
pub enum BenchCipher {
    Aes128,
    Des3,
}

struct Prepared {
    message: Vec<u8>,
    nonce: Vec<u8>,
    requester: usize,
    spki_der: Vec<u8>,
}

/// A reply as it arrived: which request, its body, how long it took. Checked once the clock
/// has stopped (see [`run`]).
struct Answer {
    request: usize,
    body: Bytes,
    latency: Duration,
}

/// Per-request result.
enum Outcome {
    Issued { latency: Duration, serial: Vec<u8> },
    Failed { latency: Duration, fail_info: String },
    Error(String),
}

/// Loopback only: this is a load generator, not a scanner.
fn check_loopback(url: &str) -> Result<(SocketAddr, String, String), String> {
    let rest = url.strip_prefix("http://").ok_or("only http:// URLs")?;
    let (hostport, path) = rest.split_at(rest.find('/').unwrap_or(rest.len()));
    let addr: SocketAddr = hostport
        .replace("localhost", "127.0.0.1")
        .parse()
        .map_err(|_| format!("{hostport}: give an IP:port"))?;
    if !addr.ip().is_loopback() {
        return Err(format!(
            "{addr} is not a loopback address: scepd bench only targets this machine"
        ));
    }
    let path = if path.is_empty() {
        "/".to_string()
    } else {
        path.to_string()
    };
    Ok((addr, hostport.to_string(), path))
}

async fn get(addr: SocketAddr, host: &str, path_and_query: &str) -> Result<Vec<u8>, String> {
    let stream = tokio::net::TcpStream::connect(addr).await.map_err(|e| e.to_string())?;
    let (mut send, conn) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
        .await
        .map_err(|e| e.to_string())?;
    tokio::spawn(conn);
    let req = Request::get(path_and_query)
        .header("host", host)
        .body(Full::new(Bytes::new()))
        .map_err(|e| e.to_string())?;
    let resp = send.send_request(req).await.map_err(|e| e.to_string())?;
    if !resp.status().is_success() {
        return Err(format!("{path_and_query}: HTTP {}", resp.status()));
    }
    Ok(resp
        .into_body()
        .collect()
        .await
        .map_err(|e| e.to_string())?
        .to_bytes()
        .to_vec())
}

/// The CA certificates of a GetCACert body and the one to encrypt to (keyEncipherment, else the
/// first).
fn ca_certificates(body: &[u8]) -> Result<(Vec<Certificate>, Certificate), String> {
    let certs: Vec<Certificate> = match Certificate::from_der(body) {
        Ok(c) => vec![c],
        Err(_) => {
            let ci = cms::content_info::ContentInfo::from_der(body).map_err(|e| e.to_string())?;
            let sd = ci
                .content
                .decode_as::<crate::scep::asn1::SignedDataIn>()
                .map_err(|e| e.to_string())?;
            sd.certificates
                .unwrap_or_default()
                .iter()
                .map(|a| Certificate::from_der(&a.to_der().map_err(|e| e.to_string())?).map_err(|e| e.to_string()))
                .collect::<Result<_, _>>()?
        }
    };
    let recipient = certs
        .iter()
        .find(|c| {
            c.tbs_certificate()
                .get_extension::<x509_cert::ext::pkix::KeyUsage>()
                .ok()
                .flatten()
                .is_some_and(|(_, ku)| ku.key_encipherment())
        })
        .or(certs.first())
        .cloned()
        .ok_or("GetCACert returned no certificate")?;
    Ok((certs, recipient))
}

/// Whether `cert` is signed by one of `issuers` (checked with the issuer's key).
fn chains_to(cert: &Certificate, issuers: &[Certificate]) -> bool {
    let Ok(tbs) = cert.tbs_certificate().to_der() else {
        return false;
    };
    let digest = DigestAlg::from_rsa_signature_oid(&cert.signature_algorithm().oid);
    issuers.iter().any(|ca| {
        let key = ca
            .tbs_certificate()
            .subject_public_key_info()
            .subject_public_key
            .raw_bytes();
        digest.is_some_and(|d| d.verify_rsa(key, &tbs, cert.signature().raw_bytes()))
    })
}

fn cpu_ticks(pid: u32) -> Option<u64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // Fields after the parenthesised command name; utime and stime are the 14th and 15th.
    let rest = &stat[stat.rfind(')')? + 2..];
    let f: Vec<&str> = rest.split_whitespace().collect();
    Some(f.get(11)?.parse::<u64>().ok()? + f.get(12)?.parse::<u64>().ok()?)
}

fn percentile(sorted: &[Duration], p: f64) -> f64 {
    if sorted.is_empty() {
        return 0.0;
    }
    let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[i].as_secs_f64() * 1e3
}

pub async fn run(args: BenchArgs) -> Result<(), Box<dyn std::error::Error>> {
    let (addr, host, path) = check_loopback(&args.url)?;
    let caps = String::from_utf8_lossy(&get(addr, &host, &format!("{path}?operation=GetCACaps")).await?).into_owned();
    let post = caps.lines().any(|l| l.trim() == "POSTPKIOperation");
    let (ca_certs, recipient) = ca_certificates(&get(addr, &host, &format!("{path}?operation=GetCACert")).await?)?;

    // Keys and messages are made before the clock starts.
    let keys = args.keys.clamp(1, args.requests.max(1));
    let requesters: Vec<Identity> = (0..keys)
        .map(|i| {
            let key = RsaKey::generate(KeyBits::Rsa2048).expect("key generation");
            let cert = scepd_ca::request::self_signed(
                &scepd_ca::name::parse(&format!("CN=bench signer {i}")).expect("name"),
                &key,
            )
            .expect("self-signed");
            Identity {
                der: cert.to_der().expect("DER"),
                cert,
                key: Box::new(key),
            }
        })
        .collect();
    let cipher = match args.cipher {
        BenchCipher::Aes128 => ContentCipher::Aes128Cbc,
        BenchCipher::Des3 => ContentCipher::DesEde3Cbc,
    };
    let challenge = (!args.challenge.is_empty()).then_some(args.challenge.as_str());
    let run_id = hex::encode(crate::scep::envelope::random_bytes(4));
    let prepared: Vec<Prepared> = (0..args.requests)
        .map(|i| {
            let r = i % keys;
            let id = &requesters[r];
            let subject = scepd_ca::name::parse(&format!("CN=bench-{run_id}-{i}")).expect("name");
            let csr = scepd_ca::request::client_csr(&subject, id.key.as_ref(), challenge, &[]).expect("CSR");
            let nonce = crate::scep::envelope::random_bytes(16);
            let signing = Signing {
                cert: &id.cert,
                key: id.key.as_ref(),
                digest: DigestAlg::Sha256,
                algorithm_field: SignatureAlgorithmField::RsaEncryption,
            };
            let tid = format!("bench-{run_id}-{i}");
            let params = RequestParams {
                message_type: MessageType::PkcsReq,
                transaction_id: &tid,
                sender_nonce: &nonce,
                cipher,
            };
            let message = client::request(&csr, &recipient, &signing, &params).expect("request");
            Prepared {
                message,
                nonce,
                requester: r,
                spki_der: id.key.public_key_spki_der(),
            }
        })
        .collect();

    // The floor is timed before the load and again after it, and the two are averaged: this
    // machine's speed drifts by ±10 % over the seconds a run takes (BENCHMARKS.md), and one
    // reading on one side of the load would put all of that drift into the ratio.
    let floor_before = measure_floor(&args).await?;
    let cpu_before = args.server_pid.and_then(cpu_ticks);
    let started = Instant::now();
    let deadline = started + Duration::from_secs(args.max_seconds);
    let work = Arc::new((prepared, std::sync::atomic::AtomicUsize::new(0)));
    let mut workers = Vec::new();
    for _ in 0..args.concurrency.max(1) {
        let (work, host, path) = (work.clone(), host.clone(), path.clone());
        workers.push(tokio::spawn(async move {
            let (mut answers, mut outcomes) = (Vec::new(), Vec::new());
            let stream = match tokio::net::TcpStream::connect(addr).await {
                Ok(s) => s,
                Err(e) => return (answers, vec![Outcome::Error(e.to_string())]),
            };
            let _ = stream.set_nodelay(true);
            let (mut send, conn) = match hyper::client::conn::http1::handshake(TokioIo::new(stream)).await {
                Ok(x) => x,
                Err(e) => return (answers, vec![Outcome::Error(e.to_string())]),
            };
            tokio::spawn(conn);
            loop {
                let i = work.1.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                let Some(p) = work.0.get(i) else { break };
                if Instant::now() > deadline {
                    break;
                }
                let t0 = Instant::now();
                let req = if post {
                    Request::post(format!("{path}?operation=PKIOperation"))
                        .header("host", &host)
                        .header("content-type", "application/x-pki-message")
                        .body(Full::new(Bytes::from(p.message.clone())))
                } else {
                    let b64 = base64::Engine::encode(&base64::engine::general_purpose::STANDARD, &p.message);
                    let q: String = b64
                        .bytes()
                        .map(|b| match b {
                            b'+' => "%2B".into(),
                            b'/' => "%2F".into(),
                            b'=' => "%3D".into(),
                            b => (b as char).to_string(),
                        })
                        .collect();
                    Request::get(format!("{path}?operation=PKIOperation&message={q}"))
                        .header("host", &host)
                        .body(Full::new(Bytes::new()))
                };
                let body = match req {
                    Ok(req) => match send.send_request(req).await {
                        Ok(resp) if resp.status().is_success() => {
                            resp.into_body().collect().await.map(|b| b.to_bytes())
                        }
                        Ok(resp) => {
                            outcomes.push(Outcome::Error(format!("HTTP {}", resp.status())));
                            continue;
                        }
                        Err(e) => {
                            outcomes.push(Outcome::Error(e.to_string()));
                            break;
                        }
                    },
                    Err(e) => {
                        outcomes.push(Outcome::Error(e.to_string()));
                        continue;
                    }
                };
                let latency = t0.elapsed();
                let Ok(body) = body else {
                    outcomes.push(Outcome::Error("reading the body".into()));
                    continue;
                };
                answers.push(Answer {
                    request: i,
                    body,
                    latency,
                });
            }
            (answers, outcomes)
        }));
    }
    let (mut answers, mut outcomes) = (Vec::new(), Vec::new());
    for w in workers {
        let (a, o) = w.await?;
        answers.extend(a);
        outcomes.extend(o);
    }
    let elapsed = started.elapsed();
    let cpu_after = args.server_pid.and_then(cpu_ticks);
    // Every reply is checked completely, but after the clock stops: the load generator shares
    // the machine's cores with the server, and decrypting and verifying replies while timing
    // would take CPU from the server under test (about 0.3 ms per enrollment here), the same
    // for whichever server, so a faster server's lead would shrink.
    outcomes.extend(answers.iter().map(|a| {
        let p = &work.0[a.request];
        validate(&a.body, p, &requesters[p.requester], &ca_certs, a.latency)
    }));
    let floor_after = measure_floor(&args).await?;
    let floor = floor_before
        .zip(floor_after)
        .map(|(before, after)| Bracketed { before, after });
    report(
        &args,
        &outcomes,
        elapsed,
        cpu_before.zip(cpu_after).map(|(a, b)| b.saturating_sub(a)),
        floor,
    )
}

/// Thread CPU seconds each reading of the floor takes, at the least.
const FLOOR_SECONDS: f64 = 2.0;

/// With `--floor`, the three private-key operations timed with the server's own keys.
async fn measure_floor(args: &BenchArgs) -> Result<Option<Floor>, Box<dyn std::error::Error>> {
    let Some(data) = args.floor.clone() else {
        return Ok(None);
    };
    let pin_file = args.pkcs11_pin_file.clone();
    let measured = tokio::task::spawn_blocking(move || {
        super::floor::measure(&data, pin_file.as_deref(), FLOOR_SECONDS).map_err(|e| e.to_string())
    });
    Ok(Some(measured.await??))
}

/// Checks one reply completely; a SUCCESS that fails any check counts as an error.
fn validate(body: &[u8], p: &Prepared, requester: &Identity, ca_certs: &[Certificate], latency: Duration) -> Outcome {
    let rep = match client::read_cert_rep(body, requester) {
        Ok(r) => r,
        Err(e) => return Outcome::Error(format!("CertRep: {e}")),
    };
    if rep.header.reply.recipient_nonce.as_deref() != Some(p.nonce.as_slice()) {
        return Outcome::Error("recipientNonce is not our senderNonce".into());
    }
    match rep.header.reply.pki_status.as_deref() {
        Some("0") => {}
        Some("2") => {
            return Outcome::Failed {
                latency,
                fail_info: rep.header.reply.fail_info.unwrap_or_default(),
            }
        }
        other => return Outcome::Error(format!("pkiStatus {other:?}")),
    }
    let Some(cert) = rep
        .certificates
        .iter()
        .filter_map(|d| Certificate::from_der(d).ok())
        .find(|c| {
            c.tbs_certificate()
                .subject_public_key_info()
                .to_der()
                .map(|d| d == p.spki_der)
                .unwrap_or(false)
        })
    else {
        return Outcome::Error("no certificate for our key in the reply".into());
    };
    if !chains_to(&cert, ca_certs) {
        return Outcome::Error("issued certificate does not chain to the CA".into());
    }
    Outcome::Issued {
        latency,
        serial: cert.tbs_certificate().serial_number().as_bytes().to_vec(),
    }
}

fn report(
    args: &BenchArgs,
    outcomes: &[Outcome],
    elapsed: Duration,
    server_ticks: Option<u64>,
    floor: Option<Bracketed>,
) -> Result<(), Box<dyn std::error::Error>> {
    let mut latencies: Vec<Duration> = Vec::new();
    let mut serials = HashSet::new();
    let mut duplicates = 0usize;
    let mut failures: BTreeMap<String, usize> = BTreeMap::new();
    let mut errors: BTreeMap<String, usize> = BTreeMap::new();
    for o in outcomes {
        match o {
            Outcome::Issued { latency, serial } => {
                latencies.push(*latency);
                if !serials.insert(serial.clone()) {
                    duplicates += 1;
                }
            }
            Outcome::Failed { latency, fail_info } => {
                latencies.push(*latency);
                *failures.entry(fail_info.clone()).or_default() += 1;
            }
            Outcome::Error(e) => *errors.entry(e.clone()).or_default() += 1,
        }
    }
    latencies.sort();
    let issued = outcomes.iter().filter(|o| matches!(o, Outcome::Issued { .. })).count();
    let rate = issued as f64 / elapsed.as_secs_f64();
    let ticks_per_second = 100.0; // USER_HZ on Linux
    let cpu_ms = server_ticks.map(|t| t as f64 * 1e3 / ticks_per_second / issued.max(1) as f64);
    let floor_ms = floor.map(|f| f.ms_per_enrollment());
    let ratio = cpu_ms.zip(floor_ms).map(|(cpu, f)| cpu / f);
    let summary = serde_json::json!({
        "url": args.url,
        "concurrency": args.concurrency,
        "requests": outcomes.len(),
        "issued": issued,
        "seconds": elapsed.as_secs_f64(),
        "enrollments_per_second": rate,
        "p50_ms": percentile(&latencies, 0.50),
        "p90_ms": percentile(&latencies, 0.90),
        "p99_ms": percentile(&latencies, 0.99),
        "failures_by_fail_info": failures,
        "errors": errors,
        "duplicate_serials": duplicates,
        "server_cpu_ms_per_enrollment": cpu_ms,
        "floor_ms_per_enrollment": floor_ms,
        "floor_before_ms": floor.map(|f| f.before.ms_per_enrollment),
        "floor_after_ms": floor.map(|f| f.after.ms_per_enrollment),
        "floor_rounds": floor.map(|f| f.before.rounds + f.after.rounds),
        "ca_key_bits": floor.map(|f| f.after.ca_bits),
        "cpu_to_floor_ratio": ratio,
    });
    if args.json {
        println!("{summary}");
    } else {
        println!(
            "{} enrollments in {:.2} s: {:.1}/s; latency p50 {:.2} ms, p90 {:.2} ms, p99 {:.2} ms",
            issued,
            elapsed.as_secs_f64(),
            rate,
            percentile(&latencies, 0.5),
            percentile(&latencies, 0.9),
            percentile(&latencies, 0.99)
        );
        println!("failures by failInfo: {failures:?}; errors: {errors:?}; duplicate serials: {duplicates}");
        if let Some(ms) = cpu_ms {
            println!("server CPU per enrollment: {ms:.2} ms");
        }
        if let (Some(f), Some(ratio)) = (floor, ratio) {
            println!(
                "floor (RA decrypt + CA sign + RA sign, RSA-{} CA): {:.3} ms ({:.3} before the load, {:.3} after); server CPU / floor: {ratio:.2}",
                f.after.ca_bits,
                f.ms_per_enrollment(),
                f.before.ms_per_enrollment,
                f.after.ms_per_enrollment
            );
        }
    }
    Ok(())
}
