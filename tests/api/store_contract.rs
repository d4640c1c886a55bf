//! The store contract: one test body per behaviour, run on the memory store and on Redis (the
//! harness's private redis-server, a random key prefix per test). The backends must agree exactly.

use std::sync::Arc;
use std::time::Duration;

use twofactor::domain::Method;
use twofactor::store::{
    AttemptKeys, Checked, Claim, CodeCheck, Judged, Lockout, Reserve, SendAsk, SendKeys, Started,
    Store, TotpCheck, Ttl, Verdict,
};

use crate::helpers::{rand_u64, redis};

/// Runs `body(store, prefix)` on both backends.
macro_rules! both_backends {
    ($name:ident, $body:ident) => {
        mod $name {
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn memory() {
                let store = twofactor::store::connect("memory://").await.unwrap();
                super::with_customer(&store).await;
                super::$body(store, super::prefix()).await
            }
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn redis() {
                let store = twofactor::store::connect(&super::redis().url())
                    .await
                    .unwrap();
                super::with_customer(&store).await;
                super::$body(store, super::prefix()).await
            }
        }
    };
}

/// The customer record every code check in these tests reads: a customer with no contacts of
/// revision "" (the same for every test, so tests sharing one Redis agree on it).
const RECORD: &str = "aux:record";

async fn with_customer(store: &Arc<dyn Store>) {
    store.set(RECORD, "{}", None).await.unwrap();
}

/// Writes a pending code as a send does (through `reserve_send`, under a limit never reached), for
/// the tests of what happens to it afterwards; its counter and remembered method go outside the
/// test's prefix, so listings under the prefix hold only the code.
async fn put_code(store: &Arc<dyn Store>, key: &str, digest: &str, method: &str, ttl: Duration) {
    let (sends, choice) = (format!("aux:{key}:sends"), format!("aux:{key}:choice"));
    let reserved = store
        .reserve_send(&Reserve {
            sends: &sends,
            code: key,
            choice: &choice,
            max: u32::MAX,
            window: ttl,
            digest,
            method: Method::from_stored(method).unwrap(),
            rev: "",
            ttl,
        })
        .await
        .unwrap();
    assert!(reserved.is_some());
}

fn prefix() -> String {
    format!("sc{:016x}:", rand_u64())
}

/// A TTL for the expiry phases. Before it runs out a test makes at most two round trips, so a second
/// leaves ample room on a loaded machine; every "still there" phase with more steps uses `LONG`.
const SHORT: Duration = Duration::from_secs(1);
const LONG: Duration = Duration::from_secs(60);
/// A TTL for keys only ever checked after expiry (nothing reads them while they live).
const BRIEF: Duration = Duration::from_millis(300);

/// Waits until a key set `ttl` ago has expired, with half a second to spare.
async fn past(ttl: Duration) {
    tokio::time::sleep(ttl + Duration::from_millis(500)).await;
}

async fn set_get_and_expiry(store: Arc<dyn Store>, p: String) {
    let (keep, brief, missing) = (
        format!("{p}keep"),
        format!("{p}brief"),
        format!("{p}missing"),
    );

    store.set(&keep, "v1", None).await.unwrap();
    assert_eq!(store.get(&keep).await.unwrap().as_deref(), Some("v1"));
    assert_eq!(store.get(&missing).await.unwrap(), None, "never set");

    store.set(&keep, "v3", None).await.unwrap();
    assert_eq!(
        store.get(&keep).await.unwrap().as_deref(),
        Some("v3"),
        "set replaces"
    );

    // A set without a TTL over one with a TTL keeps the value for good (as Redis SET does).
    let renewed = format!("{p}renewed");
    store.set(&renewed, "a", Some(SHORT)).await.unwrap();
    store.set(&renewed, "b", None).await.unwrap();

    // Set last, read back at once: one round trip inside SHORT.
    store.set(&brief, "v2", Some(SHORT)).await.unwrap();
    assert_eq!(store.get(&brief).await.unwrap().as_deref(), Some("v2"));
    past(SHORT).await;
    assert_eq!(store.get(&brief).await.unwrap(), None, "expired");
    assert_eq!(
        store.get(&keep).await.unwrap().as_deref(),
        Some("v3"),
        "no TTL, no expiry"
    );
    assert_eq!(
        store.get(&renewed).await.unwrap().as_deref(),
        Some("b"),
        "the TTL went with the old value"
    );
}
both_backends!(set_get_and_expiry_agree, set_get_and_expiry);

async fn set_nx_sets_only_once(store: Arc<dyn Store>, p: String) {
    // Set only once, on a key that lives through every step.
    let k = format!("{p}nx");
    assert!(
        store.set_nx(&k, "first", LONG).await.unwrap(),
        "absent: set"
    );
    assert!(
        !store.set_nx(&k, "second", LONG).await.unwrap(),
        "present: not set"
    );
    assert_eq!(
        store.get(&k).await.unwrap().as_deref(),
        Some("first"),
        "the loser changes nothing"
    );

    // Expiry, on a key of its own: set, refused once (one round trip inside SHORT), then expired.
    let short = format!("{p}nx-short");
    assert!(store.set_nx(&short, "first", SHORT).await.unwrap());
    assert!(
        !store.set_nx(&short, "second", SHORT).await.unwrap(),
        "present until its TTL ends"
    );
    past(SHORT).await;
    assert!(
        store.set_nx(&short, "third", SHORT).await.unwrap(),
        "expired counts as absent"
    );
    assert_eq!(store.get(&short).await.unwrap().as_deref(), Some("third"));
}
both_backends!(set_nx_sets_only_once_agree, set_nx_sets_only_once);

