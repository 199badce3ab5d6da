//! The webhook outbox's contract, for every backend: events written in the transaction of
//! their cause (and only when it commits), fanned out to the subscribed endpoints, and claimed
//! by one node at a time through a lease.

use std::collections::HashSet;

use scepd::store::outbox::{
    Claim, DeliveryStatus, Event, EventType, RevokedBy, SealedSecret, WebhookEndpoint, WebhookId, WebhookStore,
};
use scepd::store::{CertRecord, Issuance, IssuanceOutcome, RevokeOutcome, Store, Supersede};
use scepd_ca::{Reason, Serial};

fn now() -> u64 {
    scepd_ca::time::unix_now()
}

fn issuance(device: &str, tid: &str) -> Issuance {
    let serial = Serial::fresh();
    Issuance {
        serial,
        record: CertRecord {
            device_id: Some(device.into()),
            device_bound: true,
            transaction_id: tid.into(),
            csr_sha256: tid.into(),
            ..CertRecord::issued(&serial, format!("CN={device}"), now(), now() + 86_400, now())
        },
        der: serial.as_bytes().to_vec(),
        redeems: None,
        supersede: Supersede::Device { max_valid: None },
    }
}

fn endpoint(events: Vec<EventType>) -> WebhookEndpoint {
    WebhookEndpoint {
        id: WebhookId::generate(),
        url: "https://example.com/hook".into(),
        events,
        description: None,
        allow_http: false,
        created_at: now(),
        secrets: vec![SealedSecret {
            sealed: "sealed".into(),
            expires_at: None,
        }],
    }
}

