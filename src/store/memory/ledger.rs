//! The code ledger in memory: the same rules as the Redis scripts, each run as one step under the
//! store's lock, so racing requests see the same outcomes.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use async_trait::async_trait;

use super::{Entry, MemoryStore, Value, Window, counter, live};
use crate::domain::Method;
use crate::store::{
    AttemptKeys, Checked, Claim, CodeCheck, Judged, Known, Ledger, Lockout, Reserve, SendAsk,
    SendKeys, Started, StoreError, TotpCheck, Verdict,
};

/// What the method-specific part of a verification decided.
enum Outcome {
    Judged(Judged),
    /// Right: keep this digest as the accepted one.
    Accept(String),
}

fn ct_eq(a: &str, b: &str) -> bool {
    use subtle::ConstantTimeEq;
    bool::from(a.as_bytes().ct_eq(b.as_bytes()))
}

fn set_counter(m: &mut HashMap<String, Entry>, key: &str, n: u64) {
    if let Some(Entry {
        value: Value::Text(s),
        ..
    }) = m.get_mut(key)
    {
        *s = n.to_string();
    }
}

/// What a check and a send read of a customer record, as the Redis scripts' `record` does.
struct Record {
    text: String,
    email: bool,
    phone: bool,
    totp: bool,
    /// The revision a new code carries, and the others a pending code may carry (key rotation).
    rev: String,
    also: Vec<String>,
}

/// The record at `key`, or the customer as `known`: `Ok(None)` for none, an error when it is not a
/// JSON object.
fn record(
    m: &HashMap<String, Entry>,
    key: &str,
    known: Option<&Known>,
    now: Instant,
) -> Result<Option<Record>, StoreError> {
    if let Some(k) = known {
        return Ok(Some(Record {
            text: String::new(),
            email: k.email,
            phone: k.phone,
            totp: k.authenticator,
            rev: k.revs.first().cloned().unwrap_or_default(),
            also: k.revs.iter().skip(1).cloned().collect(),
        }));
    }
    let Some(Value::Text(text)) = live(m, key, now) else {
        return Ok(None);
    };
    let unreadable = || StoreError::Protocol("the customer record is not readable JSON".into());
    let json: serde_json::Value = serde_json::from_str(text).map_err(|_| unreadable())?;
    let fields = json.as_object().ok_or_else(unreadable)?;
    let present = |name: &str| match fields.get(name) {
        None | Some(serde_json::Value::Null) => false,
        Some(serde_json::Value::String(s)) => !s.is_empty(),
        Some(_) => true,
    };
    Ok(Some(Record {
        text: text.clone(),
        email: present("email"),
        phone: present("phone"),
        totp: present("totp_sealed"),
        rev: fields
            .get("rev")
            .and_then(serde_json::Value::as_str)
            .unwrap_or("")
            .to_string(),
        also: Vec::new(),
    }))
}

/// Counts a send and, within the limit, writes its code and remembers its method.
fn reserve(
    m: &mut HashMap<String, Entry>,
    now: Instant,
    send: &Reserve<'_>,
) -> Result<Option<u64>, StoreError> {
    let n = counter(m, send.sends, now, send.window, Window::Restarted)?;
    if n > u64::from(send.max) {
        set_counter(m, send.sends, n - 1);
        return Ok(None);
    }
    let method = send.method.as_str();
    m.insert(
        send.code.to_string(),
        Entry {
            value: Value::Code {
                digest: send.digest.to_string(),
                method: method.to_string(),
                attempts: 0,
                rev: send.rev.to_string(),
            },
            expires_at: Some(now + send.ttl),
        },
    );
    m.insert(
        send.choice.to_string(),
        Entry {
            value: Value::Text(method.to_string()),
            expires_at: Some(now + send.ttl),
        },
    );
    Ok(Some(n))
}

/// The method a check judges by when the request names none, as `Ledger::check_code` describes.
fn choose(
    m: &HashMap<String, Entry>,
    keys: &AttemptKeys,
    now: Instant,
    c: &Record,
    ask: &CodeCheck<'_>,
) -> Option<Method> {
    if ask.named.is_some() {
        return ask.named;
    }
    let remembered = match live(m, &keys.choice, now) {
        Some(Value::Text(s)) => Some(s.as_str()),
        _ => match live(m, &keys.code, now) {
            Some(Value::Code { method, .. }) => Some(method.as_str()),
            _ => None,
        },
    };
    match remembered {
        Some(r) => Method::from_stored(r),
        None if c.totp => Some(Method::Authenticator),
        None => match (c.email && ask.email_offered, c.phone && ask.sms_offered) {
            (true, false) => Some(Method::Email),
            (false, true) => Some(Method::Sms),
            _ => None,
        },
    }
}

