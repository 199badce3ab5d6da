//! What every Store must do, as functions over `&dyn Store`.

use scepd::store::{
    AuditEntry, AuditEvent, CertFilter, CertRecord, CertStatus, ChallengeRecord, ChallengeUsed, CrlState, Issuance,
    IssuanceOutcome, MdmClient, RedbStore, RevokeOutcome, Store, StoreItem, StoredCrl, Supersede,
};
use scepd_ca::{Reason, Serial};

pub(crate) fn now() -> u64 {
    scepd_ca::time::unix_now()
}

fn reason(name: &str) -> Reason {
    Reason::from_name(name).unwrap()
}

pub(crate) fn issuance(device: Option<&str>, tid: &str, csr: &str) -> Issuance {
    let serial = Serial::fresh();
    Issuance {
        serial,
        record: CertRecord {
            device_id: device.map(str::to_string),
            device_bound: device.is_some(),
            transaction_id: tid.into(),
            csr_sha256: csr.into(),
            ..CertRecord::issued(
                &serial,
                format!("CN={}", device.unwrap_or("none")),
                now(),
                now() + 86_400,
                now(),
            )
        },
        der: serial.as_bytes().to_vec(),
        redeems: None,
        supersede: Supersede::Device { max_valid: None },
    }
}

/// An issuance by an unbound request (its device id read from the CSR) with `supersede`.
fn unbound(device: &str, tid: &str, supersede: Supersede) -> Issuance {
    let mut issuance = issuance(Some(device), tid, tid);
    issuance.record.device_bound = false;
    issuance.supersede = supersede;
    issuance
}

pub(crate) fn stored(outcome: IssuanceOutcome) {
    assert!(matches!(outcome, IssuanceOutcome::Stored { .. }), "{outcome:?}");
}

fn challenge(expires_in: i64) -> ChallengeRecord {
    ChallengeRecord {
        expires_at: (now() as i64 + expires_in) as u64,
        created_at: now(),
        minted_by: "test".into(),
        endpoint: "api".into(),
        device_id: None,
        subject_cn: None,
        san: None,
        payload_identifier: None,
        okta_device_access: None,
        redeemed_at: None,
    }
}

pub fn issuance_and_retries(store: &dyn Store) {
    let a = issuance(Some("d1"), "t1", "csr-a");
    stored(store.record_issuance(&a).unwrap());
    assert_eq!(
        store.find_by_transaction("t1").unwrap().unwrap().serial,
        a.record.serial
    );
    let (record, der) = store.certificate(&a.serial).unwrap().unwrap();
    assert_eq!((record.transaction_id.as_str(), der), ("t1", a.der.clone()));
    // Same transaction, same CSR: the first certificate again.
    match store.record_issuance(&issuance(Some("d1"), "t1", "csr-a")).unwrap() {
        IssuanceOutcome::AlreadyIssued(r, d) => assert_eq!((r.serial, d), (a.record.serial, a.der.clone())),
        other => panic!("{other:?}"),
    }
    assert_eq!(
        store.record_issuance(&issuance(Some("d1"), "t1", "csr-b")).unwrap(),
        IssuanceOutcome::TransactionConflict
    );
    let mut taken = issuance(Some("d2"), "t2", "x");
    taken.serial = a.serial;
    assert_eq!(store.record_issuance(&taken).unwrap(), IssuanceOutcome::SerialTaken);
    assert!(
        store.find_by_transaction("t2").unwrap().is_none(),
        "a refused issuance writes nothing"
    );
    assert!(store.certificate(&Serial::fresh()).unwrap().is_none());
}

