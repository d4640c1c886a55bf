//! Validated values that cross the edge: customer ids, call ids, contact methods, addresses, numbers.
//!
//! Handlers parse raw parameters into these once; inner code never sees raw strings. `Display` of an
//! address or number is masked, so logging one by accident leaks nothing useful.

use std::fmt;

use serde::{Deserialize, Serialize};

/// A customer (account) id: 1 to 64 visible ASCII characters, no braces (Redis Cluster hash tags).
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct CustomerId(String);

impl CustomerId {
    pub fn parse(raw: &str) -> Result<Self, String> {
        let s = raw.trim();
        if s.is_empty() {
            return Err("customer id is empty".into());
        }
        if s.len() > 64 {
            return Err("customer id is longer than 64 characters".into());
        }
        if !s
            .bytes()
            .all(|b| b.is_ascii_graphic() && b != b'{' && b != b'}')
        {
            return Err("customer id may hold only visible ASCII characters other than { }".into());
        }
        Ok(CustomerId(s.to_string()))
    }
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl TryFrom<String> for CustomerId {
    type Error = String;
    fn try_from(value: String) -> Result<Self, Self::Error> {
        CustomerId::parse(&value)
    }
}

impl From<CustomerId> for String {
    fn from(c: CustomerId) -> String {
        c.0
    }
}

impl fmt::Display for CustomerId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// The call a code is bound to (GIA's call id or a conversation id).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CallId(String);

impl CallId {
    pub fn parse(raw: &str) -> Result<Self, String> {
        let s = raw.trim();
        if s.len() > 128 {
            return Err("call id is longer than 128 characters".into());
        }
        if !s.bytes().all(|b| b.is_ascii_graphic()) {
            return Err("call id may hold only visible ASCII characters".into());
        }
        Ok(CallId(s.to_string()))
    }
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for CallId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// The line the caller rings from (ANI), as GIA or Genesys Cloud passes it: a number, with an
/// optional leading `+` (spaces, dashes, dots and brackets dropped), also inside a `tel:` URI or as
/// the user part of a `sip:`/`sips:` URI (`sip:+13175550116@host;user=phone`), so every form of
/// one line is the same line. A value that is present but no number ("anonymous", "Restricted",
/// empty, `sip:anonymous@anonymous.invalid`) is the one shared line [`CallerNumber::WITHHELD`]:
/// hiding the number must not escape the line limits.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CallerNumber(String);

impl CallerNumber {
    /// The name of the shared line of every withheld or unusable caller number. No number can
    /// take it, since numbers are digits.
    pub const WITHHELD: &'static str = "withheld";

    /// The line a caller-number parameter names: its number, or the withheld line.
    pub fn read(raw: &str) -> Self {
        Self::parse(raw).unwrap_or_else(Self::withheld)
    }

    pub fn withheld() -> Self {
        CallerNumber(Self::WITHHELD.to_string())
    }

    /// The number in `raw`, when it holds one.
    pub fn parse(raw: &str) -> Option<Self> {
        let s = raw.trim();
        let user = uri_user_part(s);
        let s = user.as_deref().unwrap_or(s);
        let (plus, rest) = match s.strip_prefix('+') {
            Some(rest) => ("+", rest),
            None => ("", s),
        };
        let digits: String = rest
            .chars()
            .filter(|c| !matches!(c, ' ' | '-' | '.' | '(' | ')'))
            .collect();
        ((3..=20).contains(&digits.len()) && digits.bytes().all(|b| b.is_ascii_digit()))
            .then(|| CallerNumber(format!("{plus}{digits}")))
    }
    pub fn is_withheld(&self) -> bool {
        self.0 == Self::WITHHELD
    }
    pub fn as_str(&self) -> &str {
        &self.0
    }
    pub fn masked(&self) -> String {
        if self.is_withheld() {
            return Self::WITHHELD.to_string();
        }
        mask_phone(&self.0)
    }
}

/// The user part of a `tel:` (RFC 3966) or `sip:`/`sips:` (RFC 3261) URI, its parameters dropped
/// (`;ext=…`, `;user=phone`) and a percent-encoded `+` read as one; `None` for anything else.
fn uri_user_part(s: &str) -> Option<String> {
    let scheme_end = s.find(':')?;
    let (scheme, rest) = (&s[..scheme_end], &s[scheme_end + 1..]);
    let user = if scheme.eq_ignore_ascii_case("tel") {
        rest
    } else if scheme.eq_ignore_ascii_case("sip") || scheme.eq_ignore_ascii_case("sips") {
        // A SIP URI without a user part (`sip:host`) names no number.
        rest.split_once('@').map_or("", |(user, _)| user)
    } else {
        return None;
    };
    let user = user.split(';').next().unwrap_or("");
    Some(match user.get(..3) {
        Some(p) if p.eq_ignore_ascii_case("%2b") => format!("+{}", &user[3..]),
        _ => user.to_string(),
    })
}

impl fmt::Display for CallerNumber {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.masked())
    }
}

