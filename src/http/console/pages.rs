//! One function per page: read through the service (on the blocking pool), shape rows, render.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use askama::Template;
use hyper::{Response, StatusCode};

use scepd_ca::{Reason, Serial};

use super::views::{self, AuditRow, CertRow};
use super::{blocking, form, Ctx};
use crate::http::response::{self, Body};
use crate::http::AppState;
use crate::service::rollover::CaRole;
use crate::service::{MdmClientAdded, MintRequest, ScepService, ServiceError};
use crate::store::console::{AuditQuery, CertQuery, CertSummary, SCAN_BUDGET};
use crate::store::{AuditEvent, CertFilter, CertStatus, RevokeOutcome};

/// Rows on a page.
const PAGE: usize = 50;
/// The overview's figures are counted at most this often (one pass over every certificate).
const SUMMARY_TTL: Duration = Duration::from_secs(60);
const DAY: u64 = 86_400;

/// What the overview counted, and when.
struct Counted {
    at: Instant,
    at_unix: u64,
    summary: Arc<CertSummary>,
    today: (u64, u64, u64, bool),
}

/// The console's share of the server's state: the overview's counts, cached. A count is one
/// pass over every certificate (seconds on a million): it runs in the background and the page
/// shows the last one, so no page view waits for more than [`FIRST_COUNT_WAIT`].
#[derive(Default)]
pub struct ConsoleState {
    counted: Arc<Mutex<Option<Arc<Counted>>>>,
    counting: Arc<AtomicBool>,
}

/// How long the first overview waits for the first count before it says "counting".
const FIRST_COUNT_WAIT: Duration = Duration::from_millis(150);

impl ConsoleState {
    fn last(&self) -> Option<Arc<Counted>> {
        self.counted.lock().expect("console cache").clone()
    }

    /// Starts a count unless one runs.
    fn recount(&self, service: &Arc<ScepService>) {
        if self.counting.swap(true, Ordering::AcqRel) {
            return;
        }
        let (service, counted, counting) = (
            Arc::clone(service),
            Arc::clone(&self.counted),
            Arc::clone(&self.counting),
        );
        tokio::task::spawn_blocking(move || {
            match count(&service) {
                Ok(c) => *counted.lock().expect("console cache") = Some(Arc::new(c)),
                Err(e) => tracing::warn!(error = %e, "console overview count failed"),
            }
            counting.store(false, Ordering::Release);
        });
    }
}

pub fn render(status: StatusCode, page: &impl Template) -> Response<Body> {
    match page.render() {
        Ok(html) => response::bytes(status, "text/html; charset=utf-8", html),
        Err(e) => {
            tracing::error!(error = %e, "console template failed");
            response::text(StatusCode::INTERNAL_SERVER_ERROR, "internal error")
        }
    }
}

fn ok(page: &impl Template) -> Response<Body> {
    render(StatusCode::OK, page)
}

fn message(ctx: &Ctx, status: StatusCode, heading: &str, text: String, back: String) -> Response<Body> {
    render(
        status,
        &views::Message {
            nav: ctx.nav(),
            heading: heading.into(),
            text,
            back,
        },
    )
}

fn not_found(ctx: &Ctx, what: &str) -> Response<Body> {
    message(
        ctx,
        StatusCode::NOT_FOUND,
        "Not found",
        format!("No such {what}."),
        "/ui/".into(),
    )
}

fn unwrap(r: Result<Response<Body>, Response<Body>>) -> Response<Body> {
    r.unwrap_or_else(|e| e)
}

pub async fn get(state: &AppState, ctx: Ctx, path: &str, query: &str) -> Response<Body> {
    let q = form::parse(query);
    unwrap(match path {
        "/ui/" => overview(state, &ctx).await,
        "/ui/devices" => devices(state, &ctx, &q).await,
        "/ui/device" => device(state, &ctx, form::get(&q, "id"), false).await,
        "/ui/device/revoke" => device(state, &ctx, form::get(&q, "id"), true).await,
        "/ui/certificates" => certificates(state, &ctx, &q).await,
        "/ui/certificate" => certificate(state, &ctx, form::get(&q, "serial"), false).await,
        "/ui/certificate.pem" => certificate(state, &ctx, form::get(&q, "serial"), true).await,
        "/ui/mdm" => mdm(state, &ctx).await,
        "/ui/challenges" => Ok(ok(&views::Challenges { nav: ctx.nav() })),
        "/ui/audit" => audit(state, &ctx, &q).await,
        _ => Ok(not_found(&ctx, "page")),
    })
}

