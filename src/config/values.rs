//! Values the settings validate, as the types their users take: parsed here, so delivery and the
//! store import them from the settings rather than the settings importing those modules.

use serde::{Deserialize, Serialize};

/// One entry of `sms.success_statuses`: an exact status or a class such as `2xx`, parsed when
/// the settings load and written back as the admin wrote it (`"2xx"`, `"202"`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub enum StatusMatcher {
    Exact(u16),
    Class(u16),
}

impl StatusMatcher {
    pub fn parse(s: &str) -> Option<StatusMatcher> {
        let s = s.trim().to_ascii_lowercase();
        if let Some(class) = s.strip_suffix("xx") {
            let d = class.parse::<u16>().ok()?;
            return (1..=5).contains(&d).then_some(StatusMatcher::Class(d));
        }
        let n = s.parse::<u16>().ok()?;
        (100..=599).contains(&n).then_some(StatusMatcher::Exact(n))
    }
    /// Whether this entry would count some redirect (3xx) as sent.
    pub fn matches_redirect(self) -> bool {
        match self {
            StatusMatcher::Exact(n) => (300..400).contains(&n),
            StatusMatcher::Class(c) => c == 3,
        }
    }
    pub fn matches(self, status: u16) -> bool {
        match self {
            StatusMatcher::Exact(n) => n == status,
            StatusMatcher::Class(c) => status / 100 == c,
        }
    }
}

impl TryFrom<String> for StatusMatcher {
    type Error = String;
    fn try_from(s: String) -> Result<Self, Self::Error> {
        StatusMatcher::parse(&s).ok_or_else(|| {
            format!("{s:?} is neither a status like \"200\" nor a class like \"2xx\"")
        })
    }
}

impl From<StatusMatcher> for String {
    fn from(m: StatusMatcher) -> String {
        match m {
            StatusMatcher::Exact(n) => n.to_string(),
            StatusMatcher::Class(c) => format!("{c}xx"),
        }
    }
}

/// An HTTP method (`sms.method`, `directory.http.method`), parsed when the settings load; written
/// in any case, kept in capitals.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct HttpMethod(pub reqwest::Method);

impl TryFrom<String> for HttpMethod {
    type Error = String;
    fn try_from(s: String) -> Result<Self, Self::Error> {
        let name = s.trim().to_ascii_uppercase();
        match reqwest::Method::from_bytes(name.as_bytes()) {
            Ok(m) if !name.is_empty() => Ok(HttpMethod(m)),
            _ => Err(format!("{s:?} is not an HTTP method")),
        }
    }
}

impl std::fmt::Display for HttpMethod {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.0.as_str())
    }
}

impl From<HttpMethod> for String {
    fn from(m: HttpMethod) -> String {
        m.0.as_str().to_string()
    }
}

/// A `"Name: Value"` line (`sms.request_headers`, `directory.http.request_headers`): the name
/// checked and the value template split off when the settings load; shown and stored as written.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct HeaderLine {
    text: String,
    pub name: reqwest::header::HeaderName,
    /// The value as a template (`Bearer {token}`), trimmed.
    pub value: String,
}

impl TryFrom<String> for HeaderLine {
    type Error = String;
    fn try_from(text: String) -> Result<Self, Self::Error> {
        let (name, value) = crate::outbound::parse_header(&text)?;
        Ok(HeaderLine { text, name, value })
    }
}

impl From<HeaderLine> for String {
    fn from(h: HeaderLine) -> String {
        h.text
    }
}

impl AsRef<str> for HeaderLine {
    fn as_ref(&self) -> &str {
        &self.text
    }
}

impl std::ops::Deref for HeaderLine {
    type Target = str;
    fn deref(&self) -> &str {
        &self.text
    }
}

/// A regular expression (`sms.failure_body_pattern`), compiled when the settings load; empty for
/// none. Shown and stored as written.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct Pattern {
    text: String,
    pub regex: Option<regex::Regex>,
}

impl TryFrom<String> for Pattern {
    type Error = String;
    fn try_from(text: String) -> Result<Self, Self::Error> {
        let regex = match text.is_empty() {
            true => None,
            false => Some(regex::Regex::new(&text).map_err(|e| e.to_string())?),
        };
        Ok(Pattern { text, regex })
    }
}

impl From<Pattern> for String {
    fn from(p: Pattern) -> String {
        p.text
    }
}

impl std::ops::Deref for Pattern {
    type Target = str;
    fn deref(&self) -> &str {
        &self.text
    }
}

/// Where the store lives: `memory://` or one of the Redis URL forms.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StoreUrl {
    Memory,
    Redis(String),
    Sentinel {
        nodes: Vec<String>,
        service: String,
        tls: bool,
    },
    Cluster(Vec<String>),
}