pub fn challenge_redemption(store: &dyn Store) {
    let (live, expired, unknown) = ([1u8; 32], [2u8; 32], [3u8; 32]);
    store
        .insert_challenges(&[(live, challenge(3600)), (expired, challenge(-1))])
        .unwrap();
    assert!(store.challenge(&live).unwrap().is_some());
    let mut first = issuance(Some("c1"), "r1", "x");
    first.redeems = Some(live);
    stored(store.record_issuance(&first).unwrap());
    assert!(store.challenge(&live).unwrap().unwrap().redeemed_at.is_some());
    for (hash, tid) in [(live, "r2"), (expired, "r3"), (unknown, "r4")] {
        let mut again = issuance(Some("c2"), tid, "x");
        again.redeems = Some(hash);
        assert_eq!(
            store.record_issuance(&again).unwrap(),
            IssuanceOutcome::ChallengeUnavailable
        );
        assert!(store.find_by_transaction(tid).unwrap().is_none());
    }
}

pub fn supersede_and_max_valid(store: &dyn Store) {
    let one = issuance(Some("dev"), "s1", "a");
    let two = issuance(Some("dev"), "s2", "b");
    stored(store.record_issuance(&one).unwrap());
    match store.record_issuance(&two).unwrap() {
        IssuanceOutcome::Stored { superseded, revoked } => {
            assert_eq!(superseded, vec![one.record.serial]);
            assert!(revoked.is_empty());
        }
        other => panic!("{other:?}"),
    }
    let (r1, _) = store.certificate(&one.serial).unwrap().unwrap();
    assert_eq!(
        (r1.status, r1.superseded_by),
        (CertStatus::Superseded, Some(two.record.serial))
    );
    let mut three = issuance(Some("dev"), "s3", "c");
    three.supersede = Supersede::Device { max_valid: Some(1) };
    match store.record_issuance(&three).unwrap() {
        IssuanceOutcome::Stored { revoked, .. } => assert_eq!(revoked.len(), 2),
        other => panic!("{other:?}"),
    }
    let active = store
        .certificates(&CertFilter {
            device_id: Some("dev".into()),
            status: Some(CertStatus::Active),
        })
        .unwrap();
    assert_eq!(active.len(), 1);
    assert_eq!(active[0].serial, three.record.serial);
}

pub fn revocation(store: &dyn Store) {
    let a = issuance(Some("rv"), "v1", "a");
    let b = issuance(Some("rv"), "v2", "b");
    stored(store.record_issuance(&a).unwrap());
    stored(store.record_issuance(&b).unwrap());
    let epoch = store.revocation_epoch().unwrap();
    let revoked_at = match store.revoke(&a.serial, reason("keyCompromise"), now()).unwrap() {
        RevokeOutcome::Revoked(record) => record.revoked_at.expect("revoked_at"),
        other => panic!("{other:?}"),
    };
    assert!(matches!(
        store.revoke(&a.serial, reason("keyCompromise"), now()).unwrap(),
        RevokeOutcome::AlreadyRevoked(_)
    ));
    assert_eq!(
        store.revoke(&Serial::fresh(), reason("unspecified"), now()).unwrap(),
        RevokeOutcome::NotFound
    );
    assert!(store.revocation_epoch().unwrap() > epoch);
    let rows = store.revoked().unwrap();
    // The row keeps the CRL entry: serial, revocation date and reason, encoded.
    let entry = scepd_ca::crl::RevokedEntry {
        serial: a.record.serial,
        revoked_at,
        reason: reason("keyCompromise"),
    }
    .encode()
    .unwrap();
    assert!(rows.iter().any(|r| r.serial == a.record.serial && r.entry == entry));
    // a is superseded by b; b is active: revoking the device takes what is not revoked yet.
    assert_eq!(
        store
            .revoke_device("rv", reason("cessationOfOperation"), now())
            .unwrap(),
        vec![b.record.serial]
    );
    // Superseded certificates past the cutoff are revoked as superseded.
    let c = issuance(Some("old"), "v3", "c");
    let d = issuance(Some("old"), "v4", "d");
    stored(store.record_issuance(&c).unwrap());
    stored(store.record_issuance(&d).unwrap());
    assert!(store.revoke_superseded_before(0, now()).unwrap().is_empty());
    assert_eq!(
        store.revoke_superseded_before(now() + 10, now()).unwrap(),
        vec![c.record.serial]
    );
    assert_eq!(
        store
            .certificate(&c.serial)
            .unwrap()
            .unwrap()
            .0
            .revocation_reason
            .map(Reason::as_str),
        Some("superseded")
    );
}

