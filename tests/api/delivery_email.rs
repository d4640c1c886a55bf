//! Email over SMTP end to end: lettre talks to a real SMTP server (mailin-embedded) inside the test
//! process, with and without STARTTLS and authentication, and each way it can fail.

use std::net::TcpListener;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use mailin_embedded::{AuthMechanism, Handler, Response, Server, SslConfig, response};
use secrecy::SecretString;
use twofactor::delivery::email::SmtpEmail;
use twofactor::delivery::{CodeMessage, EmailSender};
use twofactor::domain::Email;

use crate::both_stores;
use crate::helpers::{StoreKind, first_code, free_port, spawn_app_with, test_settings};

/// The SMTP timeout for every exchange expected to succeed, or to fail for a reason other than a
/// timeout: long enough that a loaded machine never turns a success into a timeout.
const TIMEOUT_MS: u64 = 10_000;
/// The SMTP timeout for the server that never greets: short, so the timeout itself is what is tested.
const SILENT_TIMEOUT_MS: u64 = 500;
/// The slack "fast" allows on top of a test's own timeout.
const SLACK: Duration = Duration::from_secs(2);

#[derive(Debug, Clone)]
pub struct Received {
    pub from: String,
    pub to: Vec<String>,
    pub data: Vec<u8>,
}

impl Received {
    /// Headers and body as text, split at the first blank line.
    fn parts(&self) -> (String, String) {
        let text = String::from_utf8_lossy(&self.data).into_owned();
        match text.split_once("\r\n\r\n") {
            Some((h, b)) => (h.to_string(), b.to_string()),
            None => (text, String::new()),
        }
    }
}

#[derive(Clone)]
struct Collector {
    inbox: Arc<Mutex<Vec<Received>>>,
    refuse_recipients: Arc<AtomicBool>,
    credentials: Option<(String, String)>,
    current: Option<Received>,
}

impl Collector {
    fn check(&self, user: &str, password: &str) -> Response {
        match &self.credentials {
            Some((u, p)) if u == user && p == password => response::AUTH_OK,
            _ => response::INVALID_CREDENTIALS,
        }
    }
}

impl Handler for Collector {
    fn rcpt(&mut self, _to: &str) -> Response {
        if self.refuse_recipients.load(Ordering::SeqCst) {
            response::NO_MAILBOX
        } else {
            response::OK
        }
    }
    fn data_start(&mut self, _domain: &str, from: &str, _is8bit: bool, to: &[String]) -> Response {
        self.current = Some(Received {
            from: from.to_string(),
            to: to.to_vec(),
            data: Vec::new(),
        });
        response::OK
    }
    fn data(&mut self, buf: &[u8]) -> std::io::Result<()> {
        if let Some(m) = &mut self.current {
            m.data.extend_from_slice(buf);
        }
        Ok(())
    }
    fn data_end(&mut self) -> Response {
        if let Some(m) = self.current.take() {
            self.inbox.lock().unwrap().push(m);
        }
        response::OK
    }
    fn auth_plain(&mut self, _authz: &str, user: &str, password: &str) -> Response {
        self.check(user, password)
    }
    fn auth_login(&mut self, user: &str, password: &str) -> Response {
        self.check(user, password)
    }
}

/// An SMTP server in this process; it runs until the test binary exits.
pub struct SmtpServer {
    pub port: u16,
    pub inbox: Arc<Mutex<Vec<Received>>>,
    pub refuse_recipients: Arc<AtomicBool>,
    /// PEM of the server's self-signed certificate, when it offers STARTTLS.
    pub ca_file: Option<std::path::PathBuf>,
    _dir: tempfile::TempDir,
}

impl SmtpServer {
    pub fn messages(&self) -> Vec<Received> {
        self.inbox.lock().unwrap().clone()
    }

    /// `[email]` settings pointing at this server.
    pub fn settings(&self, security: &str, user: &str, password: &str) -> String {
        self.settings_with(security, user, password, "")
    }

