//! The store contract: one test body per behaviour, run on the memory store and on Redis (the
//! harness's private redis-server, a random key prefix per test). The backends must agree exactly.

use std::sync::Arc;
use std::time::Duration;

use twofactor::store::{CodeCheck, Store};

use crate::helpers::{rand_u64, redis};

/// Runs `body(store, prefix)` on both backends.
macro_rules! both_backends {
    ($name:ident, $body:ident) => {
        mod $name {
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn memory() {
                let store = twofactor::store::connect("memory://").await.unwrap();
                super::$body(store, super::prefix()).await
            }
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn redis() {
                let store = twofactor::store::connect(&super::redis().url())
                    .await
                    .unwrap();
                super::$body(store, super::prefix()).await
            }
        }
    };
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
    store.put_code(&code, "d", LONG).await.unwrap();
    assert!(
        store.del(&code).await.unwrap(),
        "a pending code is deleted too"
    );
    assert_eq!(
        store.check_code(&code, "d", 3).await.unwrap(),
        CodeCheck::Missing
    );
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

async fn check_code_is_atomic_limited_and_single_use(store: Arc<dyn Store>, p: String) {
    let k = format!("{p}code");
    assert_eq!(
        store.check_code(&k, "right", 3).await.unwrap(),
        CodeCheck::Missing,
        "none pending"
    );

    // Wrong tries count up to the limit, and the last one discards the code.
    store.put_code(&k, "right", LONG).await.unwrap();
    assert_eq!(
        store.check_code(&k, "wrong", 3).await.unwrap(),
        CodeCheck::Wrong { attempts: 1 }
    );
    assert_eq!(
        store.check_code(&k, "wrong", 3).await.unwrap(),
        CodeCheck::Wrong { attempts: 2 }
    );
    assert_eq!(
        store.check_code(&k, "wrong", 3).await.unwrap(),
        CodeCheck::Exhausted
    );
    assert_eq!(
        store.check_code(&k, "right", 3).await.unwrap(),
        CodeCheck::Missing,
        "gone after the last try"
    );

    // A match deletes it: single use.
    store.put_code(&k, "right", LONG).await.unwrap();
    assert_eq!(
        store.check_code(&k, "wrong", 3).await.unwrap(),
        CodeCheck::Wrong { attempts: 1 }
    );
    assert_eq!(
        store.check_code(&k, "right", 3).await.unwrap(),
        CodeCheck::Matched
    );
    assert_eq!(
        store.check_code(&k, "right", 3).await.unwrap(),
        CodeCheck::Missing,
        "single use"
    );

    // put_code replaces the pending code and its wrong tries.
    store.put_code(&k, "old", LONG).await.unwrap();
    assert_eq!(
        store.check_code(&k, "wrong", 3).await.unwrap(),
        CodeCheck::Wrong { attempts: 1 }
    );
    store.put_code(&k, "new", LONG).await.unwrap();
    assert_eq!(
        store.check_code(&k, "old", 3).await.unwrap(),
        CodeCheck::Wrong { attempts: 1 },
        "replaced, tries reset"
    );
    assert_eq!(
        store.check_code(&k, "new", 3).await.unwrap(),
        CodeCheck::Matched
    );

    // One try allowed: the first wrong one exhausts it.
    store.put_code(&k, "right", LONG).await.unwrap();
    assert_eq!(
        store.check_code(&k, "wrong", 1).await.unwrap(),
        CodeCheck::Exhausted
    );

    // Expiry: pending (one round trip inside SHORT), then gone.
    store.put_code(&k, "right", SHORT).await.unwrap();
    assert_eq!(
        store.check_code(&k, "wrong", 3).await.unwrap(),
        CodeCheck::Wrong { attempts: 1 },
        "pending until its TTL ends"
    );
    past(SHORT).await;
    assert_eq!(
        store.check_code(&k, "right", 3).await.unwrap(),
        CodeCheck::Missing,
        "expired"
    );
}
both_backends!(
    check_code_is_atomic_limited_and_single_use_agree,
    check_code_is_atomic_limited_and_single_use
);

async fn check_code_races_see_one_code_once(store: Arc<dyn Store>, p: String) {
    let k = format!("{p}race");
    store.put_code(&k, "right", LONG).await.unwrap();
    let tasks: Vec<_> = (0..50)
        .map(|i| {
            let store = store.clone();
            let k = k.clone();
            let digest = if i % 2 == 0 { "right" } else { "wrong" };
            tokio::spawn(async move { store.check_code(&k, digest, 3).await.unwrap() })
        })
        .collect();
    let results: Vec<CodeCheck> = futures_util::future::join_all(tasks)
        .await
        .into_iter()
        .map(Result::unwrap)
        .collect();
    let matched = results.iter().filter(|r| **r == CodeCheck::Matched).count();
    let judged_wrong = results
        .iter()
        .filter(|r| matches!(r, CodeCheck::Wrong { .. } | CodeCheck::Exhausted))
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
    assert_eq!(
        store.check_code(&k, "right", 3).await.unwrap(),
        CodeCheck::Missing
    );
}
both_backends!(
    check_code_races_see_one_code_once_agree,
    check_code_races_see_one_code_once
);

async fn advance_step_only_moves_forward(store: Arc<dyn Store>, p: String) {
    // The ordering, on a key that lives through every step.
    let k = format!("{p}step");
    assert!(
        store.advance_step(&k, 0, LONG).await.unwrap(),
        "any step is new at first, 0 included"
    );
    assert!(store.advance_step(&k, 5, LONG).await.unwrap(), "forward");
    assert!(
        !store.advance_step(&k, 5, LONG).await.unwrap(),
        "the same step is a replay"
    );
    assert!(
        !store.advance_step(&k, 4, LONG).await.unwrap(),
        "an older step is a replay"
    );
    assert!(
        store.advance_step(&k, 6, LONG).await.unwrap(),
        "strictly greater"
    );
    assert_eq!(store.get(&k).await.unwrap().as_deref(), Some("6"));

    // Expiry, on a key of its own: a step, its replay refused (one round trip inside SHORT), then
    // an older step accepted once the memory is gone.
    let short = format!("{p}step-short");
    assert!(store.advance_step(&short, 6, SHORT).await.unwrap());
    assert!(
        !store.advance_step(&short, 3, SHORT).await.unwrap(),
        "remembered until its TTL ends"
    );
    past(SHORT).await;
    assert!(
        store.advance_step(&short, 3, SHORT).await.unwrap(),
        "the memory of steps expires"
    );
}
both_backends!(
    advance_step_only_moves_forward_agree,
    advance_step_only_moves_forward
);

async fn dump_lists_by_prefix(store: Arc<dyn Store>, p: String) {
    // Arrange
    let other = prefix();
    store.set(&format!("{p}b"), "2", None).await.unwrap();
    store.set(&format!("{p}a"), "1", Some(LONG)).await.unwrap();
    store.incr_window(&format!("{p}c"), LONG).await.unwrap();
    store
        .put_code(&format!("{p}code"), "digest", LONG)
        .await
        .unwrap();
    store
        .check_code(&format!("{p}code"), "wrong", 3)
        .await
        .unwrap();
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
        ("code", "d=digest a=1"),
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