async fn del_reports_what_it_deleted(store: Arc<dyn Store>, p: String) {
    let k = format!("{p}del");
    store.set(&k, "v", None).await.unwrap();
    assert!(store.del(&k).await.unwrap(), "deleted");
    assert!(!store.del(&k).await.unwrap(), "nothing left to delete");
    assert_eq!(store.get(&k).await.unwrap(), None);

    let code = format!("{p}code");
    put_code(&store, &code, "d", "email", LONG).await;
    assert!(
        store.del(&code).await.unwrap(),
        "a pending code is deleted too"
    );
    assert_eq!(store.pending_method(&code).await.unwrap(), None);
}
both_backends!(
    del_reports_what_it_deleted_agree,
    del_reports_what_it_deleted
);

async fn incr_window_counts_within_a_fixed_window(store: Arc<dyn Store>, p: String) {
    let k = format!("{p}count");
    let window = Duration::from_secs(2);
    assert_eq!(store.incr_window(&k, window).await.unwrap(), 1);
    assert_eq!(store.incr_window(&k, window).await.unwrap(), 2);
    // 0.8 s in: over a second to spare inside the window.
    tokio::time::sleep(Duration::from_millis(800)).await;
    assert_eq!(
        store.incr_window(&k, window).await.unwrap(),
        3,
        "still in the window"
    );
    // The window started at the first increment: later increments do not extend it. 2.5 s after the
    // first increment, half a second past its window (but not past one started by the third).
    tokio::time::sleep(Duration::from_millis(1700)).await;
    assert_eq!(
        store.incr_window(&k, window).await.unwrap(),
        1,
        "a new window"
    );
    assert_eq!(
        store.get(&k).await.unwrap().as_deref(),
        Some("1"),
        "readable as text"
    );
}
both_backends!(
    incr_window_counts_within_a_fixed_window_agree,
    incr_window_counts_within_a_fixed_window
);

async fn decr_never_goes_below_zero(store: Arc<dyn Store>, p: String) {
    let missing = format!("{p}never");
    store.decr(&missing).await.unwrap();
    assert_eq!(
        store.get(&missing).await.unwrap(),
        None,
        "decr creates nothing"
    );

    let k = format!("{p}count");
    store.incr_window(&k, LONG).await.unwrap();
    store.incr_window(&k, LONG).await.unwrap();
    store.decr(&k).await.unwrap();
    assert_eq!(store.get(&k).await.unwrap().as_deref(), Some("1"));
    store.decr(&k).await.unwrap();
    store.decr(&k).await.unwrap();
    assert_eq!(
        store.get(&k).await.unwrap().as_deref(),
        Some("0"),
        "floor at zero"
    );
    assert_eq!(
        store.incr_window(&k, LONG).await.unwrap(),
        1,
        "counting resumes from zero"
    );
}
both_backends!(decr_never_goes_below_zero_agree, decr_never_goes_below_zero);

/// The keys of one customer's verification, under the test's prefix.
fn attempt_keys(p: &str) -> AttemptKeys {
    AttemptKeys {
        lock: format!("{p}lock"),
        failures: format!("{p}failures"),
        accepted: format!("{p}accepted"),
        choice: format!("{p}choice"),
        code: format!("{p}code"),
        streak: format!("{p}streak"),
        record: RECORD.to_string(),
    }
}

/// A lockout that never gets in the way of the code rules under test.
const LENIENT: Lockout = Lockout {
    max: 1000,
    window: LONG,
    lock_for: LONG,
    grace: Duration::ZERO,
    discard_code_on_lock: true,
    max_in_a_row: 1000,
};

async fn check(store: &Arc<dyn Store>, p: &str, digest: &str, tries: u32) -> Judged {
    verify(store, p, &[digest], &LENIENT, tries).await.judged
}

async fn verify(
    store: &Arc<dyn Store>,
    p: &str,
    digests: &[&str],
    rule: &Lockout,
    tries: u32,
) -> Verdict {
    let candidates: Vec<String> = digests.iter().map(|d| d.to_string()).collect();
    check_email(store, &attempt_keys(p), &candidates, rule, tries, true).await
}

/// A check of a code sent by email, named as such.
async fn check_email(
    store: &Arc<dyn Store>,
    keys: &AttemptKeys,
    candidates: &[String],
    rule: &Lockout,
    tries: u32,
    judge: bool,
) -> Verdict {
    let ask = CodeCheck {
        named: Some(Method::Email),
        email_offered: true,
        sms_offered: true,
        email: candidates,
        sms: &[],
        max_tries: tries,
        known: None,
    };
    match store.check_code(keys, &ask, rule, judge).await.unwrap() {
        Checked::Judged(Some(Method::Email), verdict) => verdict,
        other => panic!("not judged as email: {other:?}"),
    }
}