/// The steps both verifications share, as the Redis scripts' common prelude does: the repeat
/// check (against every digest in `candidates`), the lock, the attempt count, then `check` and
/// the lock on the last allowed attempt.
fn judge_in(
    m: &mut HashMap<String, Entry>,
    now: Instant,
    keys: &AttemptKeys,
    candidates: &[&[String]],
    rule: &Lockout,
    judge: bool,
    check: impl FnOnce(&mut HashMap<String, Entry>, Instant) -> Outcome,
) -> Result<Verdict, StoreError> {
    let verdict = |judged, locked_now, desk| Verdict {
        judged,
        locked_now,
        desk,
    };
    if let Some(Value::Text(accepted)) = live(m, &keys.accepted, now)
        && candidates
            .iter()
            .flat_map(|c| c.iter())
            .any(|c| ct_eq(c, accepted))
    {
        return Ok(verdict(Judged::Repeat, false, false));
    }
    if !judge {
        return Ok(verdict(Judged::Missing, false, false));
    }
    if let Some(lock) = live(m, &keys.lock, now) {
        return Ok(verdict(Judged::Locked, false, is_desk_lock(lock)));
    }
    let n = counter(m, &keys.failures, now, rule.window, Window::Kept)?;
    let max = u64::from(rule.max);
    let lock = |m: &mut HashMap<String, Entry>| {
        m.insert(
            keys.lock.clone(),
            Entry {
                value: Value::Text("1".into()),
                expires_at: Some(now + rule.lock_for),
            },
        );
        m.remove(&keys.failures);
        if rule.discard_code_on_lock {
            m.remove(&keys.code);
        }
    };
    if n > max {
        lock(m);
        return Ok(verdict(Judged::Locked, true, false));
    }
    if m.get(&keys.code).is_some_and(|e| !e.live(now)) {
        m.remove(&keys.code);
    }
    match check(m, now) {
        Outcome::Accept(digest) => {
            m.remove(&keys.failures);
            m.remove(&keys.choice);
            m.remove(&keys.streak);
            if !rule.grace.is_zero() {
                m.insert(
                    keys.accepted.clone(),
                    Entry {
                        value: Value::Text(digest),
                        expires_at: Some(now + rule.grace),
                    },
                );
            }
            Ok(verdict(Judged::Accepted, false, false))
        }
        Outcome::Judged(judged) => {
            // A judged failure adds to the streak, which never expires; the one that reaches the
            // limit locks with no expiry, until the desk unlocks.
            let streak = match live(m, &keys.streak, now) {
                Some(Value::Text(s)) => s.parse::<u64>().unwrap_or(0),
                _ => 0,
            } + 1;
            if streak >= u64::from(rule.max_in_a_row) {
                m.insert(
                    keys.lock.clone(),
                    Entry {
                        value: Value::Text(DESK_LOCK.into()),
                        expires_at: None,
                    },
                );
                m.remove(&keys.failures);
                m.remove(&keys.streak);
                if rule.discard_code_on_lock {
                    m.remove(&keys.code);
                }
                return Ok(verdict(judged, true, true));
            }
            m.insert(
                keys.streak.clone(),
                Entry {
                    value: Value::Text(streak.to_string()),
                    expires_at: None,
                },
            );
            if n >= max {
                lock(m);
                return Ok(verdict(judged, true, false));
            }
            Ok(verdict(judged, false, false))
        }
    }
}

/// The value a lock holds when only the support desk's unlock lifts it (as the Redis scripts set).
const DESK_LOCK: &str = "desk";

fn is_desk_lock(lock: &Value) -> bool {
    matches!(lock, Value::Text(v) if v == DESK_LOCK)
}

#[async_trait]
impl Ledger for MemoryStore {
    async fn start_send(&self, keys: &SendKeys, ask: &SendAsk<'_>) -> Result<Started, StoreError> {
        self.with(&keys.sends, true, |m, now| {
            let Some(c) = record(m, &keys.record, ask.known, now)? else {
                return Ok(Started::Unknown);
            };
            let has = match ask.method {
                Method::Email => c.email,
                Method::Sms => c.phone,
                Method::Authenticator => c.totp,
            };
            if !has {
                return Ok(Started::NotVerified);
            }
            if !ask.offered {
                return Ok(Started::NotOffered);
            }
            if let Some(lock) = live(m, &keys.lock, now) {
                return Ok(Started::Locked {
                    desk: is_desk_lock(lock),
                });
            }
            if ask.line_locked {
                return Ok(Started::LineLocked);
            }
            if ask.method == Method::Authenticator {
                m.insert(
                    keys.choice.clone(),
                    Entry {
                        value: Value::Text(ask.method.as_str().to_string()),
                        expires_at: Some(now + ask.ttl),
                    },
                );
                return Ok(Started::Authenticator);
            }
            if !ask.reserve {
                return Ok(Started::Checked(c.text));
            }
            let send = Reserve {
                sends: &keys.sends,
                code: &keys.code,
                choice: &keys.choice,
                max: ask.max,
                window: ask.window,
                digest: ask.digest,
                method: ask.method,
                rev: &c.rev,
                ttl: ask.ttl,
            };
            let reserved = reserve(m, now, &send)?;
            Ok(match reserved {
                Some(_) => Started::Reserved(c.text),
                None => Started::Limited,
            })
        })
    }

