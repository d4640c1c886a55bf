//! The memory store against Redis, by machine: random short sequences of ledger and key-value
//! operations over a small universe (two customers, a handful of keys, digests and values), run
//! one operation at a time on a fresh memory store and on the test binary's private Redis under a
//! fresh key prefix, every answer compared. `store_contract.rs` checks behaviours someone thought
//! of; this finds the ones nobody did. proptest shrinks a disagreement to a short sequence, and the
//! failure shows every op up to it with its answer, then both backends' answers.
//!
//! The ops: the ledger (`start_send` reserving or not, `reserve_send`, `pending_method`,
//! `discard_code`, `check_code` with a named method or none and a known customer or the record,
//! `verify_totp` with a matched step or none, `claim_capped`) and the key-value primitives on the
//! same keys (get, set, records, set_nx, del, ttl as a class, expire, incr_window, decr,
//! compare_and_set, push_capped and list). Keys keep to their kind (a code's hash is never read
//! as a string) as the service keeps them. Besides each answer, the whole state under the prefix
//! (every key, value and TTL class, through `dump` and `ttl`) is compared at the end of each
//! phase, so a difference in what is stored shows even when no later op happens to read it.
//! Sequences it found are replayed by `found_sequences_agree`. A summary line (printed with
//! `--nocapture`) gives the time taken, the slowest phase and how often each answer came up.
//!
//! Operations reach a store only through [`apply`]: when the `Store` trait is split into its `Kv`
//! and `Ledger` seams (argument structs instead of positional arguments), that function is the
//! only one to change; the ops, strategies, clock and comparison stay as they are.
//!
//! Time. Redis keeps its own clock, so the test cannot fake time; it makes time discrete instead.
//! Every TTL, window, lock and grace in an op is a whole number of ticks, and `Advance(n)` waits
//! until `n` more ticks *plus a third of a tick* have passed since the sequence began (an absolute
//! schedule, so a late wake-up does not add up). With at most two advances, any two phases (the
//! runs of ops between advances) are then a whole number of ticks plus one or two thirds apart,
//! so a key written in one phase expires at least a third of a tick away from every op of every
//! later phase, as long as each phase runs within a third of a tick (less a safety margin). A
//! phase that overruns would let the backends disagree about what is alive for no fault of
//! theirs, so the case is rejected (not failed) and counted. Half a tick per advance would not do:
//! two advances would make a whole tick, and a key could expire exactly as a later phase runs.

use std::collections::BTreeMap;
use std::fmt;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use proptest::collection::vec;
use proptest::prelude::*;
use proptest::strategy::Union;
use proptest::test_runner::{Config, TestCaseError, TestRunner};
use twofactor::domain::Method;
use twofactor::store::{
    AttemptKeys, Checked, Claim, CodeCheck, Known, Lockout, Reserve, SendAsk, SendKeys, Started,
    Store, StoreError, TotpCheck, Ttl, Verdict,
};

use crate::helpers::{rand_u64, redis};

/// One tick of the discrete clock, 450 ms. A phase must finish within a third of a tick less the
/// margin (120 ms); the slowest phase of a run on this loaded 2-core machine (load 3 to 7) took
/// 20 to 93 ms, now and then over 120 ms (that case is rejected), so a 250 ms tick (a 53 ms
/// budget) would reject many cases. An average case (one advance of one or two ticks) sleeps under a second: 24 cases
/// take about 20 s.
const TICK_MS: u64 = 450;
const TICK: Duration = Duration::from_millis(TICK_MS);
/// What each advance adds beyond its whole ticks (see the module doc).
const OFFSET: Duration = Duration::from_millis(TICK_MS / 3);
/// Room between the last op of a phase and the nearest expiry: Redis rounds to milliseconds,
/// and its clock and this process's are read at slightly different moments.
const SAFETY: Duration = Duration::from_millis(30);
/// How long the ops of one phase may take, from the phase's nominal start.
const BUDGET: Duration = OFFSET.saturating_sub(SAFETY);

const CASES: u32 = 24;
const MAX_OPS: usize = 23;
const MAX_ADVANCES: usize = 2;

/// The rules' small limits, so that locks, desk locks and exhausted codes are reachable in a
/// short sequence.
const MAX_ATTEMPTS: u32 = 3;
const MAX_IN_A_ROW: u32 = 4;
const MAX_TRIES: u32 = 2;