async fn verify_code_is_atomic_limited_and_single_use(store: Arc<dyn Store>, p: String) {
    let k = format!("{p}code");
    assert_eq!(
        check(&store, &p, "right", 3).await,
        Judged::Missing,
        "none pending"
    );

    // Wrong tries count up to the limit, and the last one discards the code.
    put_code(&store, &k, "right", "sms", LONG).await;
    assert_eq!(
        store.pending_method(&k).await.unwrap().as_deref(),
        Some("sms")
    );
    assert_eq!(check(&store, &p, "wrong", 3).await, Judged::Wrong);
    assert_eq!(check(&store, &p, "wrong", 3).await, Judged::Wrong);
    assert_eq!(check(&store, &p, "wrong", 3).await, Judged::Exhausted);
    assert_eq!(
        check(&store, &p, "right", 3).await,
        Judged::Missing,
        "gone after the last try"
    );

    // A match deletes it: single use.
    put_code(&store, &k, "right", "email", LONG).await;
    assert_eq!(check(&store, &p, "wrong", 3).await, Judged::Wrong);
    assert_eq!(check(&store, &p, "right", 3).await, Judged::Accepted);
    assert_eq!(
        check(&store, &p, "right", 3).await,
        Judged::Missing,
        "single use"
    );

    // put_code replaces the pending code and its wrong tries.
    put_code(&store, &k, "old", "email", LONG).await;
    assert_eq!(check(&store, &p, "wrong", 3).await, Judged::Wrong);
    assert_eq!(check(&store, &p, "wrong", 3).await, Judged::Wrong);
    put_code(&store, &k, "new", "email", LONG).await;
    assert_eq!(
        check(&store, &p, "old", 3).await,
        Judged::Wrong,
        "replaced, tries reset"
    );
    assert_eq!(check(&store, &p, "new", 3).await, Judged::Accepted);

    // Any candidate matches: a code written under either key of a rotation.
    put_code(&store, &k, "under-old-key", "email", LONG).await;
    let v = verify(&store, &p, &["under-new-key", "under-old-key"], &LENIENT, 3).await;
    assert_eq!(v.judged, Judged::Accepted);

    // One try allowed: the first wrong one exhausts it.
    put_code(&store, &k, "right", "email", LONG).await;
    assert_eq!(check(&store, &p, "wrong", 1).await, Judged::Exhausted);

    // Expiry: pending (one round trip inside SHORT), then gone.
    put_code(&store, &k, "right", "email", SHORT).await;
    assert_eq!(
        check(&store, &p, "wrong", 3).await,
        Judged::Wrong,
        "pending until its TTL ends"
    );
    past(SHORT).await;
    assert_eq!(
        check(&store, &p, "right", 3).await,
        Judged::Missing,
        "expired"
    );
    assert_eq!(store.pending_method(&k).await.unwrap(), None);
}
both_backends!(
    verify_code_is_atomic_limited_and_single_use_agree,
    verify_code_is_atomic_limited_and_single_use
);

async fn the_last_allowed_attempt_locks(store: Arc<dyn Store>, p: String) {
    let rule = Lockout { max: 3, ..LENIENT };
    let k = format!("{p}code");
    put_code(&store, &k, "right", "email", LONG).await;

    let first = verify(&store, &p, &["wrong"], &rule, 10).await;
    let second = verify(&store, &p, &["wrong"], &rule, 10).await;
    let third = verify(&store, &p, &["wrong"], &rule, 10).await;
    let after = verify(&store, &p, &["right"], &rule, 10).await;

    assert!(!first.locked_now && !second.locked_now);
    assert_eq!(third.judged, Judged::Wrong);
    assert!(third.locked_now, "the third of three allowed locks");
    assert_eq!(after.judged, Judged::Locked, "even the right code");
    assert_eq!(
        store.pending_method(&k).await.unwrap(),
        None,
        "code discarded"
    );

    // A right code resets the count, and forgets the remembered method.
    let q = format!("{p}q:");
    let keys = attempt_keys(&q);
    store.set(&keys.choice, "email", Some(LONG)).await.unwrap();
    put_code(&store, &keys.code, "right", "email", LONG).await;
    verify(&store, &q, &["wrong"], &rule, 10).await;
    verify(&store, &q, &["wrong"], &rule, 10).await;
    assert_eq!(
        verify(&store, &q, &["right"], &rule, 10).await.judged,
        Judged::Accepted
    );
    assert_eq!(store.get(&keys.failures).await.unwrap(), None);
    assert_eq!(store.get(&keys.choice).await.unwrap(), None);
    assert!(!verify(&store, &q, &["wrong"], &rule, 10).await.locked_now);
}
both_backends!(
    the_last_allowed_attempt_locks_agree,
    the_last_allowed_attempt_locks
);

