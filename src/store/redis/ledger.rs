//! The code ledger on Redis: each operation one script call (see `scripts.rs`), and the decoding of
//! what the scripts answer.

use std::time::Duration;

use async_trait::async_trait;
use redis::AsyncCommands;
use redis::Script;

use super::scripts::*;
use super::{Eval, RedisStore, millis};
use crate::domain::Method;
use crate::store::{
    AttemptKeys, Checked, Claim, CodeCheck, Judged, Known, Ledger, Lockout, Reserve, SendAsk,
    SendKeys, Started, StoreError, TotpCheck, Verdict,
};

/// The shared part of both verification scripts' invocations (see `VERIFY_PRELUDE`), with the
/// script's own last key.
fn verify_invocation<'a>(
    script: &'a Script,
    keys: &AttemptKeys,
    last_key: &str,
    rule: &Lockout,
    judge: bool,
) -> Eval<'a> {
    Eval::new(
        script,
        &[
            &keys.lock,
            &keys.failures,
            &keys.accepted,
            &keys.choice,
            &keys.code,
            &keys.streak,
            last_key,
        ],
    )
    .arg(rule.max)
    .arg(millis(rule.window))
    .arg(millis(rule.lock_for))
    .arg(rule.grace.as_millis() as u64)
    .arg(u8::from(judge))
    .arg(u8::from(rule.discard_code_on_lock))
    .arg(rule.max_in_a_row)
}

/// A verification script's answer: `Checked`, or for kind 7 and 8 what came before judging.
fn checked(
    (kind, lock, method, record): (i64, i64, String, String),
) -> Result<Checked, StoreError> {
    let judged = match kind {
        answer::MISSING => Judged::Missing,
        answer::ACCEPTED => Judged::Accepted,
        answer::WRONG => Judged::Wrong,
        answer::EXHAUSTED => Judged::Exhausted,
        answer::LOCKED => Judged::Locked,
        answer::REPEAT => Judged::Repeat,
        answer::REPLAYED => Judged::Replayed,
        answer::UNKNOWN => return Ok(Checked::Unknown),
        answer::AUTHENTICATOR => return Ok(Checked::Authenticator(record)),
        answer::UNREADABLE => return Err(unreadable_record()),
        other => {
            return Err(StoreError::Protocol(format!(
                "verification script answered {other}"
            )));
        }
    };
    let verdict = Verdict {
        judged,
        locked_now: matches!(lock, answer::LOCKED_NOW | answer::LOCKED_FOR_DESK),
        desk: matches!(lock, answer::LOCKED_FOR_DESK | answer::HELD_FOR_DESK),
    };
    Ok(Checked::Judged(Method::from_stored(&method), verdict))
}

/// `Known` as the scripts' `record` reads it.
fn known(k: Option<&Known>) -> String {
    k.map_or(String::new(), |k| {
        let flag = |b: bool| if b { '1' } else { '0' };
        format!(
            "{}{}{}:{}",
            flag(k.email),
            flag(k.phone),
            flag(k.authenticator),
            k.revs.join(",")
        )
    })
}

fn unreadable_record() -> StoreError {
    StoreError::Protocol("the customer record is not readable JSON".into())
}