const DIGESTS: &[&str] = &["d1", "d2", "d3"];
/// Values the plain key-value ops write: numbers for the counters, a desk lock, method names (a
/// remembered choice, and one that is not a method) and a digest (an accepted code).
const VALUES: &[&str] = &["0", "1", "3", "desk", "email", "sms", "fax", "d1"];
const REVS: &[&str] = &["r1", "r2", ""];
/// Customer records: both contacts, email only, phone only (an empty email), an authenticator,
/// no contacts, and one that is not a JSON object.
const RECORDS: &[&str] = &[
    r#"{"email":"a@example.com","phone":"+441632960001","rev":"r1"}"#,
    r#"{"email":"a@example.com","phone":null,"rev":"r2"}"#,
    r#"{"email":"","phone":"+441632960001","rev":"r1"}"#,
    r#"{"email":"a@example.com","phone":"+441632960001","totp_sealed":"s","rev":"r2"}"#,
    "{}",
    "[1]",
];
/// Customers as looked up elsewhere: (email, phone, authenticator, revisions, current first).
const KNOWN: &[(bool, bool, bool, &[&str])] = &[
    (true, true, false, &["r1"]),
    (false, true, false, &["r2", "r1"]),
    (true, false, true, &["r2"]),
];

/// A key of the universe; `u8` fields name the customer (0 or 1).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Key {
    Record(u8),
    Lock(u8),
    Failures(u8),
    Accepted(u8),
    Choice(u8),
    Code(u8),
    Streak(u8),
    Sends(u8),
    Step(u8),
    /// A caller number's lock and attempt counter, shared by both customers.
    LineLock,
    LineCount,
    /// A capped list (the settings history's kind).
    Audit,
}

/// The lockout rule of a verification, in ticks (`grace` 0: none).
#[derive(Debug, Clone, Copy)]
struct Rule {
    window: u32,
    lock_for: u32,
    grace: u32,
    discard: bool,
}

