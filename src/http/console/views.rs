//! The console's pages: askama templates (compiled into the binary, HTML-escaped) and the
//! plain rows they show.

use askama::Template;

use crate::store::console::CertSummary;
use crate::store::{AuditEntry, CertRecord};

/// What every signed-in page shows in its header.
#[derive(Clone, Debug)]
pub struct Nav {
    pub actor: String,
    pub role: &'static str,
    pub csrf: String,
    pub may_change: bool,
}

/// A certificate as a table row.
pub struct CertRow {
    pub serial: String,
    pub subject: String,
    pub device: String,
    pub device_link: String,
    pub status: &'static str,
    pub issued: String,
    pub not_after: String,
}

impl CertRow {
    pub fn new(r: &CertRecord, now: u64) -> CertRow {
        let device = r.device_id.clone().unwrap_or_default();
        CertRow {
            serial: r.serial.to_hex(),
            subject: r.subject.clone(),
            device_link: super::form::encode(&device),
            device,
            status: r.status_at(now).as_str(),
            issued: date(r.issued_at),
            not_after: date(r.not_after),
        }
    }
}

pub struct AuditRow {
    pub seq: u64,
    pub at: String,
    pub event: &'static str,
    pub actor: String,
    pub serial: String,
    pub device: String,
    pub detail: String,
}

impl AuditRow {
    pub fn new(e: &AuditEntry) -> AuditRow {
        AuditRow {
            seq: e.seq,
            at: date(e.at),
            event: e.event.as_str(),
            actor: e.actor.clone(),
            serial: e.serial.map(|s| s.to_hex()).unwrap_or_default(),
            device: e.device_id.clone().unwrap_or_default(),
            detail: e.detail.clone().unwrap_or_default(),
        }
    }
}

pub fn date(unix: u64) -> String {
    scepd_ca::time::rfc3339(unix)
}

#[derive(Template)]
#[template(path = "console/login.html")]
pub struct Login {
    pub login_csrf: String,
    pub message: Option<String>,
}

pub struct Bar {
    pub x: u32,
    pub y: u32,
    pub width: u32,
    pub height: u32,
    pub label: String,
}

/// Issuances per day as SVG bars (drawn by the server: the page runs no script).
pub struct Chart {
    pub width: u32,
    pub height: u32,
    pub base: u32,
    pub bars: Vec<Bar>,
    pub max: u64,
    pub first: String,
    pub last: String,
    pub title: String,
}

impl Chart {
    pub fn new(per_day: &[u64], now: u64) -> Chart {
        let (width, base, bar_area) = (600u32, 180u32, 160u32);
        let max = per_day.iter().copied().max().unwrap_or(0);
        let slot = width / per_day.len().max(1) as u32;
        let day_start = now - now % 86_400;
        let day = |i: usize| day_start - (per_day.len() - 1 - i) as u64 * 86_400;
        let bars = per_day
            .iter()
            .enumerate()
            .map(|(i, &n)| {
                let height = (n * u64::from(bar_area)).checked_div(max).unwrap_or(0) as u32;
                Bar {
                    x: i as u32 * slot + 1,
                    y: base - height,
                    width: slot.saturating_sub(2),
                    height,
                    label: format!("{}: {n}", &date(day(i))[..10]),
                }
            })
            .collect();
        let total: u64 = per_day.iter().sum();
        Chart {
            width,
            height: base + 16,
            base,
            bars,
            max,
            first: date(day(0))[..10].to_string(),
            last: date(day(per_day.len().saturating_sub(1)))[..10].to_string(),
            title: format!("{total} certificates issued over the last {} days", per_day.len()),
        }
    }
}

#[derive(Template)]
#[template(path = "console/overview.html")]
pub struct Overview {
    pub nav: Nav,
    /// Whether a count has finished (else the page says it is counting).
    pub ready: bool,
    pub summary: std::sync::Arc<CertSummary>,
    pub counted_at: String,
    pub chart: Chart,
    pub expiring: Vec<CertRow>,
    pub health: Vec<(String, String)>,
    /// Challenges minted, redeemed and rejected today; whether the count stopped early.
    pub today: (u64, u64, u64, bool),
}

#[derive(Template)]
#[template(path = "console/devices.html")]
pub struct Devices {
    pub nav: Nav,
    pub q: String,
    pub q_link: String,
    /// Device id, the id for a link, certificates.
    pub rows: Vec<(String, String, u64)>,
    pub next: Option<String>,
    pub by_subject: Vec<CertRow>,
}

#[derive(Template)]
#[template(path = "console/device.html")]
pub struct Device {
    pub nav: Nav,
    pub device: String,
    pub device_link: String,
    pub by_subject: Vec<CertRow>,
    pub revocable: bool,
}

#[derive(Template)]
#[template(path = "console/device_revoke.html")]
pub struct DeviceRevoke {
    pub nav: Nav,
    pub device: String,
    pub device_link: String,
    pub count: usize,
    pub reasons: Vec<&'static str>,
}

#[derive(Template)]
#[template(path = "console/certificates.html")]
pub struct Certificates {
    pub nav: Nav,
    pub statuses: Vec<&'static str>,
    pub status: String,
    pub q: String,
    pub q_link: String,
    pub by_subject: Vec<CertRow>,
    pub next: Option<String>,
}

#[derive(Template)]
#[template(path = "console/certificate.html")]
pub struct Certificate {
    pub nav: Nav,
    pub serial: String,
    pub fields: Vec<(&'static str, String)>,
    pub extensions: Vec<String>,
    pub revocable: bool,
    pub reasons: Vec<&'static str>,
}

#[derive(Template)]
#[template(path = "console/mdm.html")]
pub struct Mdm {
    pub nav: Nav,
    /// Name, created, challenge lifetime.
    pub clients: Vec<(String, String, String)>,
}

#[derive(Template)]
#[template(path = "console/secret.html")]
pub struct Secret {
    pub nav: Nav,
    pub heading: String,
    pub explanation: String,
    pub secret: String,
    pub back: &'static str,
}

#[derive(Template)]
#[template(path = "console/challenges.html")]
pub struct Challenges {
    pub nav: Nav,
}

#[derive(Template)]
#[template(path = "console/audit.html")]
pub struct Audit {
    pub nav: Nav,
    pub events: Vec<&'static str>,
    pub event: String,
    pub actor: String,
    pub actor_link: String,
    pub rows: Vec<AuditRow>,
    pub next: Option<u64>,
}

#[derive(Template)]
#[template(path = "console/message.html")]
pub struct Message {
    pub nav: Nav,
    pub heading: String,
    pub text: String,
    pub back: String,
}