pub fn crl_publication(store: &dyn Store) {
    // One instant for every CRL built here: reading the clock per CRL made the last comparison
    // fail whenever a second ticked between building the published and the expected one.
    let at = now();
    let crl = |number: u64, epoch: u64| StoredCrl {
        number,
        epoch,
        this_update: at,
        next_update: at + 60,
        der: vec![number as u8],
    };
    assert_eq!(store.latest_crl().unwrap(), CrlState::default());
    assert!(store.publish_crl(&crl(1, 0)).unwrap());
    // Another node that read the same state publishes too late: refused, nothing changes.
    assert!(!store.publish_crl(&crl(1, 5)).unwrap());
    assert!(!store.publish_crl(&crl(3, 5)).unwrap());
    assert!(store.publish_crl(&crl(2, 1)).unwrap());
    let state = store.latest_crl().unwrap();
    assert_eq!(state.last_number, 2);
    assert_eq!(state.published, Some(crl(2, 1)));
}

pub fn identity(store: &dyn Store) {
    assert_eq!(store.bind_identity("ca_sha256", "aa").unwrap(), "aa");
    assert_eq!(
        store.bind_identity("ca_sha256", "bb").unwrap(),
        "aa",
        "the first value stays"
    );
    assert_eq!(store.bind_identity("admin_token_sha256", "cc").unwrap(), "cc");
}

/// Everything exported from one store and imported into an empty one (another backend's too)
/// comes back out the same, and the counters carry on from where they were.
pub fn copy_round_trip(store: &dyn Store) {
    let mut a = issuance(Some("cp"), "c1", "a");
    a.record.challenge = Some(ChallengeUsed::Minted {
        endpoint: "jamf".into(),
        minted_by: "kandji".into(),
    });
    let b = issuance(Some("cp"), "c2", "b");
    stored(store.record_issuance(&a).unwrap());
    stored(store.record_issuance(&b).unwrap());
    store.revoke(&a.serial, reason("keyCompromise"), now()).unwrap();
    store.insert_challenges(&[([3u8; 32], challenge(3600))]).unwrap();
    assert!(store
        .add_mdm_client(&MdmClient {
            name: "kandji".into(),
            password_hmac: "ef".into(),
            created_at: now(),
            challenge_ttl_seconds: None,
        })
        .unwrap());
    store
        .append_audit(&[AuditEntry {
            at: now(),
            event: AuditEvent::AuthFailed,
            actor: "t".into(),
            ..Default::default()
        }])
        .unwrap();
    assert!(store
        .publish_crl(&StoredCrl {
            number: 1,
            epoch: 1,
            this_update: now(),
            next_update: now() + 60,
            der: vec![1]
        })
        .unwrap());
    store.bind_identity("ca_sha256", "aa").unwrap();
    let items = export(store);
    assert!(!store.is_empty().unwrap());

    let dir = tempfile::tempdir().unwrap();
    let copy = RedbStore::open(&dir.path().join("copy.redb")).unwrap();
    assert!(copy.is_empty().unwrap());
    copy.import(&items).unwrap();
    let mut again = export(&copy);
    let mut original = items.clone();
    for list in [&mut again, &mut original] {
        // Counters a backend derives itself (redb: the audit sequence) are not compared.
        list.retain(|i| !matches!(i, StoreItem::Counter(name, _) if name == "audit_seq"));
        list.sort_by_key(|i| format!("{i:?}"));
    }
    assert_eq!(again, original);
    assert_eq!(
        copy.certificate(&a.serial).unwrap().unwrap().0.status,
        CertStatus::Revoked
    );
    assert_eq!(
        store.certificate(&a.serial).unwrap().unwrap().0.challenge,
        a.record.challenge
    );
    assert_eq!(
        copy.certificate(&a.serial).unwrap().unwrap().0.challenge,
        a.record.challenge
    );
    assert_eq!(copy.revoked().unwrap().len(), 1);
    assert_eq!(copy.revocation_epoch().unwrap(), store.revocation_epoch().unwrap());
    assert!(copy
        .publish_crl(&StoredCrl {
            number: 2,
            epoch: 1,
            this_update: now(),
            next_update: now() + 60,
            der: vec![2]
        })
        .unwrap());
    // New certificates and audit entries come after the copied ones.
    let c = issuance(Some("cp"), "c3", "c");
    stored(copy.record_issuance(&c).unwrap());
    assert_eq!(
        copy.certificates(&CertFilter::default()).unwrap()[0].serial,
        c.record.serial
    );
    copy.append_audit(&[AuditEntry {
        at: now(),
        event: AuditEvent::ChallengeMinted,
        actor: "t".into(),
        ..Default::default()
    }])
    .unwrap();
    assert_eq!(
        copy.audit_entries(0, 10).unwrap().last().unwrap().event,
        AuditEvent::ChallengeMinted
    );
}