#[derive(Debug, Clone)]
enum Op {
    // Key-value.
    Get(Key),
    Set(Key, &'static str, Option<u32>),
    /// A record from `RECORDS`.
    PutRecord(u8, usize),
    SetNx(Key, &'static str, u32),
    Del(Key),
    Ttl(Key),
    Expire(Key, u32),
    IncrWindow(Key, u32),
    Decr(Key),
    CompareAndSet(Key, Option<&'static str>, &'static str),
    PushCapped(&'static str, usize),
    List,
    // Ledger.
    StartSend {
        c: u8,
        method: Method,
        offered: bool,
        line_locked: bool,
        reserve: bool,
        max: u32,
        window: u32,
        digest: &'static str,
        ttl: u32,
        /// An entry of `KNOWN`.
        known: Option<usize>,
        /// The line's lock applies rather than the customer's.
        pair: bool,
    },
    ReserveSend {
        c: u8,
        max: u32,
        window: u32,
        digest: &'static str,
        method: Method,
        rev: &'static str,
        ttl: u32,
    },
    PendingMethod(u8),
    DiscardCode(u8, &'static str),
    CheckCode {
        c: u8,
        named: Option<Method>,
        email_offered: bool,
        sms_offered: bool,
        email: Vec<&'static str>,
        sms: Vec<&'static str>,
        known: Option<usize>,
        rule: Rule,
        judge: bool,
        pair: bool,
    },
    VerifyTotp {
        c: u8,
        matched: Option<u64>,
        step_ttl: u32,
        candidates: Vec<&'static str>,
        rule: Rule,
        judge: bool,
        pair: bool,
    },
    ClaimCapped {
        /// The customer's lock (`Some`) or the line's.
        lock: Option<u8>,
        max: u32,
        window: u32,
    },
    /// The clock: `n` ticks (and a third) pass.
    Advance(u32),
    /// Not generated: the runner looks at everything under the case's prefix at the end of each
    /// phase (every key, its value and its TTL class), so that a difference no generated op
    /// happened to ask about still shows.
    State,
}

/// How long a key has left, as the two backends can agree on it: in whole ticks, a started one
/// counted (a key written in the current phase with a TTL of 2 ticks has 2 left).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum TtlClass {
    Missing,
    Forever,
    Left(u128),
}

/// A store error: both backends failing is agreement, whatever each says (their messages differ).
#[derive(Clone)]
struct Failed(String);

impl PartialEq for Failed {
    fn eq(&self, _: &Failed) -> bool {
        true
    }
}

impl fmt::Debug for Failed {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Failed({:?})", self.0)
    }
}

/// Every answer an op can give, comparable across backends.
#[derive(Debug, Clone, PartialEq)]
enum Answer {
    Done,
    Bool(bool),
    Text(Option<String>),
    Count(u64),
    Reserved(Option<u64>),
    Ttl(TtlClass),
    List(Vec<String>),
    Started(Started),
    Checked(Checked),
    Verdict(Verdict),
    Claim(Claim),
    /// Every live key (without the prefix), its value and its TTL class, in key order.
    State(Vec<(String, String, TtlClass)>),
    Failed(Failed),
}

impl Answer {
    /// The kind of answer, for the summary of what the runs reached.
    fn label(&self) -> String {
        let name = |debug: String| {
            debug
                .split(['(', ' ', '{'])
                .next()
                .unwrap_or_default()
                .to_string()
        };
        let verdict = |v: &Verdict| {
            format!(
                "{:?}{}{}",
                v.judged,
                if v.locked_now { "+locked" } else { "" },
                if v.desk { "+desk" } else { "" }
            )
        };
        match self {
            Answer::Started(s) => format!("start:{}", name(format!("{s:?}"))),
            Answer::Checked(Checked::Judged(_, v)) => format!("check:{}", verdict(v)),
            Answer::Checked(c) => format!("check:{}", name(format!("{c:?}"))),
            Answer::Verdict(v) => format!("totp:{}", verdict(v)),
            Answer::Claim(c) => format!("claim:{}", name(format!("{c:?}"))),
            other => name(format!("{other:?}")),
        }
    }
}

/// The keys of one case, under its own prefix.
struct Universe {
    p: String,
}

impl Universe {
    fn new() -> Universe {
        Universe {
            p: format!("sm{:016x}:", rand_u64()),
        }
    }

    fn key(&self, k: Key) -> String {
        let p = &self.p;
        match k {
            Key::Record(c) => format!("{p}c{c}:record"),
            Key::Lock(c) => format!("{p}c{c}:lock"),
            Key::Failures(c) => format!("{p}c{c}:failures"),
            Key::Accepted(c) => format!("{p}c{c}:accepted"),
            Key::Choice(c) => format!("{p}c{c}:choice"),
            Key::Code(c) => format!("{p}c{c}:code"),
            Key::Streak(c) => format!("{p}c{c}:streak"),
            Key::Sends(c) => format!("{p}c{c}:sends"),
            Key::Step(c) => format!("{p}c{c}:step"),
            Key::LineLock => format!("{p}line:lock"),
            Key::LineCount => format!("{p}line:count"),
            Key::Audit => format!("{p}audit"),
        }
    }

    fn lock(&self, c: u8, pair: bool) -> String {
        self.key(if pair { Key::LineLock } else { Key::Lock(c) })
    }

    fn attempt(&self, c: u8, pair: bool) -> AttemptKeys {
        AttemptKeys {
            lock: self.lock(c, pair),
            failures: self.key(Key::Failures(c)),
            accepted: self.key(Key::Accepted(c)),
            choice: self.key(Key::Choice(c)),
            code: self.key(Key::Code(c)),
            streak: self.key(Key::Streak(c)),
            record: self.key(Key::Record(c)),
        }
    }

    fn send(&self, c: u8, pair: bool) -> SendKeys {
        SendKeys {
            record: self.key(Key::Record(c)),
            lock: self.lock(c, pair),
            choice: self.key(Key::Choice(c)),
            code: self.key(Key::Code(c)),
            sends: self.key(Key::Sends(c)),
        }
    }
}

fn ticks(n: u32) -> Duration {
    TICK * n
}

fn class(ttl: Ttl) -> TtlClass {
    match ttl {
        Ttl::Missing => TtlClass::Missing,
        Ttl::Forever => TtlClass::Forever,
        Ttl::Left(d) => TtlClass::Left(d.as_millis().div_ceil(TICK.as_millis())),
    }
}

fn known(i: Option<usize>) -> Option<Known> {
    i.map(|i| {
        let (email, phone, authenticator, revs) = KNOWN[i];
        Known {
            email,
            phone,
            authenticator,
            revs: revs.iter().map(|r| r.to_string()).collect(),
        }
    })
}

fn lockout(r: Rule) -> Lockout {
    Lockout {
        max: MAX_ATTEMPTS,
        window: ticks(r.window),
        lock_for: ticks(r.lock_for),
        grace: ticks(r.grace),
        discard_code_on_lock: r.discard,
        max_in_a_row: MAX_IN_A_ROW,
    }
}

fn strings(digests: &[&str]) -> Vec<String> {
    digests.iter().map(|d| d.to_string()).collect()
}

fn answer<T>(result: Result<T, StoreError>, ok: impl FnOnce(T) -> Answer) -> Answer {
    match result {
        Ok(v) => ok(v),
        Err(e) => Answer::Failed(Failed(e.to_string())),
    }
}

/// Runs one op on one store. The only place that knows the store's signatures.
async fn apply(store: &dyn Store, u: &Universe, op: &Op) -> Answer {
    match op {
        Op::Get(k) => answer(store.get(&u.key(*k)).await, Answer::Text),
        Op::Set(k, v, ttl) => answer(store.set(&u.key(*k), v, ttl.map(ticks)).await, |()| {
            Answer::Done
        }),
        Op::PutRecord(c, i) => answer(
            store.set(&u.key(Key::Record(*c)), RECORDS[*i], None).await,
            |()| Answer::Done,
        ),
        Op::SetNx(k, v, ttl) => {
            answer(store.set_nx(&u.key(*k), v, ticks(*ttl)).await, Answer::Bool)
        }
        Op::Del(k) => answer(store.del(&u.key(*k)).await, Answer::Bool),
        Op::Ttl(k) => answer(store.ttl(&u.key(*k)).await, |t| Answer::Ttl(class(t))),
        Op::Expire(k, ttl) => answer(store.expire(&u.key(*k), ticks(*ttl)).await, Answer::Bool),
        Op::IncrWindow(k, window) => answer(
            store.incr_window(&u.key(*k), ticks(*window)).await,
            Answer::Count,
        ),
        Op::Decr(k) => answer(store.decr(&u.key(*k)).await, |()| Answer::Done),
        Op::CompareAndSet(k, old, new) => answer(
            store.compare_and_set(&u.key(*k), *old, new).await,
            Answer::Bool,
        ),
        Op::PushCapped(v, keep) => answer(
            store.push_capped(&u.key(Key::Audit), v, *keep).await,
            |()| Answer::Done,
        ),
        Op::List => answer(store.list(&u.key(Key::Audit)).await, Answer::List),
        Op::StartSend {
            c,
            method,
            offered,
            line_locked,
            reserve,
            max,
            window,
            digest,
            ttl,
            known: k,
            pair,
        } => {
            let k = known(*k);
            let ask = SendAsk {
                method: *method,
                offered: *offered,
                line_locked: *line_locked,
                reserve: *reserve,
                max: *max,
                window: ticks(*window),
                digest,
                ttl: ticks(*ttl),
                known: k.as_ref(),
            };
            answer(
                store.start_send(&u.send(*c, *pair), &ask).await,
                Answer::Started,
            )
        }
        Op::ReserveSend {
            c,
            max,
            window,
            digest,
            method,
            rev,
            ttl,
        } => {
            let (sends, code, choice) = (
                u.key(Key::Sends(*c)),
                u.key(Key::Code(*c)),
                u.key(Key::Choice(*c)),
            );
            let send = Reserve {
                sends: &sends,
                code: &code,
                choice: &choice,
                max: *max,
                window: ticks(*window),
                digest,
                method: *method,
                rev,
                ttl: ticks(*ttl),
            };
            answer(store.reserve_send(&send).await, Answer::Reserved)
        }
        Op::PendingMethod(c) => answer(
            store.pending_method(&u.key(Key::Code(*c))).await,
            Answer::Text,
        ),
        Op::DiscardCode(c, digest) => answer(
            store.discard_code(&u.key(Key::Code(*c)), digest).await,
            Answer::Bool,
        ),
        Op::CheckCode {
            c,
            named,
            email_offered,
            sms_offered,
            email,
            sms,
            known: k,
            rule,
            judge,
            pair,
        } => {
            let (email, sms, k) = (strings(email), strings(sms), known(*k));
            let ask = CodeCheck {
                named: *named,
                email_offered: *email_offered,
                sms_offered: *sms_offered,
                email: &email,
                sms: &sms,
                max_tries: MAX_TRIES,
                known: k.as_ref(),
            };
            answer(
                store
                    .check_code(&u.attempt(*c, *pair), &ask, &lockout(*rule), *judge)
                    .await,
                Answer::Checked,
            )
        }
        Op::VerifyTotp {
            c,
            matched,
            step_ttl,
            candidates,
            rule,
            judge,
            pair,
        } => {
            let (step_key, candidates) = (u.key(Key::Step(*c)), strings(candidates));
            let totp = TotpCheck {
                step_key: &step_key,
                matched_step: *matched,
                step_ttl: ticks(*step_ttl),
                candidates: &candidates,
            };
            answer(
                store
                    .verify_totp(&u.attempt(*c, *pair), &totp, &lockout(*rule), *judge)
                    .await,
                Answer::Verdict,
            )
        }
        Op::ClaimCapped { lock, max, window } => {
            let lock = u.key(lock.map_or(Key::LineLock, Key::Lock));
            answer(
                store
                    .claim_capped(&lock, &u.key(Key::LineCount), *max, ticks(*window))
                    .await,
                Answer::Claim,
            )
        }
        Op::State => {
            let all = match store.dump(&u.p).await {
                Ok(all) => all,
                Err(e) => return Answer::Failed(Failed(e.to_string())),
            };
            let mut state = Vec::with_capacity(all.len());
            for (key, value) in all {
                let ttl = match store.ttl(&key).await {
                    Ok(ttl) => class(ttl),
                    Err(e) => return Answer::Failed(Failed(e.to_string())),
                };
                let short = key.strip_prefix(&u.p).unwrap_or(&key).to_string();
                state.push((short, value, ttl));
            }
            Answer::State(state)
        }
        // The runner moves the clock; there is nothing to ask a store.
        Op::Advance(_) => Answer::Done,
    }
}

// Strategies. Each shrinks towards the first choice: customer 0, the first key, one tick.

/// Mostly customer 0, so that ops meet on the same keys; customer 1 (with an authenticator) and
/// the line keys they share still come up.
fn cust() -> impl Strategy<Value = u8> {
    prop_oneof![3 => Just(0u8), 1 => Just(1u8)]
}

fn tick_count() -> impl Strategy<Value = u32> {
    1u32..=3
}

fn digest() -> impl Strategy<Value = &'static str> {
    prop::sample::select(DIGESTS)
}

fn value() -> impl Strategy<Value = &'static str> {
    prop::sample::select(VALUES)
}