/// A change (the caller checked the CSRF token and that the role may change things).
pub async fn post(state: &AppState, ctx: Ctx, path: &str, form: Vec<(String, String)>) -> Response<Body> {
    let field = |name: &str| form::get(&form, name).to_string();
    unwrap(match path {
        "/ui/device/revoke" => revoke_device(state, &ctx, field("id"), &field("reason")).await,
        "/ui/certificate/revoke" => revoke(state, &ctx, &field("serial"), &field("reason")).await,
        "/ui/mdm/add" => mdm_add(state, &ctx, field("name")).await,
        "/ui/mdm/rotate" => mdm_rotate(state, &ctx, field("name")).await,
        "/ui/mdm/remove" => mdm_remove(state, &ctx, field("name")).await,
        "/ui/challenges" => mint(state, &ctx, field("device")).await,
        _ => Ok(not_found(&ctx, "action")),
    })
}

type Page = Result<Response<Body>, Response<Body>>;

async fn overview(state: &AppState, ctx: &Ctx) -> Page {
    let console = &state.console;
    let mut counted = console.last();
    if counted.as_ref().is_none_or(|c| c.at.elapsed() >= SUMMARY_TTL) {
        console.recount(&state.service);
    }
    let deadline = Instant::now() + FIRST_COUNT_WAIT;
    while counted.is_none() && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(10)).await;
        counted = console.last();
    }
    let (health, now) = blocking(state, |s| Ok((health(s), scepd_ca::time::unix_now()))).await?;
    let counted = counted.unwrap_or_else(|| {
        Arc::new(Counted {
            at: Instant::now(),
            at_unix: 0,
            summary: Arc::default(),
            today: (0, 0, 0, false),
        })
    });
    Ok(ok(&views::Overview {
        nav: ctx.nav(),
        ready: counted.at_unix != 0,
        counted_at: views::date(counted.at_unix),
        chart: views::Chart::new(&counted.summary.issued_per_day, counted.at_unix.max(1)),
        expiring: counted.summary.expiring.iter().map(|r| CertRow::new(r, now)).collect(),
        summary: Arc::clone(&counted.summary),
        health,
        today: counted.today,
    }))
}

/// The overview's figures: one pass over the certificates, and today's challenge events from
/// the newest audit entries (at most a scan budget of them).
fn count(s: &ScepService) -> Result<Counted, ServiceError> {
    let now = scepd_ca::time::unix_now();
    let summary = s.store().console().certificate_summary(now, 30, 30 * DAY)?;
    let midnight = now - now % DAY;
    let page = s.store().console().audit_page(&AuditQuery::default(), SCAN_BUDGET)?;
    let mut today = (0, 0, 0, false);
    let mut older = false;
    for e in &page.entries {
        if e.at < midnight {
            older = true;
            break;
        }
        match e.event {
            AuditEvent::ChallengeMinted => today.0 += 1,
            AuditEvent::ChallengeRedeemed => today.1 += 1,
            AuditEvent::ChallengeRejected => today.2 += 1,
            _ => {}
        }
    }
    today.3 = !older && page.next.is_some();
    Ok(Counted {
        at: Instant::now(),
        at_unix: now,
        summary: Arc::new(summary),
        today,
    })
}

/// CA, RA and CRL validity and the readiness checks, as rows.
fn health(s: &ScepService) -> Vec<(String, String)> {
    let a = s.authority();
    let validity = |i: &scepd_ca::Identity| {
        let v = i.cert.tbs_certificate().validity();
        format!(
            "{} — valid {} to {}",
            i.subject(),
            views::date(scepd_ca::time::from_x509(&v.not_before)),
            views::date(i.not_after())
        )
    };
    let mut rows = vec![("CA".to_string(), validity(&a.ca))];
    if let Some(ra) = &a.ra {
        rows.push(("RA".into(), validity(ra)));
    }
    // The other CA generations of a rollover: the next one (until it becomes current) and the
    // retired ones, which keep signing their CRLs while their certificates live.
    let set = s.ca_set();
    let now = scepd_ca::time::unix_now();
    for generation in &set.generations {
        let (label, when) = match (set.role(generation, now), generation.activate_at) {
            (CaRole::Current, _) => continue,
            (CaRole::Next, Some(at)) => ("Next CA", format!("; becomes current {}", views::date(at))),
            (CaRole::Next, None) => ("Next CA", "; not activated yet".into()),
            (CaRole::Retired, _) => ("Retired CA", String::new()),
        };
        let (not_before, not_after) = generation.validity();
        rows.push((
            label.into(),
            format!(
                "{} — valid {} to {}{when}",
                generation.subject(),
                views::date(not_before),
                views::date(not_after)
            ),
        ));
    }
    rows.push((
        "CRL".into(),
        match s.current_crl() {
            Some(c) => format!(
                "number {}, this update {}, next update {}",
                c.number,
                views::date(c.this_update),
                views::date(c.next_update)
            ),
            None => "not yet issued".into(),
        },
    ));
    let (ready, checks) = s.readiness();
    rows.push(("Ready".into(), if ready { "yes".into() } else { "no".into() }));
    if let Some(map) = checks.get("checks").and_then(|c| c.as_object()) {
        for (k, v) in map {
            rows.push((format!("Check: {k}"), v.as_str().unwrap_or_default().to_string()));
        }
    }
    rows
}