impl StoreUrl {
    pub fn parse(url: &str) -> Result<StoreUrl, String> {
        let url = url.trim();
        if url == "memory://" || url == "memory" {
            return Ok(StoreUrl::Memory);
        }
        if url.starts_with("redis://") || url.starts_with("rediss://") {
            return Ok(StoreUrl::Redis(url.to_string()));
        }
        for (scheme, tls) in [("redis+sentinel://", false), ("rediss+sentinel://", true)] {
            if let Some(rest) = url.strip_prefix(scheme) {
                // redis+sentinel://host1:26379,host2:26379/mymaster
                let (hosts, service) = rest.split_once('/').ok_or(
                    "a Sentinel URL names the master: redis+sentinel://host:26379/mymaster",
                )?;
                let service = service.trim_matches('/');
                if service.is_empty() || hosts.is_empty() {
                    return Err("a Sentinel URL needs hosts and a master name: redis+sentinel://host:26379/mymaster".into());
                }
                let s = if tls { "rediss" } else { "redis" };
                let nodes = node_urls(s, hosts);
                return Ok(StoreUrl::Sentinel {
                    nodes,
                    service: service.to_string(),
                    tls,
                });
            }
        }
        for (scheme, s) in [
            ("redis+cluster://", "redis"),
            ("rediss+cluster://", "rediss"),
        ] {
            if let Some(rest) = url.strip_prefix(scheme) {
                let hosts = rest.trim_end_matches('/');
                if hosts.is_empty() {
                    return Err(
                        "a Cluster URL lists nodes: redis+cluster://node1:6379,node2:6379".into(),
                    );
                }
                return Ok(StoreUrl::Cluster(node_urls(s, hosts)));
            }
        }
        Err(
            "must be memory://, redis://…, rediss://…, redis+sentinel://… or redis+cluster://…"
                .into(),
        )
    }
}

/// `user:pass@h1:26379,h2:26379` → one URL per node, each with the credentials.
fn node_urls(scheme: &str, hosts: &str) -> Vec<String> {
    let (auth, hosts) = match hosts.rsplit_once('@') {
        Some((auth, hosts)) => (format!("{auth}@"), hosts),
        None => (String::new(), hosts),
    };
    hosts
        .split(',')
        .map(|h| format!("{scheme}://{auth}{}", h.trim()))
        .collect()
}

/// A CIDR (`10.0.0.0/8`) or a single address, parsed when the settings load.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(try_from = "String")]
pub struct Network(pub ipnet::IpNet);

impl TryFrom<String> for Network {
    type Error = String;
    fn try_from(s: String) -> Result<Self, Self::Error> {
        s.parse::<ipnet::IpNet>()
            .or_else(|_| s.parse::<std::net::IpAddr>().map(ipnet::IpNet::from))
            .map(Network)
            .map_err(|_| format!("{s:?} is not a CIDR like 10.0.0.0/8"))
    }
}

/// An ISO 3166 region (`GB`), or none (empty string), parsed when the settings load.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(try_from = "String")]
pub struct Region(pub Option<phonenumber::country::Id>);

impl TryFrom<String> for Region {
    type Error = String;
    fn try_from(s: String) -> Result<Self, Self::Error> {
        if s.is_empty() {
            return Ok(Region(None));
        }
        s.parse()
            .map(|id| Region(Some(id)))
            .map_err(|_| format!("{s:?} is not an ISO 3166 region like GB"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_name_every_node_with_its_credentials() {
        assert_eq!(
            StoreUrl::parse("redis+sentinel://:pw@s1:26379,s2:26379/mymaster"),
            Ok(StoreUrl::Sentinel {
                nodes: vec!["redis://:pw@s1:26379".into(), "redis://:pw@s2:26379".into()],
                service: "mymaster".into(),
                tls: false
            })
        );
        assert_eq!(
            StoreUrl::parse("rediss+cluster://u:p@n1:6379,n2:6379"),
            Ok(StoreUrl::Cluster(vec![
                "rediss://u:p@n1:6379".into(),
                "rediss://u:p@n2:6379".into()
            ]))
        );
        assert_eq!(StoreUrl::parse("memory://"), Ok(StoreUrl::Memory));
        assert!(StoreUrl::parse("redis+sentinel://s1:26379").is_err());
        assert!(StoreUrl::parse("mysql://x").is_err());
    }

    #[test]
    fn status_matchers() {
        assert!(StatusMatcher::parse("2xx").is_some_and(|m| m.matches(204)));
        assert!(StatusMatcher::parse("202").is_some_and(|m| !m.matches(200)));
        assert!(StatusMatcher::parse("9xx").is_none());
        assert!(StatusMatcher::parse("ok").is_none());
    }
}
