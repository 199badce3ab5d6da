//! What every store must do for the web console: accounts, sessions, and lists read a page at
//! a time, alike on both backends.

use scepd::store::console::{Account, AuditQuery, CertQuery, Role, Session};
use scepd::store::{AuditEntry, AuditEvent, CertStatus, RedbStore, Store, StoreItem};
use scepd_ca::{Reason, Serial};

use crate::contract::{issuance, now, stored};

macro_rules! console_cases {
    ($($case:ident),* $(,)?) => {
        mod console_redb {
            $(
                #[test]
                fn $case() {
                    let Some((store, guard)) = crate::redb(concat!("console_redb::", stringify!($case))) else { return };
                    super::$case(store.as_ref());
                    drop(store);
                    drop(guard);
                }
            )*
        }
        mod console_postgres {
            $(
                #[test]
                fn $case() {
                    let Some((store, guard)) = crate::postgres(concat!("console_postgres::", stringify!($case))) else { return };
                    super::$case(store.as_ref());
                    drop(store);
                    drop(guard);
                }
            )*
        }
    };
}

console_cases!(
    accounts,
    sessions,
    certificate_pages,
    device_pages,
    audit_pages,
    summary,
    accounts_are_copied,
);

fn account(name: &str, role: Role) -> Account {
    Account {
        name: name.into(),
        role,
        password_hash: format!("$argon2id$fake${name}"),
        created_at: now(),
    }
}

fn session(actor: &str, created_at: u64, last_seen: u64) -> Session {
    Session {
        actor: actor.into(),
        role: Role::Viewer,
        created_at,
        last_seen,
    }
}

pub fn accounts(store: &dyn Store) {
    let c = store.console();
    assert!(c.add_account(&account("olga", Role::Operator)).unwrap());
    assert!(
        !c.add_account(&account("olga", Role::Viewer)).unwrap(),
        "a second add of one name"
    );
    assert!(c.add_account(&account("vera", Role::Viewer)).unwrap());
    assert_eq!(c.account("olga").unwrap().unwrap().role, Role::Operator);
    assert_eq!(c.accounts().unwrap().len(), 2);
    // Removing an account ends its sessions, not the others'.
    c.put_session(&[1; 32], &session("olga", now(), now())).unwrap();
    c.put_session(&[2; 32], &session("vera", now(), now())).unwrap();
    assert!(c.remove_account("olga").unwrap());
    assert!(!c.remove_account("olga").unwrap());
    assert!(c.account("olga").unwrap().is_none());
    assert!(c.session(&[1; 32]).unwrap().is_none());
    assert!(c.session(&[2; 32]).unwrap().is_some());
}

pub fn sessions(store: &dyn Store) {
    let c = store.console();
    let t = now();
    c.put_session(&[1; 32], &session("a", t, t)).unwrap();
    c.put_session(&[2; 32], &session("b", t - 100, t - 100)).unwrap();
    c.put_session(&[3; 32], &session("c", t - 10_000, t)).unwrap();
    // A touch updates last_seen.
    assert!(c.touch_session(&[2; 32], t - 50).unwrap());
    assert_eq!(c.session(&[2; 32]).unwrap().unwrap().last_seen, t - 50);
    // Idle since before t-60, or created before t-5000: b is not idle (seen at t-50); c is too old.
    assert_eq!(c.sweep_sessions(t - 60, t - 5000).unwrap(), 1);
    assert!(c.session(&[3; 32]).unwrap().is_none());
    assert_eq!(c.sweep_sessions(t - 10, t - 5000).unwrap(), 1, "b is idle past t-10");
    c.remove_session(&[1; 32]).unwrap();
    assert!(c.session(&[1; 32]).unwrap().is_none());
    // A touch after the session ended (signed out on another node) does not bring it back.
    assert!(!c.touch_session(&[1; 32], t).unwrap());
    assert!(c.session(&[1; 32]).unwrap().is_none());
}

pub fn certificate_pages(store: &dyn Store) {
    let items: Vec<_> = (0..25)
        .map(|i| issuance(Some(&format!("dev{i:02}")), &format!("p{i}"), "x"))
        .collect();
    for it in &items {
        stored(store.record_issuance(it).unwrap());
    }
    store.revoke(&items[3].serial, Reason::KEY_COMPROMISE, now()).unwrap();
    store.revoke(&items[7].serial, Reason::KEY_COMPROMISE, now()).unwrap();
    let c = store.console();
    // Every certificate once, in serial order, page by page.
    let mut seen: Vec<Serial> = Vec::new();
    let mut query = CertQuery::default();
    loop {
        let page = c.certificate_page(&query, now(), 10).unwrap();
        assert!(page.records.len() <= 10);
        seen.extend(page.records.iter().map(|r| r.serial));
        match page.next {
            Some(next) => query.after = Some(next),
            None => break,
        }
    }
    let mut expected: Vec<Serial> = items.iter().map(|i| i.serial).collect();
    expected.sort();
    assert_eq!(seen, expected);
    let revoked = CertQuery {
        status: Some(CertStatus::Revoked),
        ..Default::default()
    };
    assert_eq!(c.certificate_page(&revoked, now(), 10).unwrap().records.len(), 2);
    let active = CertQuery {
        status: Some(CertStatus::Active),
        ..Default::default()
    };
    assert_eq!(c.certificate_page(&active, now(), 50).unwrap().records.len(), 23);
    let by_subject = CertQuery {
        subject: Some("cn=DEV1".into()),
        ..Default::default()
    };
    let found = c.certificate_page(&by_subject, now(), 50).unwrap().records;
    assert_eq!(found.len(), 10, "dev10..dev19, case-insensitive");
}