/// Failures in a row count across locks and windows: waiting out each short lock never resets
/// them, and the one that reaches `max_in_a_row` locks with no expiry until the desk unlocks.
async fn failures_in_a_row_lock_for_the_desk(store: Arc<dyn Store>, p: String) {
    let rule = Lockout {
        max: 2,
        lock_for: Duration::from_millis(300),
        max_in_a_row: 5,
        ..LENIENT
    };
    let keys = attempt_keys(&p);
    let mut verdicts = Vec::new();
    for _ in 0..5 {
        if store.get(&keys.lock).await.unwrap().is_some() {
            // The short lock is waited out, as a patient attacker would.
            past(Duration::from_millis(300)).await;
        }
        verdicts.push(verify(&store, &p, &["wrong"], &rule, 10).await);
    }
    put_code(&store, &keys.code, "right", "email", LONG).await;
    let after = verify(&store, &p, &["right"], &rule, 10).await;

    assert!(
        verdicts[1].locked_now && !verdicts[1].desk,
        "the window's lock"
    );
    let last = verdicts[4];
    assert!(last.locked_now && last.desk, "the fifth in a row: {last:?}");
    assert_eq!(
        store.ttl(&keys.lock).await.unwrap(),
        twofactor::store::Ttl::Forever,
        "no expiry"
    );
    assert_eq!(after.judged, Judged::Locked, "even the right code");
    assert!(after.desk, "the answer says the desk must unlock");

    // A success starts the count again.
    let q = format!("{p}q:");
    let keys = attempt_keys(&q);
    let rule = Lockout {
        max_in_a_row: 3,
        ..LENIENT
    };
    for _ in 0..2 {
        verify(&store, &q, &["wrong"], &rule, 10).await;
    }
    put_code(&store, &keys.code, "right", "email", LONG).await;
    assert_eq!(
        verify(&store, &q, &["right"], &rule, 10).await.judged,
        Judged::Accepted
    );
    assert_eq!(store.get(&keys.streak).await.unwrap(), None);
    for _ in 0..2 {
        assert!(!verify(&store, &q, &["wrong"], &rule, 10).await.locked_now);
    }
}
both_backends!(
    failures_in_a_row_lock_for_the_desk_agree,
    failures_in_a_row_lock_for_the_desk
);

async fn an_accepted_code_repeats_only_within_its_grace(store: Arc<dyn Store>, p: String) {
    let rule = Lockout {
        max: 2,
        grace: SHORT,
        ..LENIENT
    };
    let keys = attempt_keys(&p);
    put_code(&store, &keys.code, "right", "sms", LONG).await;

    assert_eq!(
        verify(&store, &p, &["right"], &rule, 3).await.judged,
        Judged::Accepted
    );
    let repeats: Vec<Judged> =
        futures_util::future::join_all((0..5).map(|_| verify(&store, &p, &["right"], &rule, 3)))
            .await
            .into_iter()
            .map(|v| v.judged)
            .collect();
    let refused = check_email(&store, &keys, &["right".to_string()], &rule, 3, false).await;

    assert_eq!(repeats, vec![Judged::Repeat; 5], "repeats are not counted");
    assert_eq!(refused.judged, Judged::Repeat, "even when not judged");
    assert_eq!(store.get(&keys.lock).await.unwrap(), None, "not locked");
    let other = check_email(&store, &keys, &["other".to_string()], &rule, 3, false).await;
    assert_eq!(
        other.judged,
        Judged::Missing,
        "nothing judged, nothing counted"
    );
    assert_eq!(store.get(&keys.failures).await.unwrap(), None);
    past(SHORT).await;
    assert_eq!(
        verify(&store, &p, &["right"], &rule, 3).await.judged,
        Judged::Missing,
        "the grace ends"
    );
}
both_backends!(
    an_accepted_code_repeats_only_within_its_grace_agree,
    an_accepted_code_repeats_only_within_its_grace
);

async fn verify_code_races_see_one_code_once(store: Arc<dyn Store>, p: String) {
    put_code(&store, &format!("{p}code"), "right", "email", LONG).await;
    let tasks: Vec<_> = (0..50)
        .map(|i| {
            let store = store.clone();
            let p = p.clone();
            let digest = if i % 2 == 0 { "right" } else { "wrong" };
            tokio::spawn(async move { check(&store, &p, digest, 3).await })
        })
        .collect();
    let results: Vec<Judged> = futures_util::future::join_all(tasks)
        .await
        .into_iter()
        .map(Result::unwrap)
        .collect();
    let matched = results.iter().filter(|r| **r == Judged::Accepted).count();
    let judged_wrong = results
        .iter()
        .filter(|r| matches!(r, Judged::Wrong | Judged::Exhausted))
        .count();
    assert!(matched <= 1, "matched {matched} times: {results:?}");
    assert!(
        judged_wrong <= 3,
        "more wrong tries than allowed: {results:?}"
    );
    assert!(
        matched + judged_wrong >= 1,
        "someone saw the code: {results:?}"
    );
    assert_eq!(check(&store, &p, "right", 3).await, Judged::Missing);

    // Racing guesses never have more than the lockout allows judged.
    let q = format!("{p}q:");
    let rule = Lockout { max: 5, ..LENIENT };
    let tasks: Vec<_> = (0..40)
        .map(|_| {
            let store = store.clone();
            let q = q.clone();
            tokio::spawn(async move { verify(&store, &q, &["guess"], &rule, 100).await.judged })
        })
        .collect();
    let judged = futures_util::future::join_all(tasks)
        .await
        .into_iter()
        .map(Result::unwrap)
        .filter(|j| *j != Judged::Locked)
        .count();
    assert_eq!(judged, 5, "exactly the allowed attempts were judged");
}
both_backends!(
    verify_code_races_see_one_code_once_agree,
    verify_code_races_see_one_code_once
);