fn sent_method() -> impl Strategy<Value = Method> {
    prop_oneof![Just(Method::Email), Just(Method::Sms)]
}

fn known_index() -> impl Strategy<Value = Option<usize>> {
    prop::option::weighted(0.3, 0..KNOWN.len())
}

/// Keys that hold a string other than a record: what set, set_nx and compare_and_set write.
fn text_key() -> impl Strategy<Value = Key> {
    (0..9usize, cust()).prop_map(|(k, c)| match k {
        0 => Key::Lock(c),
        1 => Key::Failures(c),
        2 => Key::Accepted(c),
        3 => Key::Choice(c),
        4 => Key::Streak(c),
        5 => Key::Sends(c),
        6 => Key::Step(c),
        7 => Key::LineLock,
        _ => Key::LineCount,
    })
}

/// Keys that hold a string, records included: what get reads.
fn readable_key() -> impl Strategy<Value = Key> {
    prop_oneof![
        9 => text_key(),
        1 => cust().prop_map(Key::Record),
    ]
}

/// Keys that hold a windowed counter.
fn counter_key() -> impl Strategy<Value = Key> {
    (0..3usize, cust()).prop_map(|(k, c)| match k {
        0 => Key::Sends(c),
        1 => Key::Failures(c),
        _ => Key::LineCount,
    })
}

