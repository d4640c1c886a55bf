//! One test message through the senders made from some settings, for `POST /admin/v1/test-email`,
//! `POST /admin/v1/test-sms` and the `send-test-email` / `send-test-sms` commands alike, so an admin
//! sees exactly what the service itself would meet. The code in it is all zeros, never one issued.

use std::time::Instant;

use secrecy::SecretString;
use serde::Serialize;

use super::{CodeMessage, EmailSender, SmsSender};
use crate::config::Settings;
use crate::domain::{Email, PhoneNumber};

/// How much of an answer is shown: enough for any server's reason, short enough for a page.
pub const MAX_ANSWER_CHARS: usize = 300;

/// What a test send found.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct TestSend {
    pub sent: bool,
    /// What the SMTP server or gateway answered, or why nothing was sent; addresses, numbers and
    /// the code masked.
    pub answer: String,
    /// Time spent sending (0 when nothing was tried).
    pub elapsed_ms: u64,
}

/// The test code: all zeros, as long as real codes are, so the message looks like a real one.
pub fn test_code(settings: &Settings) -> SecretString {
    SecretString::from("0".repeat(settings.codes.digits as usize))
}

/// `{minutes}` as a real code's message would say it.
fn minutes(settings: &Settings) -> u64 {
    settings.codes.ttl_seconds.div_ceil(60)
}

fn shorten(text: &str) -> String {
    crate::domain::truncate(text, MAX_ANSWER_CHARS)
}

fn report<E: std::fmt::Display>(result: Result<String, E>, started: Instant) -> TestSend {
    let elapsed_ms = started.elapsed().as_millis().try_into().unwrap_or(u64::MAX);
    match result {
        Ok(answer) => TestSend {
            sent: true,
            answer: shorten(&answer),
            elapsed_ms,
        },
        Err(e) => TestSend {
            sent: false,
            answer: shorten(&e.to_string()),
            elapsed_ms,
        },
    }
}

fn not_offered(answer: &str) -> TestSend {
    TestSend {
        sent: false,
        answer: answer.to_string(),
        elapsed_ms: 0,
    }
}

/// Sends a test email to `to` with `sender`, made from `settings` (`None`: email not offered).
pub async fn email(settings: &Settings, sender: Option<&dyn EmailSender>, to: &Email) -> TestSend {
    let Some(sender) = sender else {
        return not_offered(
            "email is not offered: production has no transport for it (set email.smtp.host)",
        );
    };
    let code = test_code(settings);
    let message = CodeMessage {
        code: &code,
        minutes: minutes(settings),
    };
    let started = Instant::now();
    let sent = sender.send(to, &message).await;
    report(sent, started)
}

/// Sends a test SMS to `to` with `sender`, made from `settings` (`None`: SMS not offered).
pub async fn sms(
    settings: &Settings,
    sender: Option<&dyn SmsSender>,
    to: &PhoneNumber,
) -> TestSend {
    let Some(sender) = sender else {
        return not_offered("SMS is not offered: production has no transport for it (set sms.url)");
    };
    let code = test_code(settings);
    let message = CodeMessage {
        code: &code,
        minutes: minutes(settings),
    };
    let started = Instant::now();
    let sent = sender.send(to, &message).await;
    report(sent, started)
}
