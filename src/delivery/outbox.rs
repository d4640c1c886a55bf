//! The outbox transport: each message becomes one JSON line (`channel`, `to`, `subject`, `body`) in
//! `delivery.outbox_file`. It lets a newcomer run the whole flow with no mail server or gateway.

use std::path::PathBuf;

use async_trait::async_trait;
use secrecy::ExposeSecret;
use tokio::io::AsyncWriteExt;
use tokio::sync::Mutex;

use super::{CodeMessage, DeliveryError, EmailSender, SmsSender, render};
use crate::config::Settings;
use crate::domain::{Email, PhoneNumber};

pub struct Outbox {
    path: PathBuf,
    /// One writer at a time, so lines never interleave.
    lock: Mutex<()>,
    email_subject: String,
    email_body: String,
    email_from: String,
    sms_message: String,
    sms_from: String,
    plus_symbol: bool,
}

impl Outbox {
    pub fn new(settings: &Settings) -> Outbox {
        Outbox {
            path: PathBuf::from(&settings.delivery.outbox_file),
            lock: Mutex::new(()),
            email_subject: settings.email.subject.clone(),
            email_body: settings.email.body.clone(),
            email_from: settings.email.from.clone(),
            sms_message: settings.sms.message.clone(),
            sms_from: settings.sms.from.clone(),
            plus_symbol: settings.sms.plus_symbol_before_recipient_number,
        }
    }

    async fn append(
        &self,
        channel: &str,
        to: &str,
        subject: Option<&str>,
        body: &str,
    ) -> Result<String, DeliveryError> {
        let line =
            serde_json::json!({ "channel": channel, "to": to, "subject": subject, "body": body });
        let mut bytes = line.to_string().into_bytes();
        bytes.push(b'\n');
        let _guard = self.lock.lock().await;
        let mut file = tokio::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&self.path)
            .await
            .map_err(|e| {
                DeliveryError::Transport(format!("cannot open outbox {}: {e}", self.path.display()))
            })?;
        // tokio's File hands writes to a blocking task: without the flush the line may not be in the
        // file yet (or ever, if the process stops) when the caller is told the code was sent.
        file.write_all(&bytes).await.map_err(|e| {
            DeliveryError::Transport(format!("cannot write outbox {}: {e}", self.path.display()))
        })?;
        file.flush().await.map_err(|e| {
            DeliveryError::Transport(format!("cannot write outbox {}: {e}", self.path.display()))
        })?;
        Ok(format!("appended to {}", self.path.display()))
    }
}

#[async_trait]
impl EmailSender for Outbox {
    async fn send(&self, to: &Email, message: &CodeMessage<'_>) -> Result<String, DeliveryError> {
        let minutes = message.minutes.to_string();
        let values = [
            ("code", message.code.expose_secret()),
            ("minutes", minutes.as_str()),
            ("recipient", to.as_str()),
            ("from", self.email_from.as_str()),
        ];
        let subject = render(&self.email_subject, &values, str::to_string);
        let body = render(&self.email_body, &values, str::to_string);
        self.append("email", to.as_str(), Some(&subject), &body)
            .await
    }
}

#[async_trait]
impl SmsSender for Outbox {
    async fn send(
        &self,
        to: &PhoneNumber,
        message: &CodeMessage<'_>,
    ) -> Result<String, DeliveryError> {
        let minutes = message.minutes.to_string();
        let recipient = to.for_recipient(self.plus_symbol);
        let values = [
            ("code", message.code.expose_secret()),
            ("minutes", minutes.as_str()),
            ("recipient", recipient),
            ("from", self.sms_from.as_str()),
        ];
        let body = render(&self.sms_message, &values, str::to_string);
        self.append("sms", recipient, None, &body).await
    }
}