/// How the caller gets or makes a code: `TwoFactorAuthSelectedMethod`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum Method {
    Email,
    Sms,
    Authenticator,
}

impl Method {
    /// Accepts `Email`, `SMS` and `Authenticator` in any case.
    pub fn parse(raw: &str) -> Result<Self, String> {
        Self::from_stored(&raw.trim().to_ascii_lowercase()).ok_or_else(|| {
            format!(
                "TwoFactorAuthSelectedMethod must be Email, SMS or Authenticator, not {:?}",
                truncate(raw, 32)
            )
        })
    }
    /// A method as the store keeps it (`as_str`'s names exactly), as the Lua scripts compare it.
    pub fn from_stored(name: &str) -> Option<Self> {
        [Method::Email, Method::Sms, Method::Authenticator]
            .into_iter()
            .find(|m| m.as_str() == name)
    }
    /// Stable lower-case name for keys, logs and metrics.
    pub fn as_str(self) -> &'static str {
        match self {
            Method::Email => "email",
            Method::Sms => "sms",
            Method::Authenticator => "authenticator",
        }
    }
}

impl fmt::Display for Method {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A verified email address.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct Email(String);

impl Email {
    pub fn parse(raw: &str) -> Result<Self, String> {
        let s = raw.trim();
        if s.len() > 254 {
            return Err("email address is longer than 254 characters".into());
        }
        s.parse::<lettre::Address>()
            .map_err(|_| format!("{:?} is not an email address", mask_email(s)))?;
        Ok(Email(s.to_string()))
    }
    pub fn as_str(&self) -> &str {
        &self.0
    }
    /// An address read back from the store, where only validated addresses are written.
    pub fn from_stored(s: String) -> Result<Self, String> {
        if s.contains('@') && s.len() <= 254 {
            Ok(Email(s))
        } else {
            Err("a stored email address is malformed".into())
        }
    }
    pub fn masked(&self) -> String {
        mask_email(&self.0)
    }
}

impl TryFrom<String> for Email {
    type Error = String;
    fn try_from(value: String) -> Result<Self, Self::Error> {
        Email::parse(&value)
    }
}

impl From<Email> for String {
    fn from(e: Email) -> String {
        e.0
    }
}

impl fmt::Display for Email {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.masked())
    }
}

/// A phone number in E.164 (`+447911123456`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct PhoneNumber(String);

impl PhoneNumber {
    /// Parses international numbers (`+44 7700 900123`), or national ones in `default_region`.
    pub fn parse_in(
        raw: &str,
        default_region: Option<phonenumber::country::Id>,
    ) -> Result<Self, String> {
        let s = raw.trim();
        if s.len() > 32 {
            return Err("phone number is longer than 32 characters".into());
        }
        let region = if s.starts_with('+') {
            None
        } else {
            default_region
        };
        if region.is_none() && !s.starts_with('+') {
            return Err(format!(
                "{:?} has no country code: write it as +<country><number> or set directory.default_region",
                mask_phone(s)
            ));
        }
        let parsed = phonenumber::parse(region, s)
            .map_err(|_| format!("{:?} is not a phone number", mask_phone(s)))?;
        if !phonenumber::is_valid(&parsed) {
            return Err(format!("{:?} is not a valid phone number", mask_phone(s)));
        }
        Ok(PhoneNumber(
            parsed.format().mode(phonenumber::Mode::E164).to_string(),
        ))
    }
    pub fn parse(raw: &str) -> Result<Self, String> {
        Self::parse_in(raw, None)
    }
    /// A number read back from the store, where only validated E.164 numbers are written: checked
    /// for its form only, since the full libphonenumber check costs more than the rest of a request.
    pub fn from_stored(s: String) -> Result<Self, String> {
        let digits = s.strip_prefix('+').unwrap_or("");
        if (4..=15).contains(&digits.len()) && digits.bytes().all(|b| b.is_ascii_digit()) {
            Ok(PhoneNumber(s))
        } else {
            Err("a stored phone number is not in E.164".into())
        }
    }
    /// `+447911123456`.
    pub fn e164(&self) -> &str {
        &self.0
    }
    /// `447911123456`, or `+447911123456` with the plus symbol, as the gateway and GIA expect.
    pub fn for_recipient(&self, plus_symbol: bool) -> &str {
        if plus_symbol { &self.0 } else { &self.0[1..] }
    }
    /// Country calling code without `+`.
    pub fn country_code(&self) -> String {
        phonenumber::parse(None, &self.0)
            .map(|p| p.code().value().to_string())
            .unwrap_or_default()
    }
    pub fn masked(&self) -> String {
        mask_phone(&self.0)
    }
    /// The ways a gateway may write this number back besides E.164: national format as printed
    /// (`07911 123456`), its digits alone (`07911123456`), and international with spaces
    /// (`+44 7911 123456`). For redaction, so an echoed number is masked whatever its format.
    pub fn other_forms(&self) -> Vec<String> {
        let Ok(parsed) = phonenumber::parse(None, &self.0) else {
            return Vec::new();
        };
        let national = parsed
            .format()
            .mode(phonenumber::Mode::National)
            .to_string();
        let international = parsed
            .format()
            .mode(phonenumber::Mode::International)
            .to_string();
        let digits: String = national.chars().filter(char::is_ascii_digit).collect();
        let mut forms = vec![national, digits, international];
        // Longest first, so a form that contains another is masked whole.
        forms.sort_by_key(|f| std::cmp::Reverse(f.len()));
        forms.dedup();
        forms.retain(|f| f.chars().filter(char::is_ascii_digit).count() >= 6);
        forms
    }
}