    /// The same, with more `[email]` keys (TOML lines) in `email_extra`.
    pub fn settings_with(
        &self,
        security: &str,
        user: &str,
        password: &str,
        email_extra: &str,
    ) -> String {
        let ca = self
            .ca_file
            .as_ref()
            .map(|p| p.display().to_string())
            .unwrap_or_default();
        format!(
            "[email]\ntransport = \"smtp\"\nfrom = \"Bank OTP <otp@bank.example>\"\n{email_extra}\n\
             [email.smtp]\nhost = \"127.0.0.1\"\nport = {}\nsecurity = \"{security}\"\n\
             username = \"{user}\"\npassword = \"{password}\"\ntimeout_ms = {TIMEOUT_MS}\nca_file = \"{ca}\"\n",
            self.port
        )
    }
}

/// Starts an SMTP server; with `tls_and_auth`, it offers STARTTLS and then AUTH for `user`/`pass`.
pub fn start_smtp(tls_and_auth: Option<(&str, &str)>) -> SmtpServer {
    // mailin's rustls needs a process-wide provider; a second install is refused, which is fine.
    let _ = rustls::crypto::aws_lc_rs::default_provider().install_default();
    let dir = tempfile::tempdir().unwrap();
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    let collector = Collector {
        inbox: Arc::new(Mutex::new(Vec::new())),
        refuse_recipients: Arc::new(AtomicBool::new(false)),
        credentials: tls_and_auth.map(|(u, p)| (u.to_string(), p.to_string())),
        current: None,
    };
    let inbox = collector.inbox.clone();
    let refuse_recipients = collector.refuse_recipients.clone();
    let mut server = Server::new(collector);
    server
        .with_name("mail.test")
        .with_num_threads(2)
        .with_tcp_listener(listener);
    let mut ca_file = None;
    if tls_and_auth.is_some() {
        let certified = rcgen::generate_simple_self_signed(vec!["127.0.0.1".to_string()]).unwrap();
        let cert_path = dir.path().join("cert.pem");
        let key_path = dir.path().join("key.pem");
        std::fs::write(&cert_path, certified.cert.pem()).unwrap();
        std::fs::write(&key_path, certified.signing_key.serialize_pem()).unwrap();
        // mailin's error is not Send, so it is turned into a panic here, on the test thread.
        if let Err(e) = server.with_ssl(SslConfig::SelfSigned {
            cert_path: cert_path.display().to_string(),
            key_path: key_path.display().to_string(),
        }) {
            panic!("SMTP test server TLS: {e}");
        }
        server
            .with_auth(AuthMechanism::Plain)
            .with_auth(AuthMechanism::Login);
        ca_file = Some(cert_path);
    }
    std::thread::spawn(move || {
        if let Err(e) = server.serve() {
            eprintln!("SMTP test server stopped: {e}");
        }
    });
    SmtpServer {
        port,
        inbox,
        refuse_recipients,
        ca_file,
        _dir: dir,
    }
}

/// Asserts the failure came within `timeout_ms` (the test's configured SMTP timeout) plus slack, and
/// left nothing a caller could use.
async fn assert_failed_cleanly(
    app: &crate::helpers::TestApp,
    customer: &str,
    started: Instant,
    timeout_ms: u64,
) {
    let elapsed = started.elapsed();
    assert!(
        elapsed < Duration::from_millis(timeout_ms) + SLACK,
        "the failure took {elapsed:?}, over email.smtp.timeout_ms = {timeout_ms} plus {SLACK:?}"
    );
    assert_eq!(
        app.verify(customer, "000000").await.xml_status(),
        "expired",
        "no code may be pending after a failed delivery"
    );
}

async fn email_arrives_and_its_code_works(kind: StoreKind) {
    // Arrange
    let smtp = start_smtp(None);
    let app = spawn_app_with(kind, &smtp.settings("none", "", "")).await;
    app.add_customer("2001", Some("alice@example.com"), None, None)
        .await;

    // Act
    let sent = app.send("2001", "Email").await;
    let messages = smtp.messages();

    // Assert
    assert_eq!(sent.xml_status(), "success", "{}", sent.body);
    assert_eq!(messages.len(), 1, "one message arrives");
    let m = &messages[0];
    assert_eq!(m.to, vec!["alice@example.com".to_string()]);
    assert_eq!(m.from, "otp@bank.example");
    let (headers, body) = m.parts();
    assert!(headers.contains("To: alice@example.com"), "{headers}");
    assert!(
        headers.contains("Subject: Your verification code"),
        "{headers}"
    );
    let code = first_code(&body);
    assert_eq!(
        body.trim_end(),
        format!("Your verification code is {code}. It expires in 5 minutes.")
    );
    assert_eq!(app.verify("2001", &code).await.xml_status(), "success");
}
both_stores!(
    email_arrives_and_its_code_works_,
    email_arrives_and_its_code_works
);