#[async_trait]
impl Ledger for RedisStore {
    async fn start_send(&self, keys: &SendKeys, ask: &SendAsk<'_>) -> Result<Started, StoreError> {
        let (kind, record): (i64, String) = self
            .run(async |c| {
                Eval::new(
                    &START_SEND,
                    &[
                        &keys.record,
                        &keys.lock,
                        &keys.choice,
                        &keys.code,
                        &keys.sends,
                    ],
                )
                .arg(ask.method.as_str())
                .arg(u8::from(ask.offered))
                .arg(u8::from(ask.line_locked))
                .arg(u8::from(ask.reserve))
                .arg(ask.max)
                .arg(millis(ask.window))
                .arg(ask.digest)
                .arg(millis(ask.ttl))
                .arg(known(ask.known))
                .invoke(c)
                .await
            })
            .await?;
        Ok(match kind {
            answer::SEND_UNKNOWN => Started::Unknown,
            answer::SEND_NOT_VERIFIED => Started::NotVerified,
            answer::SEND_NOT_OFFERED => Started::NotOffered,
            answer::SEND_LOCKED => Started::Locked { desk: false },
            answer::SEND_DESK_LOCKED => Started::Locked { desk: true },
            answer::SEND_LINE_LOCKED => Started::LineLocked,
            answer::SEND_AUTHENTICATOR => Started::Authenticator,
            answer::SEND_CHECKED => Started::Checked(record),
            answer::SEND_LIMITED => Started::Limited,
            answer::SEND_RESERVED => Started::Reserved(record),
            answer::SEND_UNREADABLE => return Err(unreadable_record()),
            other => {
                return Err(StoreError::Protocol(format!(
                    "send script answered {other}"
                )));
            }
        })
    }

    async fn reserve_send(&self, send: &Reserve<'_>) -> Result<Option<u64>, StoreError> {
        let n: i64 = self
            .run(async |c| {
                Eval::new(&RESERVE_SEND, &[send.sends, send.code, send.choice])
                    .arg(send.max)
                    .arg(millis(send.window))
                    .arg(send.digest)
                    .arg(send.method.as_str())
                    .arg(send.rev)
                    .arg(millis(send.ttl))
                    .invoke(c)
                    .await
            })
            .await?;
        Ok((n >= 0).then_some(n as u64))
    }

    async fn pending_method(&self, key: &str) -> Result<Option<String>, StoreError> {
        self.run(async |c| c.hget(key, "m").await).await
    }

    async fn discard_code(&self, key: &str, digest: &str) -> Result<bool, StoreError> {
        let n: i64 = self
            .run(async |c| Eval::new(&DISCARD_CODE, &[key]).arg(digest).invoke(c).await)
            .await?;
        Ok(n == 1)
    }

    async fn check_code(
        &self,
        keys: &AttemptKeys,
        ask: &CodeCheck<'_>,
        rule: &Lockout,
        judge: bool,
    ) -> Result<Checked, StoreError> {
        let offered = match (ask.email_offered, ask.sms_offered) {
            (true, true) => "es",
            (true, false) => "e",
            (false, true) => "s",
            (false, false) => "",
        };
        let eval = verify_invocation(&CHECK_CODE, keys, &keys.record, rule, judge)
            .arg(ask.max_tries)
            .arg(ask.named.map_or("", Method::as_str))
            .arg(offered)
            .arg(known(ask.known))
            .arg(ask.email.len())
            .arg(ask.email)
            .arg(ask.sms);
        let reply = self.run(async |c| eval.invoke(c).await).await?;
        checked(reply)
    }

    async fn verify_totp(
        &self,
        keys: &AttemptKeys,
        totp: &TotpCheck<'_>,
        rule: &Lockout,
        judge: bool,
    ) -> Result<Verdict, StoreError> {
        let step = totp.matched_step.map_or(-1, |s| s as i64);
        let eval = verify_invocation(&VERIFY_TOTP, keys, totp.step_key, rule, judge)
            .arg(step)
            .arg(millis(totp.step_ttl))
            .arg(totp.candidates);
        let reply = self.run(async |c| eval.invoke(c).await).await?;
        match checked(reply)? {
            Checked::Judged(_, verdict) => Ok(verdict),
            _ => Err(StoreError::Protocol(
                "authenticator script answered before judging".into(),
            )),
        }
    }

    async fn claim_capped(
        &self,
        lock_key: &str,
        count_key: &str,
        max: u32,
        window: Duration,
    ) -> Result<Claim, StoreError> {
        let n: i64 = self
            .run(async |c| {
                Eval::new(&CLAIM_CAPPED, &[lock_key, count_key])
                    .arg(max)
                    .arg(millis(window))
                    .invoke(c)
                    .await
            })
            .await?;
        Ok(match n {
            -1 => Claim::Locked,
            n if n < 0 => Claim::Full,
            n => Claim::Allowed(n as u64),
        })
    }
}