fn export(store: &dyn Store) -> Vec<StoreItem> {
    let mut items = Vec::new();
    store
        .export(&mut |item| {
            items.push(item);
            Ok(())
        })
        .unwrap();
    items
}

pub fn listing(store: &dyn Store) {
    let items: Vec<Issuance> = (0..5)
        .map(|i| issuance(Some(if i % 2 == 0 { "even" } else { "odd" }), &format!("l{i}"), "x"))
        .collect();
    for it in &items {
        stored(store.record_issuance(it).unwrap());
    }
    let all = store.certificates(&CertFilter::default()).unwrap();
    assert_eq!(all.len(), 5);
    assert_eq!(all[0].serial, items[4].record.serial, "newest first");
    let even = store
        .certificates(&CertFilter {
            device_id: Some("even".into()),
            status: None,
        })
        .unwrap();
    assert_eq!(even.len(), 3);
    // A device name that is a prefix of another is not confused with it.
    stored(store.record_issuance(&issuance(Some("eve"), "l9", "x")).unwrap());
    assert_eq!(
        store
            .certificates(&CertFilter {
                device_id: Some("eve".into()),
                status: None
            })
            .unwrap()
            .len(),
        1
    );
    let (active, soonest) = store.certificate_stats(now()).unwrap();
    assert!(active >= 2 && soonest.is_some());
}

pub fn challenge_sweep(store: &dyn Store) {
    store
        .insert_challenges(&[([7u8; 32], challenge(-10)), ([8u8; 32], challenge(3600))])
        .unwrap();
    assert_eq!(store.challenge_count().unwrap(), 2);
    assert_eq!(store.sweep_challenges(now()).unwrap(), 1);
    assert_eq!(store.challenge_count().unwrap(), 1);
    assert!(store.challenge(&[8u8; 32]).unwrap().is_some());
    store.flush().unwrap();
    store.ping().unwrap();
}

pub fn mdm_clients(store: &dyn Store) {
    let client = MdmClient {
        name: "jamf".into(),
        password_hmac: "ab".into(),
        created_at: now(),
        challenge_ttl_seconds: Some(60),
    };
    assert!(store.add_mdm_client(&client).unwrap());
    assert_eq!(store.mdm_client("jamf").unwrap(), Some(client.clone()));
    // A second add of the name writes nothing; a replacement does.
    assert!(!store
        .add_mdm_client(&MdmClient {
            password_hmac: "xx".into(),
            ..client.clone()
        })
        .unwrap());
    assert!(store
        .replace_mdm_client(&MdmClient {
            password_hmac: "cd".into(),
            ..client.clone()
        })
        .unwrap());
    assert_eq!(store.mdm_clients().unwrap().len(), 1);
    assert_eq!(store.mdm_client("jamf").unwrap().unwrap().password_hmac, "cd");
    assert!(store.remove_mdm_client("jamf").unwrap());
    assert!(!store.remove_mdm_client("jamf").unwrap());
    assert!(store.mdm_client("jamf").unwrap().is_none());
    // Rotating a removed client does not bring it back.
    assert!(!store.replace_mdm_client(&client).unwrap());
    assert!(store.mdm_client("jamf").unwrap().is_none());
}