impl TryFrom<String> for PhoneNumber {
    type Error = String;
    fn try_from(value: String) -> Result<Self, Self::Error> {
        PhoneNumber::parse(&value)
    }
}

impl From<PhoneNumber> for String {
    fn from(p: PhoneNumber) -> String {
        p.0
    }
}

impl fmt::Display for PhoneNumber {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.masked())
    }
}

/// `alice@example.com` → `a***@example.com`.
pub fn mask_email(s: &str) -> String {
    match s.rsplit_once('@') {
        Some((local, domain)) => {
            let first: String = local.chars().take(1).collect();
            format!("{first}***@{domain}")
        }
        None => "***".into(),
    }
}

/// `+447911123456` → `+44******456`: the first two and the last three digits stay.
pub fn mask_phone(s: &str) -> String {
    let digits: Vec<char> = s.chars().filter(|c| c.is_ascii_digit()).collect();
    if digits.len() < 7 {
        return "***".into();
    }
    let plus = if s.trim_start().starts_with('+') {
        "+"
    } else {
        ""
    };
    let head: String = digits[..2].iter().collect();
    let tail: String = digits[digits.len() - 3..].iter().collect();
    // A fixed run of stars, so the mask does not tell the number's length either.
    format!("{plus}{head}******{tail}")
}

/// At most `max` characters of `s`, for echoing bad input in messages.
pub fn truncate(s: &str, max: usize) -> String {
    let mut out: String = s.chars().take(max).collect();
    if s.chars().count() > max {
        out.push('…');
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn masks_keep_little() {
        assert_eq!(mask_email("alice@example.com"), "a***@example.com");
        assert_eq!(mask_phone("+447911123456"), "+44******456");
    }

    #[test]
    fn phone_numbers_become_e164() {
        let p = PhoneNumber::parse("+44 7911 123456").expect("valid");
        assert_eq!(p.e164(), "+447911123456");
        assert_eq!(p.for_recipient(false), "447911123456");
        assert_eq!(p.country_code(), "44");
        let gb = "GB".parse().ok();
        assert_eq!(
            PhoneNumber::parse_in("07911 123456", gb)
                .expect("national")
                .e164(),
            "+447911123456"
        );
        assert!(PhoneNumber::parse("07911 123456").is_err());
        assert!(PhoneNumber::parse("+44 12").is_err());
    }

    #[test]
    fn every_form_of_one_line_is_that_line() {
        let line = Some("+13175550116");
        let cases = [
            ("+13175550116", line),
            ("tel:+13175550116", line),
            ("TEL:+1-317-555-0116;ext=22", line),
            ("sip:+13175550116@203.0.113.9;user=phone", line),
            ("sips:+13175550116@pbx.example:5061", line),
            ("sip:%2B13175550116@pbx.example", line),
            ("+1 (317) 555.0116", line),
            ("sip:pbx.example", None),
            ("anonymous", None),
            ("sip:anonymous@anonymous.invalid", None),
            ("mailto:+13175550116", None),
        ];
        for (raw, want) in cases {
            let got = CallerNumber::parse(raw);
            assert_eq!(
                got.as_ref().map(CallerNumber::as_str),
                want,
                "input {raw:?}"
            );
        }
        for withheld in [
            "anonymous",
            "Restricted",
            "private",
            "unavailable",
            "",
            " ",
            "abc",
        ] {
            let line = CallerNumber::read(withheld);
            assert!(line.is_withheld(), "{withheld:?} is the withheld line");
            assert_eq!(line.masked(), "withheld");
        }
    }

    #[test]
    fn methods_in_any_case() {
        assert_eq!(Method::parse("sms"), Ok(Method::Sms));
        assert_eq!(Method::parse("EMAIL"), Ok(Method::Email));
        assert_eq!(Method::parse("AuThEnTiCaToR"), Ok(Method::Authenticator));
        assert!(Method::parse("fax").is_err());
    }
}