async fn devices(state: &AppState, ctx: &Ctx, q: &[(String, String)]) -> Page {
    let query = form::get(q, "q").to_string();
    let after = form::get(q, "after").to_string();
    let (prefix, after_c) = (query.clone(), after.clone());
    let (rows, by_subject) = blocking(state, move |s| {
        let console = s.store().console();
        let after = (!after_c.is_empty()).then_some(after_c.as_str());
        let rows = console.device_page(&prefix, after, PAGE + 1)?;
        // A CN search: the first page of certificates whose subject holds the text.
        let by_subject = if prefix.is_empty() || after.is_some() {
            Vec::new()
        } else {
            let q = CertQuery {
                subject: Some(prefix.clone()),
                ..Default::default()
            };
            console.certificate_page(&q, scepd_ca::time::unix_now(), PAGE)?.records
        };
        Ok((rows, by_subject))
    })
    .await?;
    let now = scepd_ca::time::unix_now();
    let next = (rows.len() > PAGE).then(|| form::encode(&rows[PAGE - 1].device_id));
    Ok(ok(&views::Devices {
        nav: ctx.nav(),
        q_link: form::encode(&query),
        q: query,
        rows: rows
            .into_iter()
            .take(PAGE)
            .map(|r| (form::encode(&r.device_id), r.device_id, r.certificates))
            .map(|(link, id, n)| (id, link, n))
            .collect(),
        next,
        by_subject: by_subject.iter().map(|r| CertRow::new(r, now)).collect(),
    }))
}

async fn device(state: &AppState, ctx: &Ctx, id: &str, confirm: bool) -> Page {
    let device = id.to_string();
    let filter = CertFilter {
        device_id: Some(device.clone()),
        status: None,
    };
    let records = blocking(state, move |s| s.certificates(&filter)).await?;
    if records.is_empty() {
        return Ok(not_found(ctx, "device"));
    }
    let now = scepd_ca::time::unix_now();
    let revocable = records.iter().filter(|r| r.status != CertStatus::Revoked).count();
    let device_link = form::encode(&device);
    if confirm {
        if !ctx.role.may_change() {
            return Ok(message(
                ctx,
                StatusCode::FORBIDDEN,
                "Not allowed",
                "Viewers cannot revoke.".into(),
                "/ui/devices".into(),
            ));
        }
        return Ok(ok(&views::DeviceRevoke {
            nav: ctx.nav(),
            device,
            device_link,
            count: revocable,
            reasons: Reason::names().collect(),
        }));
    }
    Ok(ok(&views::Device {
        nav: ctx.nav(),
        device,
        device_link,
        by_subject: records.iter().map(|r| CertRow::new(r, now)).collect(),
        revocable: revocable > 0,
    }))
}

async fn certificates(state: &AppState, ctx: &Ctx, q: &[(String, String)]) -> Page {
    let status_name = form::get(q, "status").to_string();
    let text = form::get(q, "q").to_string();
    let status = CertStatus::from_name(&status_name);
    let after = form::get(q, "after").parse::<Serial>().ok();
    let (t, exact) = (text.clone(), text.parse::<Serial>().ok());
    let page = blocking(state, move |s| {
        // A serial is looked up, not searched for.
        if let Some(serial) = exact {
            let records = s.certificate(&serial)?.map(|(r, _)| r).into_iter().collect();
            return Ok(crate::store::console::CertPage { records, next: None });
        }
        let query = CertQuery {
            status,
            subject: (!t.is_empty()).then_some(t),
            after,
        };
        Ok(s.store()
            .console()
            .certificate_page(&query, scepd_ca::time::unix_now(), PAGE)?)
    })
    .await?;
    let now = scepd_ca::time::unix_now();
    Ok(ok(&views::Certificates {
        nav: ctx.nav(),
        statuses: ["active", "superseded", "revoked", "expired"].into(),
        status: status.map(|s| s.as_str().to_string()).unwrap_or_default(),
        q_link: form::encode(&text),
        q: text,
        by_subject: page.records.iter().map(|r| CertRow::new(r, now)).collect(),
        next: page.next.map(|s| s.to_hex()),
    }))
}