async fn starttls_with_authentication_delivers(kind: StoreKind) {
    let smtp = start_smtp(Some(("otp-user", "s3cret")));
    let app = spawn_app_with(kind, &smtp.settings("starttls", "otp-user", "s3cret")).await;
    app.add_customer("2002", Some("bob@example.com"), None, None)
        .await;

    let sent = app.send("2002", "email").await;

    assert_eq!(sent.xml_status(), "success", "{}", sent.body);
    let messages = smtp.messages();
    assert_eq!(messages.len(), 1);
    assert_eq!(messages[0].to, vec!["bob@example.com".to_string()]);
    let code = first_code(&messages[0].parts().1);
    assert_eq!(app.verify("2002", &code).await.xml_status(), "success");
}
both_stores!(
    starttls_with_authentication_delivers_,
    starttls_with_authentication_delivers
);

async fn smtp_refusing_authentication_answers_error(kind: StoreKind) {
    let smtp = start_smtp(Some(("otp-user", "s3cret")));
    let app = spawn_app_with(kind, &smtp.settings("starttls", "otp-user", "wrong")).await;
    app.add_customer("2003", Some("carol@example.com"), None, None)
        .await;

    let started = Instant::now();
    let sent = app.send("2003", "Email").await;

    assert_eq!(sent.xml_status(), "error");
    assert_failed_cleanly(&app, "2003", started, TIMEOUT_MS).await;
    assert!(smtp.messages().is_empty());
}
both_stores!(
    smtp_refusing_authentication_answers_error_,
    smtp_refusing_authentication_answers_error
);

async fn smtp_refusing_the_connection_answers_error(kind: StoreKind) {
    // Nothing listens on a port just freed.
    let port = free_port();
    let app = spawn_app_with(
        kind,
        &format!(
            "[email.smtp]\nhost = \"127.0.0.1\"\nport = {port}\nsecurity = \"none\"\ntimeout_ms = {TIMEOUT_MS}"
        ),
    )
    .await;
    app.add_customer("2004", Some("dave@example.com"), None, None)
        .await;

    let started = Instant::now();
    let sent = app.send("2004", "Email").await;

    assert_eq!(sent.xml_status(), "error");
    assert_failed_cleanly(&app, "2004", started, TIMEOUT_MS).await;
}
both_stores!(
    smtp_refusing_the_connection_answers_error_,
    smtp_refusing_the_connection_answers_error
);

async fn smtp_server_that_never_greets_times_out(kind: StoreKind) {
    // Accepts connections (the kernel's backlog does) but never says a word.
    let silent = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = silent.local_addr().unwrap().port();
    let app = spawn_app_with(
        kind,
        &format!(
            "[email.smtp]\nhost = \"127.0.0.1\"\nport = {port}\nsecurity = \"none\"\ntimeout_ms = {SILENT_TIMEOUT_MS}"
        ),
    )
    .await;
    app.add_customer("2005", Some("erin@example.com"), None, None)
        .await;

    let started = Instant::now();
    let sent = app.send("2005", "Email").await;

    assert_eq!(sent.xml_status(), "error");
    assert!(
        started.elapsed() >= Duration::from_millis(SILENT_TIMEOUT_MS / 2),
        "it waited for the server"
    );
    assert_failed_cleanly(&app, "2005", started, SILENT_TIMEOUT_MS).await;
    drop(silent);
}
both_stores!(
    smtp_server_that_never_greets_times_out_,
    smtp_server_that_never_greets_times_out
);