pub fn device_pages(store: &dyn Store) {
    for (i, device) in ["mac-a", "mac-a", "mac-b", "mac-c", "ipad-1"].iter().enumerate() {
        stored(
            store
                .record_issuance(&issuance(Some(device), &format!("d{i}"), "x"))
                .unwrap(),
        );
    }
    let c = store.console();
    let page = c.device_page("mac", None, 2).unwrap();
    let ids: Vec<(&str, u64)> = page.iter().map(|r| (r.device_id.as_str(), r.certificates)).collect();
    assert_eq!(ids, [("mac-a", 2), ("mac-b", 1)]);
    let rest = c.device_page("mac", Some("mac-b"), 2).unwrap();
    assert_eq!(rest.iter().map(|r| r.device_id.as_str()).collect::<Vec<_>>(), ["mac-c"]);
    assert_eq!(c.device_page("", None, 10).unwrap().len(), 4);
    assert!(c.device_page("zz", None, 10).unwrap().is_empty());
}

pub fn audit_pages(store: &dyn Store) {
    let entry = |event: AuditEvent, actor: &str| AuditEntry {
        at: now(),
        event,
        actor: actor.into(),
        ..Default::default()
    };
    let entries: Vec<AuditEntry> = (0..30)
        .map(|i| {
            let event = if i % 3 == 0 {
                AuditEvent::MdmAdded
            } else {
                AuditEvent::ChallengeMinted
            };
            entry(event, if i % 2 == 0 { "olga" } else { "jamf" })
        })
        .collect();
    store.append_audit(&entries).unwrap();
    let c = store.console();
    let first = c.audit_page(&AuditQuery::default(), 12).unwrap();
    assert_eq!(first.entries.len(), 12);
    assert!(first.entries.windows(2).all(|w| w[0].seq > w[1].seq), "newest first");
    let rest = c
        .audit_page(
            &AuditQuery {
                before: first.next,
                ..Default::default()
            },
            100,
        )
        .unwrap();
    assert_eq!(rest.entries.len(), 18);
    assert!(rest.next.is_none());
    assert!(rest.entries[0].seq < first.entries[11].seq);
    let filtered = c
        .audit_page(
            &AuditQuery {
                event: Some(AuditEvent::MdmAdded),
                actor: Some("olga".into()),
                before: None,
            },
            100,
        )
        .unwrap();
    // i % 3 == 0 and i % 2 == 0: 0, 6, 12, 18, 24.
    assert_eq!(filtered.entries.len(), 5);
}

pub fn summary(store: &dyn Store) {
    let day = 86_400;
    let mut items = Vec::new();
    for i in 0..6u64 {
        let mut it = issuance(Some(&format!("s{i}")), &format!("s{i}"), "x");
        it.record.issued_at = now() - i * day;
        it.record.not_after = now() + (i + 1) * 20 * day;
        items.push(it);
    }
    // One expired certificate.
    let mut old = issuance(Some("old"), "old", "x");
    old.record.issued_at = now() - 400 * day;
    old.record.not_after = now() - day;
    items.push(old);
    for it in &items {
        stored(store.record_issuance(it).unwrap());
    }
    store.revoke(&items[5].serial, Reason::UNSPECIFIED, now()).unwrap();
    let s = store.console().certificate_summary(now(), 30, 30 * day).unwrap();
    assert_eq!((s.active, s.superseded, s.revoked, s.expired), (5, 0, 1, 1));
    assert_eq!(s.issued_per_day.len(), 30);
    assert_eq!(
        s.issued_per_day.iter().sum::<u64>(),
        6,
        "the expired one was issued long ago"
    );
    assert_eq!(*s.issued_per_day.last().unwrap(), 1, "today");
    // Active and expiring within 30 days: only s0 (20 days).
    assert_eq!(s.expiring_total, 1);
    assert_eq!(s.expiring[0].serial, items[0].serial);
}

/// `scepd store copy` carries the accounts (with their hashes), not the sessions.
pub fn accounts_are_copied(store: &dyn Store) {
    let c = store.console();
    c.add_account(&account("olga", Role::Operator)).unwrap();
    c.put_session(&[9; 32], &session("olga", now(), now())).unwrap();
    let mut items = Vec::new();
    store
        .export(&mut |item| {
            items.push(item);
            Ok(())
        })
        .unwrap();
    assert!(items.iter().any(
        |i| matches!(i, StoreItem::ConsoleAccount(a) if a.name == "olga" && a.password_hash == "$argon2id$fake$olga")
    ));
    let dir = tempfile::tempdir().unwrap();
    let copy = RedbStore::open(&dir.path().join("copy.redb")).unwrap();
    copy.import(&items).unwrap();
    let copied = copy.console().account("olga").unwrap().unwrap();
    assert_eq!(
        (copied.role, copied.password_hash.as_str()),
        (Role::Operator, "$argon2id$fake$olga")
    );
    assert!(copy.console().session(&[9; 32]).unwrap().is_none());
}