async fn certificate(state: &AppState, ctx: &Ctx, serial: &str, pem: bool) -> Page {
    let Ok(serial) = serial.parse::<Serial>() else {
        return Ok(not_found(ctx, "certificate"));
    };
    let Some((record, der)) = blocking(state, move |s| s.certificate(&serial)).await? else {
        return Ok(not_found(ctx, "certificate"));
    };
    if pem {
        let mut r = response::bytes(StatusCode::OK, "application/x-pem-file", super::detail::pem(&der));
        if let Ok(v) =
            hyper::header::HeaderValue::from_str(&format!("attachment; filename=\"{}.pem\"", serial.to_hex()))
        {
            r.headers_mut().insert(hyper::header::CONTENT_DISPOSITION, v);
        }
        return Ok(r);
    }
    let now = scepd_ca::time::unix_now();
    let (fields, extensions) = super::detail::describe(&record, &der, now);
    Ok(ok(&views::Certificate {
        nav: ctx.nav(),
        serial: serial.to_hex(),
        fields,
        extensions,
        revocable: record.status != CertStatus::Revoked,
        reasons: Reason::names().collect(),
    }))
}

fn reason(name: &str) -> Option<Reason> {
    if name.is_empty() {
        Some(Reason::UNSPECIFIED)
    } else {
        Reason::from_name(name)
    }
}

async fn revoke(state: &AppState, ctx: &Ctx, serial: &str, reason_name: &str) -> Page {
    let (Ok(serial), Some(reason)) = (serial.parse::<Serial>(), reason(reason_name)) else {
        return Ok(message(
            ctx,
            StatusCode::BAD_REQUEST,
            "Not revoked",
            "Unknown serial or reason.".into(),
            "/ui/certificates".into(),
        ));
    };
    let origin = ctx.origin();
    let outcome = blocking(state, move |s| s.revoke(&serial, reason, &origin)).await?;
    let back = format!("/ui/certificate?serial={}", serial.to_hex());
    Ok(match outcome {
        RevokeOutcome::Revoked(_) => message(
            ctx,
            StatusCode::OK,
            "Revoked",
            format!(
                "Certificate {} is revoked ({}); the next CRL lists it.",
                serial.to_hex(),
                reason.as_str()
            ),
            back,
        ),
        RevokeOutcome::AlreadyRevoked(_) => message(
            ctx,
            StatusCode::OK,
            "Already revoked",
            format!("Certificate {} was already revoked.", serial.to_hex()),
            back,
        ),
        RevokeOutcome::NotFound => not_found(ctx, "certificate"),
    })
}

async fn revoke_device(state: &AppState, ctx: &Ctx, device: String, reason_name: &str) -> Page {
    let Some(reason) = reason(reason_name) else {
        return Ok(message(
            ctx,
            StatusCode::BAD_REQUEST,
            "Not revoked",
            "Unknown reason.".into(),
            "/ui/devices".into(),
        ));
    };
    let (origin, d) = (ctx.origin(), device.clone());
    let revoked = blocking(state, move |s| s.revoke_device(&d, reason, &origin)).await?;
    let serials: Vec<String> = revoked.iter().map(|s| s.to_hex()).collect();
    Ok(message(
        ctx,
        StatusCode::OK,
        "Revoked",
        format!(
            "{} certificate(s) of device {device} revoked ({}): {}",
            serials.len(),
            reason.as_str(),
            serials.join(", ")
        ),
        format!("/ui/device?id={}", form::encode(&device)),
    ))
}

async fn mdm(state: &AppState, ctx: &Ctx) -> Page {
    let clients = blocking(state, |s| s.mdm_clients()).await?;
    Ok(ok(&views::Mdm {
        nav: ctx.nav(),
        clients: clients
            .iter()
            .map(|c| {
                let ttl = c
                    .challenge_ttl_seconds
                    .map_or("server default".into(), |t| format!("{t} s"));
                (c.name.clone(), views::date(c.created_at), ttl)
            })
            .collect(),
    }))
}