async fn refused_email_does_not_count_against_the_send_limit(kind: StoreKind) {
    let smtp = start_smtp(None);
    let overrides = format!(
        "{}\n[codes]\nmax_sends = 1\n",
        smtp.settings("none", "", "")
    );
    let app = spawn_app_with(kind, &overrides).await;
    app.add_customer("2006", Some("frank@example.com"), None, None)
        .await;

    smtp.refuse_recipients.store(true, Ordering::SeqCst);
    let refused = app.send("2006", "Email").await;
    smtp.refuse_recipients.store(false, Ordering::SeqCst);
    let accepted = app.send("2006", "Email").await;
    let over_limit = app.send("2006", "Email").await;

    assert_eq!(refused.xml_status(), "error");
    assert_eq!(
        accepted.xml_status(),
        "success",
        "the refused send was given back"
    );
    assert_eq!(over_limit.xml_status(), "send limited");
    let messages = smtp.messages();
    assert_eq!(messages.len(), 1);
    let code = first_code(&messages[0].parts().1);
    assert_eq!(app.verify("2006", &code).await.xml_status(), "success");
}
both_stores!(
    refused_email_does_not_count_against_the_send_limit_,
    refused_email_does_not_count_against_the_send_limit
);

/// Sends straight through the sender, to read its error text.
async fn send_direct(overrides: &str) -> Result<String, String> {
    let dir = tempfile::tempdir().unwrap();
    let settings = test_settings(StoreKind::Memory, dir.path(), "direct:", overrides);
    let sender = SmtpEmail::new(&settings).map_err(|e| format!("build: {e:#}"))?;
    let code = SecretString::from("424242");
    let to = Email::parse("grace@example.com").unwrap();
    sender
        .send(
            &to,
            &CodeMessage {
                code: &code,
                minutes: 5,
            },
        )
        .await
        .map_err(|e| e.to_string())
}

#[tokio::test]
async fn smtp_errors_name_the_setting_to_check() {
    let plain = start_smtp(None);
    let with_auth = start_smtp(Some(("otp-user", "s3cret")));
    let closed = free_port();
    let cases = [
        (
            "TLS spoken to a plain port",
            plain.settings("tls", "", ""),
            "email.smtp.security",
        ),
        (
            "wrong password",
            with_auth.settings("starttls", "otp-user", "nope"),
            "email.smtp.username and email.smtp.password",
        ),
        (
            "STARTTLS asked of a server without it",
            plain.settings("starttls", "", ""),
            "email.smtp.security",
        ),
        (
            "nothing listening",
            format!(
                "[email.smtp]\nhost = \"127.0.0.1\"\nport = {closed}\nsecurity = \"none\"\ntimeout_ms = {TIMEOUT_MS}"
            ),
            "cannot connect to 127.0.0.1",
        ),
    ];
    for (what, overrides, hint) in cases {
        let err = send_direct(&overrides).await.expect_err(what);
        assert!(
            err.contains(hint),
            "{what}: {err:?} does not mention {hint:?}"
        );
        assert!(!err.contains("424242"), "{what}: the code leaked: {err}");
        assert!(!err.contains("nope"), "{what}: the password leaked: {err}");
    }
}

#[tokio::test]
async fn html_alternative_is_sent_with_escaped_values() {
    let smtp = start_smtp(None);
    let overrides = smtp.settings_with(
        "none",
        "",
        "",
        "subject = \"Code for {recipient}\"\nhtml_body = '<p>Code: <b>{code}</b> from {from}</p>'",
    );

    let answer = send_direct(&overrides).await.expect("sent");

    assert!(answer.starts_with("250"), "{answer}");
    let messages = smtp.messages();
    assert_eq!(messages.len(), 1);
    let text = String::from_utf8_lossy(&messages[0].data).into_owned();
    assert!(text.contains("multipart/alternative"), "{text}");
    assert!(text.contains("Your verification code is 424242."), "{text}");
    assert!(
        text.contains("<p>Code: <b>424242</b> from Bank OTP &lt;otp@bank.example&gt;</p>"),
        "{text}"
    );
    assert!(
        text.contains("Subject: Code for grace@example.com"),
        "{text}"
    );
}