/// Any key: what del, ttl and expire touch, whatever it holds.
fn any_key() -> impl Strategy<Value = Key> {
    prop_oneof![
        8 => readable_key(),
        2 => cust().prop_map(Key::Code),
        1 => Just(Key::Audit),
    ]
}

fn rule() -> impl Strategy<Value = Rule> {
    (tick_count(), tick_count(), 0u32..=2, any::<bool>()).prop_map(
        |(window, lock_for, grace, discard)| Rule {
            window,
            lock_for,
            grace,
            discard,
        },
    )
}

fn op() -> impl Strategy<Value = Op> {
    let start_send = (
        (
            cust(),
            prop_oneof![4 => sent_method(), 1 => Just(Method::Authenticator)],
            prop::bool::weighted(0.9),
            prop::bool::weighted(0.1),
            any::<bool>(),
        ),
        (1u32..=3, tick_count(), digest(), tick_count()),
        (known_index(), prop::bool::weighted(0.2)),
    )
        .prop_map(
            |(
                (c, method, offered, line_locked, reserve),
                (max, window, digest, ttl),
                (known, pair),
            )| Op::StartSend {
                c,
                method,
                offered,
                line_locked,
                reserve,
                max,
                window,
                digest,
                ttl,
                known,
                pair,
            },
        );
    let reserve_send = (
        cust(),
        1u32..=3,
        tick_count(),
        digest(),
        sent_method(),
        prop::sample::select(REVS),
        tick_count(),
    )
        .prop_map(
            |(c, max, window, digest, method, rev, ttl)| Op::ReserveSend {
                c,
                max,
                window,
                digest,
                method,
                rev,
                ttl,
            },
        );
    let check_code = (
        (
            cust(),
            prop::option::weighted(
                0.5,
                prop_oneof![
                    Just(Method::Email),
                    Just(Method::Sms),
                    Just(Method::Authenticator)
                ],
            ),
            prop::bool::weighted(0.8),
            prop::bool::weighted(0.8),
        ),
        (vec(digest(), 0..=2), vec(digest(), 0..=2), known_index()),
        (
            rule(),
            prop::bool::weighted(0.85),
            prop::bool::weighted(0.2),
        ),
    )
        .prop_map(
            |((c, named, email_offered, sms_offered), (email, sms, known), (rule, judge, pair))| {
                Op::CheckCode {
                    c,
                    named,
                    email_offered,
                    sms_offered,
                    email,
                    sms,
                    known,
                    rule,
                    judge,
                    pair,
                }
            },
        );
    // A code always has a digest per key of the ring: never none.
    let verify_totp = (
        cust(),
        prop::option::weighted(0.7, 1u64..=3),
        tick_count(),
        vec(digest(), 1..=2),
        rule(),
        prop::bool::weighted(0.85),
        prop::bool::weighted(0.2),
    )
        .prop_map(
            |(c, matched, step_ttl, candidates, rule, judge, pair)| Op::VerifyTotp {
                c,
                matched,
                step_ttl,
                candidates,
                rule,
                judge,
                pair,
            },
        );
    let claim = (prop::option::of(cust()), 1u32..=3, tick_count())
        .prop_map(|(lock, max, window)| Op::ClaimCapped { lock, max, window });
    let ttl = prop::option::weighted(0.7, tick_count());
    Union::new_weighted(vec![
        (10, check_code.boxed()),
        (5, start_send.boxed()),
        (2, reserve_send.boxed()),
        (4, verify_totp.boxed()),
        (2, claim.boxed()),
        (1, cust().prop_map(Op::PendingMethod).boxed()),
        (
            1,
            (cust(), digest())
                .prop_map(|(c, d)| Op::DiscardCode(c, d))
                .boxed(),
        ),
        (2, readable_key().prop_map(Op::Get).boxed()),
        (
            3,
            (text_key(), value(), ttl)
                .prop_map(|(k, v, t)| Op::Set(k, v, t))
                .boxed(),
        ),
        (
            1,
            (cust(), 0..RECORDS.len())
                .prop_map(|(c, i)| Op::PutRecord(c, i))
                .boxed(),
        ),
        (
            1,
            (text_key(), value(), tick_count())
                .prop_map(|(k, v, t)| Op::SetNx(k, v, t))
                .boxed(),
        ),
        (2, any_key().prop_map(Op::Del).boxed()),
        (2, any_key().prop_map(Op::Ttl).boxed()),
        (
            1,
            (any_key(), tick_count())
                .prop_map(|(k, t)| Op::Expire(k, t))
                .boxed(),
        ),
        (
            2,
            (counter_key(), tick_count())
                .prop_map(|(k, t)| Op::IncrWindow(k, t))
                .boxed(),
        ),
        (1, counter_key().prop_map(Op::Decr).boxed()),
        (
            1,
            (text_key(), prop::option::of(value()), value())
                .prop_map(|(k, old, new)| Op::CompareAndSet(k, old, new))
                .boxed(),
        ),
        (
            1,
            (value(), 1usize..=3)
                .prop_map(|(v, keep)| Op::PushCapped(v, keep))
                .boxed(),
        ),
        (1, Just(Op::List).boxed()),
    ])
}