async fn authenticator_steps_only_move_forward(store: Arc<dyn Store>, p: String) {
    let keys = attempt_keys(&p);
    let step_key = format!("{p}step");
    let totp = |step: Option<u64>, ttl: Duration| {
        let store = store.clone();
        let (keys, step_key) = (keys.clone(), step_key.clone());
        async move {
            let candidates = ["d".to_string()];
            let check = TotpCheck {
                step_key: &step_key,
                matched_step: step,
                step_ttl: ttl,
                candidates: &candidates,
            };
            store
                .verify_totp(&keys, &check, &LENIENT, true)
                .await
                .unwrap()
                .judged
        }
    };
    assert_eq!(
        totp(Some(0), LONG).await,
        Judged::Accepted,
        "any step is new at first"
    );
    assert_eq!(totp(Some(5), LONG).await, Judged::Accepted, "forward");
    assert_eq!(totp(Some(5), LONG).await, Judged::Replayed, "the same step");
    assert_eq!(totp(Some(4), LONG).await, Judged::Replayed, "an older step");
    assert_eq!(totp(None, LONG).await, Judged::Wrong, "no step matched");
    assert_eq!(
        totp(Some(6), LONG).await,
        Judged::Accepted,
        "strictly greater"
    );
    assert_eq!(store.get(&step_key).await.unwrap().as_deref(), Some("6"));

    // The memory of steps expires with its TTL.
    store.del(&step_key).await.unwrap();
    assert_eq!(totp(Some(6), SHORT).await, Judged::Accepted);
    assert_eq!(totp(Some(3), SHORT).await, Judged::Replayed);
    past(SHORT).await;
    assert_eq!(totp(Some(3), SHORT).await, Judged::Accepted);
}
both_backends!(
    authenticator_steps_only_move_forward_agree,
    authenticator_steps_only_move_forward
);

async fn claim_capped_refuses_when_full_without_locking(store: Arc<dyn Store>, p: String) {
    let (lock, count) = (format!("{p}lock"), format!("{p}count"));
    let claim = || store.claim_capped(&lock, &count, 2, LONG);
    assert_eq!(claim().await.unwrap(), Claim::Allowed(1));
    assert_eq!(claim().await.unwrap(), Claim::Allowed(2));
    assert_eq!(claim().await.unwrap(), Claim::Full);
    assert_eq!(store.get(&lock).await.unwrap(), None, "full is not locked");
    store.decr(&count).await.unwrap();
    assert_eq!(
        claim().await.unwrap(),
        Claim::Allowed(2),
        "a success gives its attempt back"
    );
    store.set(&lock, "1", Some(LONG)).await.unwrap();
    assert_eq!(claim().await.unwrap(), Claim::Locked);
}
both_backends!(
    claim_capped_refuses_when_full_without_locking_agree,
    claim_capped_refuses_when_full_without_locking
);

async fn compare_and_set_and_keys_with_prefix(store: Arc<dyn Store>, p: String) {
    let k = format!("{p}rec");
    store.set(&k, "v1", None).await.unwrap();
    assert!(
        !store
            .compare_and_set(&k, Some("other"), "v2")
            .await
            .unwrap()
    );
    assert!(
        !store.compare_and_set(&k, None, "v2").await.unwrap(),
        "present"
    );
    assert!(store.compare_and_set(&k, Some("v1"), "v2").await.unwrap());
    assert_eq!(store.get(&k).await.unwrap().as_deref(), Some("v2"));
    let none = format!("{p}none");
    assert!(!store.compare_and_set(&none, Some(""), "x").await.unwrap());
    assert!(
        store.compare_and_set(&none, None, "x").await.unwrap(),
        "absent"
    );
    assert_eq!(store.get(&none).await.unwrap().as_deref(), Some("x"));
    store.del(&none).await.unwrap();

    // A capped list, newest first.
    let list = format!("{p}zlist");
    assert!(store.list(&list).await.unwrap().is_empty());
    for i in 0..5 {
        store.push_capped(&list, &i.to_string(), 3).await.unwrap();
    }
    assert_eq!(store.list(&list).await.unwrap(), ["4", "3", "2"]);
    store.del(&list).await.unwrap();
    store.set(&format!("{p}rec2"), "x", None).await.unwrap();
    store
        .set(&format!("{}x", prefix()), "x", None)
        .await
        .unwrap();
    assert_eq!(
        store.keys_with_prefix(&format!("{p}rec")).await.unwrap(),
        vec![k.clone(), format!("{p}rec2")]
    );
}
both_backends!(
    compare_and_set_and_keys_with_prefix_agree,
    compare_and_set_and_keys_with_prefix
);