    async fn reserve_send(&self, send: &Reserve<'_>) -> Result<Option<u64>, StoreError> {
        self.with(send.sends, true, |m, now| reserve(m, now, send))
    }

    async fn pending_method(&self, key: &str) -> Result<Option<String>, StoreError> {
        Ok(self.with(key, false, |m, _| match m.get(key) {
            Some(Entry {
                value: Value::Code { method, .. },
                ..
            }) => Some(method.clone()),
            _ => None,
        }))
    }

    async fn discard_code(&self, key: &str, digest: &str) -> Result<bool, StoreError> {
        Ok(self.with(key, true, |m, _| {
            let ours = matches!(m.get(key), Some(Entry { value: Value::Code { digest: d, .. }, .. }) if d == digest);
            if ours {
                m.remove(key);
            }
            ours
        }))
    }

    async fn check_code(
        &self,
        keys: &AttemptKeys,
        ask: &CodeCheck<'_>,
        rule: &Lockout,
        judge: bool,
    ) -> Result<Checked, StoreError> {
        self.with(&keys.failures, true, |m, now| {
            let Some(c) = record(m, &keys.record, ask.known, now)? else {
                return Ok(Checked::Unknown);
            };
            let chosen = choose(m, keys, now, &c, ask);
            if chosen == Some(Method::Authenticator) {
                // A retry of the sent code just accepted in this call (see the script).
                if let Some(Value::Text(accepted)) = live(m, &keys.accepted, now) {
                    let repeat = |method| {
                        let verdict = Verdict {
                            judged: Judged::Repeat,
                            locked_now: false,
                            desk: false,
                        };
                        Ok(Checked::Judged(Some(method), verdict))
                    };
                    if ask.email.iter().any(|d| ct_eq(d, accepted)) {
                        return repeat(Method::Email);
                    }
                    if ask.sms.iter().any(|d| ct_eq(d, accepted)) {
                        return repeat(Method::Sms);
                    }
                }
                return Ok(Checked::Authenticator(c.text));
            }
            let mine = if chosen == Some(Method::Sms) {
                ask.sms
            } else {
                ask.email
            };
            let verdict = judge_in(m, now, keys, &[ask.email, ask.sms], rule, judge, |m, _| {
                let Some(Entry {
                    value:
                        Value::Code {
                            digest,
                            attempts,
                            rev,
                            ..
                        },
                    ..
                }) = m.get_mut(&keys.code)
                else {
                    return Outcome::Judged(Judged::Missing);
                };
                if *rev != c.rev && !c.also.contains(rev) {
                    // Sent to contacts the customer no longer has.
                    m.remove(&keys.code);
                    return Outcome::Judged(Judged::Missing);
                }
                if mine.iter().any(|d| ct_eq(d, digest)) {
                    let digest = digest.clone();
                    m.remove(&keys.code);
                    return Outcome::Accept(digest);
                }
                *attempts += 1;
                if *attempts >= ask.max_tries {
                    m.remove(&keys.code);
                    Outcome::Judged(Judged::Exhausted)
                } else {
                    Outcome::Judged(Judged::Wrong)
                }
            })?;
            Ok(Checked::Judged(chosen, verdict))
        })
    }

    async fn verify_totp(
        &self,
        keys: &AttemptKeys,
        totp: &TotpCheck<'_>,
        rule: &Lockout,
        judge: bool,
    ) -> Result<Verdict, StoreError> {
        let TotpCheck {
            step_key,
            matched_step,
            step_ttl,
            candidates,
        } = *totp;
        self.with(&keys.failures, true, |m, now| {
            judge_in(m, now, keys, &[candidates], rule, judge, |m, now| {
                let Some(step) = matched_step else {
                    return Outcome::Judged(Judged::Wrong);
                };
                let last = match live(m, step_key, now) {
                    Some(Value::Text(s)) => s.parse::<u64>().ok(),
                    _ => None,
                };
                if last.is_some_and(|l| step <= l) {
                    return Outcome::Judged(Judged::Replayed);
                }
                m.insert(
                    step_key.to_string(),
                    Entry {
                        value: Value::Text(step.to_string()),
                        expires_at: Some(now + step_ttl),
                    },
                );
                Outcome::Accept(candidates.first().cloned().unwrap_or_default())
            })
        })
    }

    async fn claim_capped(
        &self,
        lock_key: &str,
        count_key: &str,
        max: u32,
        window: Duration,
    ) -> Result<Claim, StoreError> {
        self.with(count_key, true, |m, now| {
            if live(m, lock_key, now).is_some() {
                return Ok(Claim::Locked);
            }
            let n = counter(m, count_key, now, window, Window::Restarted)?;
            if n > u64::from(max) {
                set_counter(m, count_key, n - 1);
                return Ok(Claim::Full);
            }
            Ok(Claim::Allowed(n))
        })
    }
}