/// Up to `MAX_OPS` ops with at most `MAX_ADVANCES` advances among them (the clock analysis in the
/// module doc holds for two).
fn sequence() -> impl Strategy<Value = Vec<Op>> {
    (
        vec(op(), 1..=MAX_OPS),
        // Advances of 1 or 2 ticks: two of them still outlast the longest TTL (3 ticks), and
        // the sleeps are most of the test's time.
        vec((0..=MAX_OPS, 1u32..=2), 0..=MAX_ADVANCES),
    )
        .prop_map(|(mut ops, advances)| {
            for (at, n) in advances {
                ops.insert(at.min(ops.len()), Op::Advance(n));
            }
            ops
        })
}

/// What the runs measured, for the summary line.
static REJECTED: AtomicU64 = AtomicU64::new(0);
static SLOWEST_PHASE_MS: AtomicU64 = AtomicU64::new(0);
static REACHED: Mutex<BTreeMap<String, u64>> = Mutex::new(BTreeMap::new());

/// Both customers start with a record: customer 0 with email and phone, customer 1 with an
/// authenticator too.
async fn setup(store: &dyn Store, u: &Universe) -> Result<(), StoreError> {
    store.set(&u.key(Key::Record(0)), RECORDS[0], None).await?;
    store.set(&u.key(Key::Record(1)), RECORDS[3], None).await
}