async fn dump_lists_by_prefix(store: Arc<dyn Store>, p: String) {
    // Arrange
    let other = prefix();
    store.set(&format!("{p}b"), "2", None).await.unwrap();
    store.set(&format!("{p}a"), "1", Some(LONG)).await.unwrap();
    store.incr_window(&format!("{p}c"), LONG).await.unwrap();
    put_code(&store, &format!("{p}code"), "digest", "email", LONG).await;
    check(&store, &p, "wrong", 3).await;
    store
        .set(&format!("{p}gone"), "x", Some(BRIEF))
        .await
        .unwrap();
    store
        .set(&format!("{other}a"), "not mine", None)
        .await
        .unwrap();
    // A prefix holding glob characters matches only itself.
    store.set(&format!("{p}*x"), "star", None).await.unwrap();
    store
        .set(&format!("{p}?x"), "question", None)
        .await
        .unwrap();
    past(BRIEF).await;

    // Act
    let mine = store.dump(&p).await.unwrap();
    let starred = store.dump(&format!("{p}*")).await.unwrap();

    // Assert
    let want: Vec<(String, String)> = [
        ("*x", "star"),
        ("?x", "question"),
        ("a", "1"),
        ("b", "2"),
        ("c", "1"),
        ("code", "d=digest m=email a=1 r="),
        ("failures", "1"),
        ("streak", "1"),
    ]
    .iter()
    .map(|(k, v)| (format!("{p}{k}"), v.to_string()))
    .collect();
    let mut sorted_want = want.clone();
    sorted_want.sort();
    assert_eq!(mine, sorted_want, "sorted, live keys under the prefix only");
    assert_eq!(
        starred,
        vec![(format!("{p}*x"), "star".to_string())],
        "glob characters are literal"
    );
}
both_backends!(dump_lists_by_prefix_agree, dump_lists_by_prefix);

async fn ttl_tells_what_is_left(store: Arc<dyn Store>, p: String) {
    let (forever, lasting, code, brief) = (
        format!("{p}forever"),
        format!("{p}lasting"),
        format!("{p}code"),
        format!("{p}brief"),
    );
    assert_eq!(store.ttl(&format!("{p}none")).await.unwrap(), Ttl::Missing);

    store.set(&forever, "1", None).await.unwrap();
    store.set(&lasting, "1", Some(LONG)).await.unwrap();
    put_code(&store, &code, "d", "sms", LONG).await;
    store.set(&brief, "1", Some(BRIEF)).await.unwrap();

    assert_eq!(store.ttl(&forever).await.unwrap(), Ttl::Forever);
    for key in [&lasting, &code] {
        match store.ttl(key).await.unwrap() {
            Ttl::Left(d) => assert!(
                d <= LONG && d > LONG - Duration::from_secs(10),
                "{key}: {d:?} left of {LONG:?}"
            ),
            other => panic!("{key}: {other:?}"),
        }
    }
    past(BRIEF).await;
    assert_eq!(store.ttl(&brief).await.unwrap(), Ttl::Missing, "expired");
}
both_backends!(ttl_tells_what_is_left_agree, ttl_tells_what_is_left);

/// Every key `scan_page` lists under `prefix`, following its cursors to the end, sorted.
async fn walk(store: &Arc<dyn Store>, prefix: &str, count: usize) -> Vec<String> {
    let mut seen = Vec::new();
    let mut cursor = String::new();
    // On the shared test Redis the walk covers every test's keys, page after page.
    loop {
        let (keys, next) = store.scan_page(prefix, &cursor, count).await.unwrap();
        assert!(keys.iter().all(|k| k.starts_with(prefix)), "{keys:?}");
        seen.extend(keys);
        match next {
            Some(n) => cursor = n,
            None => break,
        }
    }
    seen.sort();
    // SCAN promises each key at least once (twice only while Redis resizes its table).
    seen.dedup();
    seen
}

async fn scan_page_walks_a_prefix(store: Arc<dyn Store>, p: String) {
    let wanted: Vec<String> = (0..30).map(|i| format!("{p}a:{i:02}")).collect();
    for key in &wanted {
        store.set(key, "1", None).await.unwrap();
    }
    for other in ["b:1", "b:2", "a", "A:1"] {
        store.set(&format!("{p}{other}"), "1", None).await.unwrap();
    }
    // Glob characters in a prefix are taken literally.
    let odd = format!("{p}x*[y]?\\z^");
    store.set(&odd, "1", None).await.unwrap();
    store
        .set(&format!("{p}xa[y]?\\z^"), "1", None)
        .await
        .unwrap();

    assert_eq!(walk(&store, &format!("{p}a:"), 7).await, wanted);
    assert_eq!(walk(&store, &format!("{p}x*["), 100).await, vec![odd]);
    assert!(walk(&store, &format!("{p}nothing"), 100).await.is_empty());
}
both_backends!(scan_page_walks_a_prefix_agree, scan_page_walks_a_prefix);