fn secret(ctx: &Ctx, heading: String, explanation: String, secret: String, back: &'static str) -> Response<Body> {
    ok(&views::Secret {
        nav: ctx.nav(),
        heading,
        explanation,
        secret,
        back,
    })
}

async fn mdm_add(state: &AppState, ctx: &Ctx, name: String) -> Page {
    let (origin, n) = (ctx.origin(), name.clone());
    Ok(
        match blocking(state, move |s| s.add_mdm_client(&n, None, &origin)).await? {
            MdmClientAdded::Created { password } => secret(
                ctx,
                format!("MDM credential {name} added"),
                "Its password is shown once: copy it into the MDM now.".into(),
                password,
                "/ui/mdm",
            ),
            MdmClientAdded::Exists => message(
                ctx,
                StatusCode::CONFLICT,
                "Not added",
                format!("An MDM credential named {name} exists (rotate it instead)."),
                "/ui/mdm".into(),
            ),
            MdmClientAdded::InvalidName => message(
                ctx,
                StatusCode::BAD_REQUEST,
                "Not added",
                "Name: 1-64 characters of A-Z a-z 0-9 . _ -".into(),
                "/ui/mdm".into(),
            ),
        },
    )
}

async fn mdm_rotate(state: &AppState, ctx: &Ctx, name: String) -> Page {
    let (origin, n) = (ctx.origin(), name.clone());
    Ok(
        match blocking(state, move |s| s.rotate_mdm_client(&n, &origin)).await? {
            Some(password) => secret(
                ctx,
                format!("New password for {name}"),
                "The old password no longer works. The new one is shown once.".into(),
                password,
                "/ui/mdm",
            ),
            None => not_found(ctx, "MDM credential"),
        },
    )
}

async fn mdm_remove(state: &AppState, ctx: &Ctx, name: String) -> Page {
    let (origin, n) = (ctx.origin(), name.clone());
    Ok(if blocking(state, move |s| s.remove_mdm_client(&n, &origin)).await? {
        message(
            ctx,
            StatusCode::OK,
            "Removed",
            format!("MDM credential {name} is removed; its password stops working."),
            "/ui/mdm".into(),
        )
    } else {
        not_found(ctx, "MDM credential")
    })
}

async fn mint(state: &AppState, ctx: &Ctx, device: String) -> Page {
    let request = MintRequest {
        minted_by: ctx.actor.clone(),
        endpoint: "console",
        device_id: (!device.is_empty()).then(|| device.clone()),
        request_id: Some(ctx.request_id),
        ..Default::default()
    };
    if let Err(e) = request.check() {
        return Ok(message(
            ctx,
            StatusCode::BAD_REQUEST,
            "Not minted",
            e,
            "/ui/challenges".into(),
        ));
    }
    match state.service.mint_challenge(request).await {
        Ok(m) => Ok(secret(
            ctx,
            "Challenge".into(),
            format!(
                "One-time challenge{}, valid until {}:",
                if device.is_empty() {
                    String::new()
                } else {
                    format!(" for device {device}")
                },
                views::date(m.expires_at)
            ),
            m.challenge,
            "/ui/challenges",
        )),
        Err(e) => {
            tracing::error!(error = %e, "console mint failed");
            Err(response::retry_later("store unavailable", 1))
        }
    }
}

async fn audit(state: &AppState, ctx: &Ctx, q: &[(String, String)]) -> Page {
    let event_name = form::get(q, "event").to_string();
    let actor = form::get(q, "actor").to_string();
    let query = AuditQuery {
        event: AuditEvent::from_name(&event_name),
        actor: (!actor.is_empty()).then(|| actor.clone()),
        before: form::get(q, "before").parse().ok(),
    };
    let page = blocking(state, move |s| {
        // The page shows the trail as of this request, entries still queued included.
        s.sync_audit();
        Ok(s.store().console().audit_page(&query, PAGE)?)
    })
    .await?;
    Ok(ok(&views::Audit {
        nav: ctx.nav(),
        events: AuditEvent::ALL.iter().map(|e| e.as_str()).collect(),
        event: AuditEvent::from_name(&event_name)
            .map(|e| e.as_str().to_string())
            .unwrap_or_default(),
        actor_link: form::encode(&actor),
        actor,
        rows: page.entries.iter().map(AuditRow::new).collect(),
        next: page.next,
    }))
}