fn types(store: &dyn Store) -> Vec<(String, &'static str)> {
    let mut out: Vec<(String, &'static str)> = store
        .deliveries(None, 1000)
        .unwrap()
        .into_iter()
        .map(|d| (d.endpoint.to_string(), d.event.event_type().as_str()))
        .collect();
    out.sort();
    out
}

pub fn events_commit_with_their_cause(store: &dyn Store) {
    // No endpoint: nothing to deliver.
    assert!(matches!(
        store.record_issuance(&issuance("d0", "t0")).unwrap(),
        IssuanceOutcome::Stored { .. }
    ));
    assert!(store.deliveries(None, 10).unwrap().is_empty());

    let all = endpoint(vec![]);
    let revocations = endpoint(vec![EventType::CertificateRevoked]);
    store.add_webhook(&all).unwrap();
    store.add_webhook(&revocations).unwrap();
    assert_eq!(store.webhooks().unwrap().len(), 2);

    let first = issuance("d1", "t1");
    store.record_issuance(&first).unwrap();
    assert_eq!(types(store), vec![(all.id.to_string(), "certificate.issued")]);
    // A retried transaction and a conflicting one write nothing, events included.
    assert!(matches!(
        store.record_issuance(&first).unwrap(),
        IssuanceOutcome::AlreadyIssued(..)
    ));
    let mut conflict = issuance("d1", "t1");
    conflict.record.csr_sha256 = "other".into();
    assert_eq!(
        store.record_issuance(&conflict).unwrap(),
        IssuanceOutcome::TransactionConflict
    );
    assert_eq!(store.deliveries(None, 10).unwrap().len(), 1);

    // Re-enrollment: issued + superseded, in the same transaction.
    let second = issuance("d1", "t2");
    store.record_issuance(&second).unwrap();
    let list = store.deliveries(None, 10).unwrap();
    let superseded = list
        .iter()
        .find(|d| d.event.event_type() == EventType::CertificateSuperseded)
        .expect("superseded");
    match &superseded.event {
        Event::CertificateSuperseded { cert, superseded_by } => {
            assert_eq!(cert.serial, first.serial);
            assert_eq!(*superseded_by, second.serial);
        }
        other => panic!("{other:?}"),
    }
    assert_eq!(
        list[0].event.event_type(),
        EventType::CertificateSuperseded,
        "newest first"
    );

    // Revocation by an admin: both endpoints, one event id.
    let RevokeOutcome::Revoked(_) = store.revoke(&second.serial, Reason::KEY_COMPROMISE, now()).unwrap() else {
        panic!("not revoked");
    };
    let revoked: Vec<_> = store
        .deliveries(None, 10)
        .unwrap()
        .into_iter()
        .filter(|d| d.event.event_type() == EventType::CertificateRevoked)
        .collect();
    assert_eq!(revoked.len(), 2);
    assert_eq!(revoked[0].event_id, revoked[1].event_id);
    assert!(matches!(
        revoked[0].event,
        Event::CertificateRevoked {
            by: RevokedBy::Admin,
            reason: Reason::KEY_COMPROMISE,
            ..
        }
    ));
    // Revoking again changes nothing and says nothing.
    store.revoke(&second.serial, Reason::KEY_COMPROMISE, now()).unwrap();
    // A device's revocation: one event per certificate revoked.
    store.revoke_device("d1", Reason::UNSPECIFIED, now()).unwrap();
    let count = |t: EventType| {
        store
            .deliveries(None, 100)
            .unwrap()
            .iter()
            .filter(|d| d.event.event_type() == t)
            .count()
    };
    assert_eq!(count(EventType::CertificateRevoked), 4);
    assert_eq!(count(EventType::CertificateIssued), 2);
    assert_eq!(store.outbox_stats().unwrap().pending, 7);

    // Removing an endpoint stops new events for it.
    assert!(store.remove_webhook(&revocations.id).unwrap());
    assert!(!store.remove_webhook(&revocations.id).unwrap());
    store.record_issuance(&issuance("d2", "t3")).unwrap();
    assert_eq!(count(EventType::CertificateIssued), 3);
}

pub fn leases_give_each_delivery_to_one_node(store: &dyn Store) {
    store.add_webhook(&endpoint(vec![])).unwrap();
    for i in 0..5 {
        store
            .record_issuance(&issuance(&format!("d{i}"), &format!("t{i}")))
            .unwrap();
    }
    let t = now();
    let claim = |owner: &str, at: u64| {
        store
            .claim_deliveries(&Claim {
                owner,
                now: at,
                lease_until: at + 60,
                limit: 3,
            })
            .unwrap()
    };
    let a = claim("a", t);
    assert_eq!(a.len(), 3, "at most the limit");
    let a_rest = claim("a", t);
    assert_eq!(a_rest.len(), 2);
    assert!(claim("b", t).is_empty(), "all five are leased");
    // Node a dies; after its lease, node b takes over.
    let b = claim("b", t + 61);
    assert_eq!(b.len(), 3);
    let mut late = a[0].clone();
    late.status = DeliveryStatus::Delivered;
    let taken: HashSet<_> = b.iter().map(|d| d.id.clone()).collect();
    if taken.contains(&late.id) {
        assert!(!store.finish_delivery(&late, "a").unwrap(), "a's lease ran out");
    }
    for mut d in b {
        d.status = DeliveryStatus::Delivered;
        d.attempts = 1;
        assert!(store.finish_delivery(&d, "b").unwrap());
    }
    let mut failed = a_rest[0].clone();
    failed.status = DeliveryStatus::Failed;
    failed.last_error = Some("HTTP 500".into());
    assert!(store.finish_delivery(&failed, "a").unwrap());
    let dead = store.deliveries(Some(DeliveryStatus::Failed), 10).unwrap();
    assert_eq!(dead.len(), 1);
    assert_eq!(dead[0].last_error.as_deref(), Some("HTTP 500"));
    assert_eq!(store.deliveries(Some(DeliveryStatus::Delivered), 10).unwrap().len(), 3);
    // Delivered and dead ones are never claimed; a retry by hand makes one due again.
    let remaining = claim("c", t + 200);
    assert!(remaining.iter().all(|d| !taken.contains(&d.id) && d.id != failed.id));
    assert!(store.retry_delivery(&failed.id, t + 300).unwrap());
    let again = claim("c", t + 300);
    assert!(again.iter().any(|d| d.id == failed.id && d.event_id == failed.event_id));
    let stats = store.outbox_stats().unwrap();
    assert_eq!(stats.pending, 2);
    assert!(stats.oldest_pending.is_some());
}

pub fn concurrent_claims_are_disjoint(store: &dyn Store) {
    store.add_webhook(&endpoint(vec![])).unwrap();
    let batch: Vec<Issuance> = (0..40).map(|i| issuance(&format!("c{i}"), &format!("ct{i}"))).collect();
    store.record_issuances(&batch).unwrap();
    let t = now();
    let claimed: Vec<Vec<String>> = std::thread::scope(|s| {
        let handles: Vec<_> = (0..4)
            .map(|n| {
                s.spawn(move || {
                    let owner = format!("node{n}");
                    let mut mine = Vec::new();
                    loop {
                        let got = store
                            .claim_deliveries(&Claim {
                                owner: &owner,
                                now: t,
                                lease_until: t + 60,
                                limit: 4,
                            })
                            .unwrap();
                        if got.is_empty() {
                            return mine;
                        }
                        mine.extend(got.into_iter().map(|d| d.id.to_string()));
                    }
                })
            })
            .collect();
        handles.into_iter().map(|h| h.join().unwrap()).collect()
    });
    let all: Vec<&String> = claimed.iter().flatten().collect();
    let unique: HashSet<&String> = all.iter().copied().collect();
    assert_eq!(all.len(), 40, "every delivery claimed");
    assert_eq!(unique.len(), 40, "none twice");
}

pub fn expiring_is_announced_once(store: &dyn Store) {
    let t = now();
    let soon = issuance("e1", "et1");
    store.record_issuance(&soon).unwrap();
    // No endpoint wants the event: nothing is marked, so a later endpoint still hears of it.
    assert_eq!(store.emit_expiring(t, t + 2 * 86_400, 100).unwrap(), 0);
    store
        .add_webhook(&endpoint(vec![EventType::CertificateExpiring]))
        .unwrap();
    let revoked = issuance("e2", "et2");
    store.record_issuance(&revoked).unwrap();
    store.revoke(&revoked.serial, Reason::UNSPECIFIED, t).unwrap();
    let mut later = issuance("e3", "et3");
    later.record.not_after = t + 10 * 86_400;
    store.record_issuance(&later).unwrap();
    assert_eq!(
        store.emit_expiring(t, t + 3600, 100).unwrap(),
        0,
        "not within the lead time yet"
    );
    assert_eq!(
        store.emit_expiring(t, t + 2 * 86_400, 100).unwrap(),
        1,
        "active and within it"
    );
    assert_eq!(store.emit_expiring(t, t + 2 * 86_400, 100).unwrap(), 0, "once");
    let events = store.deliveries(None, 100).unwrap();
    assert_eq!(events.len(), 1, "only the endpoint's type: {events:?}");
    assert!(matches!(&events[0].event, Event::CertificateExpiring { cert } if cert.serial == soon.serial));
    assert_eq!(
        store.emit_expiring(t, t + 20 * 86_400, 100).unwrap(),
        1,
        "the later one in its turn"
    );
}

pub fn announced_once(store: &dyn Store) {
    let event = Event::CaExpiring {
        subject: "CN=CA".into(),
        not_after: now() + 86_400,
        sha256: "00".repeat(32),
    };
    assert!(
        !store.announce_once("ca:1", &event, now()).unwrap(),
        "no endpoint wants it"
    );
    store.add_webhook(&endpoint(vec![EventType::CaExpiring])).unwrap();
    assert!(store.announce_once("ca:1", &event, now()).unwrap());
    assert!(!store.announce_once("ca:1", &event, now()).unwrap(), "once");
    assert!(store.announce_once("ca:2", &event, now()).unwrap(), "another key");
    assert_eq!(store.deliveries(None, 10).unwrap().len(), 2);
}

pub fn delivered_ones_are_pruned(store: &dyn Store) {
    store.add_webhook(&endpoint(vec![])).unwrap();
    for i in 0..4 {
        store
            .record_issuance(&issuance(&format!("p{i}"), &format!("pt{i}")))
            .unwrap();
    }
    let t = now();
    let claimed = store
        .claim_deliveries(&Claim {
            owner: "n",
            now: t,
            lease_until: t + 60,
            limit: 3,
        })
        .unwrap();
    for (i, mut d) in claimed.into_iter().enumerate() {
        d.status = if i == 0 {
            DeliveryStatus::Failed
        } else {
            DeliveryStatus::Delivered
        };
        assert!(store.finish_delivery(&d, "n").unwrap());
    }
    assert_eq!(
        store.prune_deliveries(t.saturating_sub(10), 100).unwrap(),
        0,
        "not old enough"
    );
    assert_eq!(store.prune_deliveries(t + 10, 100).unwrap(), 2, "the delivered ones");
    let left = store.deliveries(None, 100).unwrap();
    assert_eq!(left.len(), 2);
    assert!(left.iter().all(|d| d.status != DeliveryStatus::Delivered));
    assert_eq!(store.prune_deliveries(t + 10, 100).unwrap(), 0);
}

/// `store copy` carries the endpoints (secrets sealed as stored), every delivery with its
/// status and id, and what was announced, into a fresh store (redb here; redb into PostgreSQL
/// is `tests/e2e/multinode.rs`): the copy delivers what was pending and announces nothing twice.
pub fn copies_carry_webhooks(store: &dyn Store) {
    let t = now();
    let hook = endpoint(vec![]);
    store.add_webhook(&hook).unwrap();
    store.record_issuance(&issuance("w1", "wt1")).unwrap();
    // Claims read the clock again: an issuance recorded after `t` may be due a second later.
    let claim = Claim {
        owner: "original",
        now: now(),
        lease_until: now() + 60,
        limit: 1,
    };
    let delivered = store.claim_deliveries(&claim).unwrap().remove(0);
    let delivered = scepd::store::outbox::Delivery {
        status: DeliveryStatus::Delivered,
        delivered_at: Some(t),
        ..delivered
    };
    assert!(store.finish_delivery(&delivered, "original").unwrap());
    store.record_issuance(&issuance("w2", "wt2")).unwrap();
    assert_eq!(store.emit_expiring(t, t + 2 * 86_400, 100).unwrap(), 2);
    let ca = Event::CaExpiring {
        subject: "CN=CA".into(),
        not_after: t + 86_400,
        sha256: "11".repeat(32),
    };
    assert!(store.announce_once("ca:copied", &ca, t).unwrap());

    let mut items = Vec::new();
    store
        .export(&mut |item| {
            items.push(item);
            Ok(())
        })
        .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let copy = scepd::store::RedbStore::open(&dir.path().join("copy.redb")).unwrap();
    copy.import(&items).unwrap();

    assert_eq!(copy.webhooks().unwrap(), vec![hook]);
    let by_id = |s: &dyn Store| {
        let mut all: Vec<_> = s
            .deliveries(None, 100)
            .unwrap()
            .into_iter()
            .map(|d| (d.id, d.event_id, d.status, d.event))
            .collect();
        all.sort_by(|a, b| a.0.as_str().cmp(b.0.as_str()));
        all
    };
    assert_eq!(by_id(&copy), by_id(store));
    assert_eq!(by_id(&copy).len(), 5, "2 issued, 2 expiring, 1 ca.expiring");
    // Nothing is announced again, and what was pending is due on the copy.
    assert_eq!(copy.emit_expiring(t, t + 2 * 86_400, 100).unwrap(), 0);
    assert!(!copy.announce_once("ca:copied", &ca, t).unwrap());
    let claimed = copy
        .claim_deliveries(&Claim {
            owner: "copy",
            now: now(),
            lease_until: now() + 60,
            limit: 100,
        })
        .unwrap();
    assert_eq!(claimed.len(), 4, "everything but the delivered one");
}

/// An endpoint is replaced only over the version that was read: of two rotations at once, the
/// later writer must read again (no secret handed out that the store does not keep).
pub fn replacing_an_endpoint_is_compare_and_swap(store: &dyn Store) {
    let first = endpoint(vec![]);
    store.add_webhook(&first).unwrap();
    let second = WebhookEndpoint {
        description: Some("second".into()),
        ..first.clone()
    };
    let stale = WebhookEndpoint {
        description: Some("stale".into()),
        ..first.clone()
    };
    assert!(store.replace_webhook(&first, &second).unwrap());
    assert!(
        !store.replace_webhook(&first, &stale).unwrap(),
        "read before the other wrote"
    );
    assert_eq!(store.webhooks().unwrap(), vec![second.clone()]);
    assert!(store.remove_webhook(&second.id).unwrap());
    assert!(!store.replace_webhook(&second, &stale).unwrap(), "gone");
    assert!(store.webhooks().unwrap().is_empty());
}