pub fn audit_trail(store: &dyn Store) {
    let entry = |event: AuditEvent| AuditEntry {
        at: now(),
        event,
        actor: "test".into(),
        ..Default::default()
    };
    let (a, b, c) = (AuditEvent::MdmAdded, AuditEvent::MdmRemoved, AuditEvent::MdmRotated);
    store.append_audit(&[entry(a), entry(b)]).unwrap();
    store.append_audit(&[entry(c)]).unwrap();
    let all = store.audit_entries(0, 100).unwrap();
    assert_eq!(all.iter().map(|e| e.event).collect::<Vec<_>>(), [a, b, c]);
    assert!(all.windows(2).all(|w| w[0].seq < w[1].seq));
    assert_eq!(store.audit_entries(all[0].seq, 1).unwrap()[0].event, b);
    assert!(
        store.audit_entries(u64::MAX, 10).unwrap().is_empty(),
        "nothing after the last possible number"
    );
}

pub fn batch_sees_earlier_items(store: &dyn Store) {
    let first = issuance(Some("b"), "bt", "same");
    let retry = issuance(Some("b"), "bt", "same");
    let outcomes = store.record_issuances(&[first.clone(), retry]).unwrap();
    assert!(matches!(outcomes[0], IssuanceOutcome::Stored { .. }));
    assert!(matches!(&outcomes[1], IssuanceOutcome::AlreadyIssued(r, _) if r.serial == first.record.serial));
}

pub fn backup_copy_opens(store: &dyn Store) {
    let a = issuance(Some("bk"), "k1", "x");
    stored(store.record_issuance(&a).unwrap());
    let dir = tempfile::tempdir().unwrap();
    let copy = dir.path().join("copy.redb");
    store.backup_to(&copy).unwrap();
    let reopened = scepd::store::RedbStore::open(&copy).unwrap();
    assert_eq!(
        reopened.certificate(&a.serial).unwrap().unwrap().0.serial,
        a.record.serial
    );
}

pub fn backup_refused(store: &dyn Store) {
    let dir = tempfile::tempdir().unwrap();
    assert!(matches!(
        store.backup_to(&dir.path().join("copy")),
        Err(scepd::store::StoreError::Unsupported(_))
    ));
}

/// 32 threads redeem one challenge at once, each through its own issuance: exactly one wins
/// (each thread stands for a node: the store alone decides).
pub fn concurrent_redemptions(store: &dyn Store) {
    let hash = [9u8; 32];
    store.insert_challenges(&[(hash, challenge(3600))]).unwrap();
    let winners = std::sync::atomic::AtomicUsize::new(0);
    std::thread::scope(|scope| {
        for i in 0..32 {
            let winners = &winners;
            scope.spawn(move || {
                let mut it = issuance(Some(&format!("race-{i}")), &format!("race-{i}"), "x");
                it.redeems = Some(hash);
                match store.record_issuance(&it).unwrap() {
                    IssuanceOutcome::Stored { .. } => {
                        winners.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
                    }
                    IssuanceOutcome::ChallengeUnavailable => {}
                    other => panic!("{other:?}"),
                }
            });
        }
    });
    assert_eq!(winners.into_inner(), 1);
    assert_eq!(store.certificates(&CertFilter::default()).unwrap().len(), 1);
}