async fn run_case(redis: &dyn Store, ops: &[Op]) -> Result<(), TestCaseError> {
    let memory = twofactor::store::memory::MemoryStore::new();
    let u = Universe::new();
    for store in [&memory as &dyn Store, redis] {
        setup(store, &u)
            .await
            .map_err(|e| TestCaseError::fail(format!("setup: {e}")))?;
    }
    let start = Instant::now();
    let (mut phase, mut passed, mut advances) = (start, 0u32, 0u32);
    let mut log: Vec<String> = Vec::new();
    // The whole state is compared at the end of each phase: before each advance, and last.
    let mut steps: Vec<(usize, &Op)> = Vec::with_capacity(ops.len() + MAX_ADVANCES + 1);
    for (i, op) in ops.iter().enumerate() {
        if matches!(op, Op::Advance(_)) {
            steps.push((i, &Op::State));
        }
        steps.push((i, op));
    }
    steps.push((ops.len(), &Op::State));
    for (i, op) in steps {
        if let Op::Advance(n) = op {
            passed += n;
            advances += 1;
            phase = start + ticks(passed) + OFFSET * advances;
            // Timers may round; the analysis needs the phase to start no earlier than planned.
            while Instant::now() < phase {
                tokio::time::sleep_until(phase.into()).await;
            }
            log.push(format!("{i:>3}: {op:?}"));
            continue;
        }
        let mine = apply(&memory, &u, op).await;
        let theirs = apply(redis, &u, op).await;
        let took = phase.elapsed();
        SLOWEST_PHASE_MS.fetch_max(took.as_millis() as u64, Ordering::Relaxed);
        if took > BUDGET {
            REJECTED.fetch_add(1, Ordering::Relaxed);
            return Err(TestCaseError::reject(format!(
                "a phase ran {took:?}, over its {BUDGET:?}: expiries could fall inside it"
            )));
        }
        if mine != theirs {
            log.push(format!(
                "{i:>3}: {op:?}\n       memory: {mine:?}\n       redis:  {theirs:?}"
            ));
            let at = match op {
                Op::State => "on the state at the end of a phase".to_string(),
                _ => format!("at op {i}"),
            };
            return Err(TestCaseError::fail(format!(
                "the memory store and Redis disagree {at} (tick {TICK:?}, prefix {}):\n{}",
                u.p,
                log.join("\n")
            )));
        }
        *REACHED
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .entry(mine.label())
            .or_default() += 1;
        log.push(format!("{i:>3}: {op:?} -> {mine:?}"));
    }
    // Keep Redis's keyspace to the cases still running: every `State` walks it.
    if let Ok(keys) = redis.keys_with_prefix(&u.p).await {
        for key in keys {
            let _ = redis.del(&key).await;
        }
    }
    Ok(())
}