async fn a_send_starts_in_one_step(store: Arc<dyn Store>, p: String) {
    let keys = SendKeys {
        record: format!("{p}record"),
        lock: format!("{p}lock"),
        choice: format!("{p}choice"),
        code: format!("{p}code"),
        sends: format!("{p}sends"),
    };
    let ask = SendAsk {
        method: Method::Sms,
        offered: true,
        line_locked: false,
        reserve: true,
        max: 1,
        window: LONG,
        digest: "d",
        ttl: LONG,
        known: None,
    };
    let start = |ask: SendAsk<'static>| {
        let (store, keys) = (store.clone(), keys.clone());
        async move { store.start_send(&keys, &ask).await.unwrap() }
    };
    assert_eq!(start(ask).await, Started::Unknown);
    assert_eq!(
        store.get(&keys.sends).await.unwrap(),
        None,
        "nothing counted"
    );

    let record = r#"{"email":"a@example.com","phone":null,"rev":"r1"}"#;
    store.set(&keys.record, record, None).await.unwrap();
    assert_eq!(start(ask).await, Started::NotVerified, "no phone");
    let email = SendAsk {
        method: Method::Email,
        ..ask
    };
    assert_eq!(
        start(SendAsk {
            offered: false,
            ..email
        })
        .await,
        Started::NotOffered
    );
    assert_eq!(
        start(SendAsk {
            method: Method::Authenticator,
            ..ask
        })
        .await,
        Started::NotVerified,
        "no authenticator"
    );
    assert_eq!(
        start(SendAsk {
            line_locked: true,
            ..email
        })
        .await,
        Started::LineLocked
    );
    assert_eq!(
        start(SendAsk {
            reserve: false,
            ..email
        })
        .await,
        Started::Checked(record.to_string())
    );
    assert_eq!(store.get(&keys.sends).await.unwrap(), None, "only checked");

    assert_eq!(start(email).await, Started::Reserved(record.to_string()));
    assert_eq!(start(email).await, Started::Limited, "one send allowed");
    let stored = store.dump(&format!("{p}code")).await.unwrap();
    assert_eq!(
        stored,
        vec![(keys.code.clone(), "d=d m=email a=0 r=r1".to_string())],
        "the code carries the record's contacts revision"
    );
    assert_eq!(
        store.get(&keys.choice).await.unwrap().as_deref(),
        Some("email")
    );

    store.set(&keys.lock, "1", Some(LONG)).await.unwrap();
    assert_eq!(start(email).await, Started::Locked { desk: false });
    store.set(&keys.lock, "desk", None).await.unwrap();
    assert_eq!(
        start(email).await,
        Started::Locked { desk: true },
        "a lock only the desk lifts says so"
    );
    store.set(&keys.record, "not json", None).await.unwrap();
    assert!(store.start_send(&keys, &email).await.is_err(), "unreadable");

    // A customer looked up elsewhere: the store's record is not read, and the code carries the
    // revision given.
    let known = twofactor::store::Known {
        email: true,
        phone: false,
        authenticator: false,
        revs: vec!["r2".into()],
    };
    let q = SendKeys {
        record: format!("{p}q:record"),
        lock: format!("{p}q:lock"),
        code: format!("{p}q:code"),
        ..keys.clone()
    };
    let given = SendAsk {
        known: Some(&known),
        max: 10,
        ..email
    };
    assert_eq!(
        store
            .start_send(
                &q,
                &SendAsk {
                    method: Method::Sms,
                    ..given
                }
            )
            .await
            .unwrap(),
        Started::NotVerified
    );
    assert_eq!(
        store.start_send(&q, &given).await.unwrap(),
        Started::Reserved(String::new())
    );
    assert_eq!(
        store.dump(&q.code).await.unwrap(),
        vec![(q.code.clone(), "d=d m=email a=0 r=r2".to_string())]
    );
}
both_backends!(a_send_starts_in_one_step_agree, a_send_starts_in_one_step);

/// A lenient, judged check of `ask` for a customer looked up elsewhere, with `known` contacts.
async fn check_known(
    store: &Arc<dyn Store>,
    keys: &AttemptKeys,
    ask: CodeCheck<'_>,
    known: &twofactor::store::Known,
) -> Checked {
    let given = CodeCheck {
        known: Some(known),
        ..ask
    };
    store
        .check_code(keys, &given, &LENIENT, true)
        .await
        .unwrap()
}

/// What a check answers when it judges an SMS code `judged` without locking the customer.
fn sms_judged(judged: Judged) -> Checked {
    Checked::Judged(
        Some(Method::Sms),
        Verdict {
            judged,
            locked_now: false,
            desk: false,
        },
    )
}