/// An unbound request never causes another certificate's revocation: keep-both supersedes
/// nothing; allow supersedes without revoking, now or later; a renewal that is not vouched for
/// supersedes only the renewed certificate.
pub fn unbound_issuances_never_revoke(store: &dyn Store) {
    let status = |i: &Issuance| store.certificate(&i.serial).unwrap().unwrap().0.status;
    let victim = issuance(Some("victim"), "u1", "v");
    stored(store.record_issuance(&victim).unwrap());
    let kept = unbound("victim", "u2", Supersede::Nothing);
    match store.record_issuance(&kept).unwrap() {
        IssuanceOutcome::Stored { superseded, revoked } => assert!(superseded.is_empty() && revoked.is_empty()),
        other => panic!("{other:?}"),
    }
    assert_eq!(
        (status(&victim), status(&kept)),
        (CertStatus::Active, CertStatus::Active)
    );
    let allowed = unbound("victim", "u3", Supersede::DeviceWithoutRevocation);
    match store.record_issuance(&allowed).unwrap() {
        IssuanceOutcome::Stored { superseded, revoked } => {
            assert_eq!(superseded.len(), 2);
            assert!(revoked.is_empty());
        }
        other => panic!("{other:?}"),
    }
    assert!(
        store.revoke_superseded_before(now() + 10, now()).unwrap().is_empty(),
        "superseded by an unbound request: never due"
    );
    assert_eq!(status(&victim), CertStatus::Superseded);
    // A renewal of an unbound certificate replaces only that one.
    let other = issuance(Some("shared"), "u4", "o");
    let renewed = unbound("shared", "u5", Supersede::Nothing);
    stored(store.record_issuance(&other).unwrap());
    stored(store.record_issuance(&renewed).unwrap());
    let renewal = unbound("shared", "u6", Supersede::Only(renewed.record.serial));
    match store.record_issuance(&renewal).unwrap() {
        IssuanceOutcome::Stored { superseded, .. } => assert_eq!(superseded, vec![renewed.record.serial]),
        other => panic!("{other:?}"),
    }
    assert_eq!(status(&other), CertStatus::Active);
    // A vouched-for issuance still supersedes everything and enforces the cap.
    let mut bound = issuance(Some("victim"), "u7", "b");
    bound.supersede = Supersede::Device { max_valid: Some(1) };
    match store.record_issuance(&bound).unwrap() {
        IssuanceOutcome::Stored { revoked, .. } => assert_eq!(revoked.len(), 3),
        other => panic!("{other:?}"),
    }
}