#[test]
fn memory_store_and_redis_agree_on_random_sequences() {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let redis_store = rt
        .block_on(twofactor::store::connect(&redis().url()))
        .unwrap();
    let cases = std::env::var("PROPTEST_CASES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(CASES);
    let mut runner = TestRunner::new(Config {
        cases,
        // Each run of a shrunk sequence sleeps through its advances: bound the search.
        max_shrink_iters: 300,
        // A very slow machine overruns phases; let it reject a fair share before giving up.
        max_global_rejects: cases * 4,
        ..Config::default()
    });
    let began = Instant::now();
    let result = runner.run(&sequence(), |ops| {
        rt.block_on(run_case(redis_store.as_ref(), &ops))
    });
    eprintln!(
        "store_model: {cases} cases in {:?}, {} rejected for an overrun phase, slowest phase {} ms \
         (budget {} ms)",
        began.elapsed(),
        REJECTED.load(Ordering::Relaxed),
        SLOWEST_PHASE_MS.load(Ordering::Relaxed),
        BUDGET.as_millis()
    );
    let reached = REACHED.lock().unwrap_or_else(|p| p.into_inner());
    let reached: Vec<String> = reached.iter().map(|(k, n)| format!("{k} {n}")).collect();
    eprintln!("store_model: answers reached: {}", reached.join(", "));
    if let Err(e) = result {
        panic!("{e}");
    }
}

/// Sequences the machine found, kept as plain tests: each shrunk to the few ops that showed a
/// disagreement, replayed on every run (they need no advance, so they cost milliseconds).
#[test]
fn found_sequences_agree() {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let redis_store = rt
        .block_on(twofactor::store::connect(&redis().url()))
        .unwrap();
    let found = [
        // A send given back with `decr` to zero: the next count starts a new window (Redis's
        // `n == 1`); the memory store kept the old one.
        vec![
            Op::StartSend {
                c: 0,
                method: Method::Sms,
                offered: true,
                line_locked: false,
                reserve: true,
                max: 1,
                window: 1,
                digest: "d1",
                ttl: 1,
                known: None,
                pair: false,
            },
            Op::Decr(Key::Sends(0)),
            Op::ReserveSend {
                c: 0,
                max: 1,
                window: 2,
                digest: "d1",
                method: Method::Email,
                rev: "r1",
                ttl: 1,
            },
        ],
        // A counter written with no expiry gets the window when counted (Redis's `PTTL < 0`).
        vec![
            Op::Set(Key::Sends(0), "1", None),
            Op::IncrWindow(Key::Sends(0), 2),
        ],
        vec![
            Op::CompareAndSet(Key::LineCount, None, "1"),
            Op::ClaimCapped {
                lock: None,
                max: 3,
                window: 2,
            },
        ],
        // A check's failure count is not repaired: the prelude only INCRs a count that exists.
        vec![
            Op::Set(Key::Failures(0), "0", None),
            Op::CheckCode {
                c: 0,
                named: Some(Method::Email),
                email_offered: true,
                sms_offered: true,
                email: vec!["d1"],
                sms: vec![],
                known: None,
                rule: Rule {
                    window: 1,
                    lock_for: 1,
                    grace: 0,
                    discard: true,
                },
                judge: true,
                pair: false,
            },
        ],
    ];
    for ops in found {
        if let Err(e) = rt.block_on(run_case(redis_store.as_ref(), &ops)) {
            panic!("{e}");
        }
    }
}