/// What a check chooses when no method is named, and that a code sent to other contacts is gone.
async fn a_check_chooses_the_method_and_binds_the_contacts(store: Arc<dyn Store>, p: String) {
    let keys = AttemptKeys {
        record: format!("{p}record"),
        ..attempt_keys(&p)
    };
    // The closure below outlives this function's borrows, so the digests are leaked (a test's few bytes).
    let email: &'static [String] = Box::leak(Box::new(["e".to_string()]));
    let sms: &'static [String] = Box::leak(Box::new(["s".to_string()]));
    let ask = CodeCheck {
        named: None,
        email_offered: true,
        sms_offered: true,
        email,
        sms,
        max_tries: 3,
        known: None,
    };
    let check = |ask: CodeCheck<'static>| {
        let (store, keys) = (store.clone(), keys.clone());
        async move {
            match store.check_code(&keys, &ask, &LENIENT, true).await.unwrap() {
                Checked::Judged(method, v) => (method, v.judged),
                Checked::Unknown => (None, Judged::Locked),
                Checked::Authenticator(_) => (Some(Method::Authenticator), Judged::Locked),
            }
        }
    };
    assert_eq!(
        store.check_code(&keys, &ask, &LENIENT, true).await.unwrap(),
        Checked::Unknown
    );
    assert_eq!(
        store.get(&keys.failures).await.unwrap(),
        None,
        "unknown customers leave nothing"
    );

    // Two channels, nothing remembered: none chosen (judged as email).
    let both = r#"{"email":"a@example.com","phone":"+447911123456","rev":"r1"}"#;
    store.set(&keys.record, both, None).await.unwrap();
    assert_eq!(check(ask).await, (None, Judged::Missing));
    // The only offered channel is chosen.
    let sms_only = CodeCheck {
        email_offered: false,
        ..ask
    };
    assert_eq!(check(sms_only).await, (Some(Method::Sms), Judged::Missing));
    // The pending code's method is chosen, and its own digests judge it.
    put_code(&store, &keys.code, "s", "sms", LONG).await;
    store.del(&keys.choice).await.unwrap();
    assert_eq!(
        check(ask).await,
        (Some(Method::Sms), Judged::Missing),
        "revision '' is not r1"
    );
    assert_eq!(
        store.pending_method(&keys.code).await.unwrap(),
        None,
        "discarded"
    );
    // A code sent under the record's revision is accepted.
    store
        .set(
            &keys.record,
            r#"{"email":"a@example.com","phone":"+447911123456"}"#,
            None,
        )
        .await
        .unwrap();
    put_code(&store, &keys.code, "s", "sms", LONG).await;
    assert_eq!(check(ask).await, (Some(Method::Sms), Judged::Accepted));
    // The remembered choice wins over the authenticator; without one, the authenticator is chosen.
    let with_totp = r#"{"email":"a@example.com","phone":null,"totp_sealed":"v1.x.y"}"#;
    store.set(&keys.record, with_totp, None).await.unwrap();
    store.set(&keys.choice, "email", Some(LONG)).await.unwrap();
    assert_eq!(check(ask).await, (Some(Method::Email), Judged::Missing));
    store.del(&keys.choice).await.unwrap();
    assert_eq!(
        store.check_code(&keys, &ask, &LENIENT, true).await.unwrap(),
        Checked::Authenticator(with_totp.to_string())
    );

    // A customer looked up elsewhere is judged by what is given, not by the record.
    let known = twofactor::store::Known {
        email: false,
        phone: true,
        authenticator: false,
        revs: vec!["r3".into()],
    };
    store.del(&keys.record).await.unwrap();
    put_code(&store, &keys.code, "s", "sms", LONG).await;
    assert_eq!(
        check_known(&store, &keys, ask, &known).await,
        sms_judged(Judged::Missing),
        "the code's revision '' is not the one given"
    );

    // During a key rotation the revision under the other key still matches.
    let rotating = twofactor::store::Known {
        revs: vec!["r3".into(), "r0".into()],
        ..known
    };
    let sent = store
        .reserve_send(&Reserve {
            sends: "aux:sends",
            code: &keys.code,
            choice: &keys.choice,
            max: u32::MAX,
            window: LONG,
            digest: "s",
            method: Method::Sms,
            rev: "r0",
            ttl: LONG,
        })
        .await
        .unwrap();
    assert!(sent.is_some());
    assert_eq!(
        check_known(&store, &keys, ask, &rotating).await,
        sms_judged(Judged::Accepted),
    );
}
both_backends!(
    a_check_chooses_the_method_and_binds_the_contacts_agree,
    a_check_chooses_the_method_and_binds_the_contacts
);

async fn reserve_send_counts_and_writes_only_within_the_limit(store: Arc<dyn Store>, p: String) {
    let (sends, code, choice) = (
        format!("{p}sends"),
        format!("{p}code"),
        format!("{p}choice"),
    );
    let reserve = |digest: &'static str| {
        let store = store.clone();
        let (sends, code, choice) = (sends.clone(), code.clone(), choice.clone());
        async move {
            store
                .reserve_send(&Reserve {
                    sends: &sends,
                    code: &code,
                    choice: &choice,
                    max: 2,
                    window: LONG,
                    digest,
                    method: Method::Email,
                    rev: "",
                    ttl: LONG,
                })
                .await
                .unwrap()
        }
    };
    assert_eq!(reserve("first").await, Some(1));
    assert_eq!(reserve("second").await, Some(2));
    assert_eq!(reserve("third").await, None, "over the limit");
    assert_eq!(
        store.get(&sends).await.unwrap().as_deref(),
        Some("2"),
        "not counted"
    );
    // The pending code is the last one allowed: the refused send wrote nothing.
    let keys = attempt_keys(&p);
    assert_eq!(
        verify(&store, &p, &["second"], &LENIENT, 3).await.judged,
        Judged::Accepted
    );
    assert_eq!(
        store.get(&keys.choice).await.unwrap(),
        None,
        "forgotten on success"
    );

    // Racing sends never get past the limit.
    let q = format!("{p}race:");
    let tasks: Vec<_> = (0..20)
        .map(|_| {
            let store = store.clone();
            let q = q.clone();
            tokio::spawn(async move {
                let (sends, code, choice) = (
                    format!("{q}sends"),
                    format!("{q}code"),
                    format!("{q}choice"),
                );
                store
                    .reserve_send(&Reserve {
                        sends: &sends,
                        code: &code,
                        choice: &choice,
                        max: 5,
                        window: LONG,
                        digest: "d",
                        method: Method::Sms,
                        rev: "",
                        ttl: LONG,
                    })
                    .await
                    .unwrap()
            })
        })
        .collect();
    let allowed = futures_util::future::join_all(tasks)
        .await
        .into_iter()
        .filter(|r| r.as_ref().unwrap().is_some())
        .count();
    assert_eq!(allowed, 5);
}
both_backends!(
    reserve_send_counts_and_writes_only_within_the_limit_agree,
    reserve_send_counts_and_writes_only_within_the_limit
);