/// CA rollover: one next CA at a time, its activation, each issuer's CRL numbered on its own,
/// certificates and revocations carrying their issuer, and all of it through `store copy`.
pub fn ca_generations(store: &dyn Store) {
    use scepd::store::{Activation, AddGeneration, CaGenerationRecord, CaStore};
    let id = |b: u8| -> scepd_ca::IssuerId { hex::encode([b; 20]).parse().unwrap() };
    let generation = |b: u8| CaGenerationRecord {
        issuer: id(b),
        ca_der: vec![b; 3],
        ra_der: Some(vec![b; 2]),
        added_at: now(),
        activate_at: None,
        removed_at: None,
        seq: 0,
    };
    assert!(store.ca_generations().unwrap().is_empty());
    assert_eq!(store.activate_next_ca(now()).unwrap(), Activation::NoNext);
    assert_eq!(
        store.add_ca_generation(&generation(1), now()).unwrap(),
        AddGeneration::Added
    );
    assert_eq!(
        store.add_ca_generation(&generation(1), now()).unwrap(),
        AddGeneration::Duplicate
    );
    assert_eq!(
        store.add_ca_generation(&generation(2), now()).unwrap(),
        AddGeneration::NextExists
    );
    let at = now() + 100;
    let Activation::Scheduled(activated) = store.activate_next_ca(at).unwrap() else {
        panic!("the next CA is activated")
    };
    assert_eq!(activated.activate_at, Some(at));
    assert_eq!(
        store.activate_next_ca(at).unwrap(),
        Activation::NoNext,
        "activated once"
    );
    // Scheduled for later: still the next CA until then.
    assert_eq!(
        store.add_ca_generation(&generation(2), now()).unwrap(),
        AddGeneration::NextExists
    );
    assert_eq!(
        store.add_ca_generation(&generation(2), at).unwrap(),
        AddGeneration::Added
    );
    let all = store.ca_generations().unwrap();
    assert_eq!(all.len(), 2);
    assert_eq!(all[0], activated);
    assert_eq!(all[1].activate_at, None);
    // Numbered in the order they were recorded, whatever their ids or times.
    assert_eq!((all[0].seq, all[1].seq), (1, 2));

    // Each issuer's CRL numbers start at one, apart from the original CA's.
    let crl = |number: u64| StoredCrl {
        number,
        epoch: 0,
        this_update: at,
        next_update: at + 60,
        der: vec![number as u8],
    };
    assert!(store.publish_crl(&crl(1)).unwrap());
    assert!(store.publish_crl(&crl(2)).unwrap());
    assert_eq!(store.issuer_crl(&id(1)).unwrap(), CrlState::default());
    assert!(!store.publish_issuer_crl(&id(1), &crl(3)).unwrap());
    assert!(store.publish_issuer_crl(&id(1), &crl(1)).unwrap());
    assert!(
        !store.publish_issuer_crl(&id(1), &crl(1)).unwrap(),
        "another node was first"
    );
    assert_eq!(store.issuer_crl(&id(1)).unwrap().published, Some(crl(1)));
    assert_eq!(store.issuer_crl(&id(2)).unwrap(), CrlState::default());
    assert_eq!(store.latest_crl().unwrap().last_number, 2);

    // A certificate records its issuer; its revocation row too (the CRL filters on it).
    let mut a = issuance(Some("ca-gen"), "g1", "a");
    a.record.issuer = Some(id(1));
    stored(store.record_issuance(&a).unwrap());
    let original = issuance(Some("ca-gen-original"), "g2", "b");
    stored(store.record_issuance(&original).unwrap());
    assert_eq!(store.certificate(&a.serial).unwrap().unwrap().0.issuer, Some(id(1)));
    assert_eq!(store.certificate(&original.serial).unwrap().unwrap().0.issuer, None);
    store.revoke(&a.serial, reason("keyCompromise"), now()).unwrap();
    store.revoke(&original.serial, reason("keyCompromise"), now()).unwrap();
    let rows = store.revoked().unwrap();
    assert_eq!(rows.iter().find(|r| r.serial == a.serial).unwrap().issuer, Some(id(1)));
    assert_eq!(rows.iter().find(|r| r.serial == original.serial).unwrap().issuer, None);

    // Removed (`scepd ca remove`): marked once, kept, and never recorded again.
    assert!(store.remove_ca_generation(&id(1), at + 5).unwrap());
    assert!(!store.remove_ca_generation(&id(1), at + 6).unwrap(), "once");
    assert!(!store.remove_ca_generation(&id(9), at + 6).unwrap(), "unknown");
    let removed = store.ca_generations().unwrap();
    assert_eq!(removed[0].removed_at, Some(at + 5));
    assert_eq!(removed[0].activate_at, Some(at));
    assert_eq!(removed[1].removed_at, None);
    assert_eq!(
        store.add_ca_generation(&generation(1), at + 10).unwrap(),
        AddGeneration::Duplicate
    );

    // `store copy` carries the generations (removed ones too) and their CRLs.
    let items = export(store);
    let dir = tempfile::tempdir().unwrap();
    let copy = RedbStore::open(&dir.path().join("copy.redb")).unwrap();
    copy.import(&items).unwrap();
    assert_eq!(copy.ca_generations().unwrap(), store.ca_generations().unwrap());
    assert_eq!(copy.issuer_crl(&id(1)).unwrap(), store.issuer_crl(&id(1)).unwrap());
    assert_eq!(copy.certificate(&a.serial).unwrap().unwrap().0.issuer, Some(id(1)));
}
