//! What a run may do: the outbound allow-list, resource limits, and secret redaction.
//!
//! The allow-list is configuration (`scheme://host[:port]`): an empty list denies everything,
//! `*.example.com` matches subdomains but not `example.com` itself, a `prefix*` first label
//! (e.g. `reports*.office.com`) matches that label's prefix, and entries with a path are refused.

use std::time::Duration;

use regex::Regex;
use url::Url;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AllowedOrigin {
    scheme: String,
    host: String,
    port: u16,
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum AllowListError {
    #[error("allow-list entry '{0}' is not a URL such as https://graph.microsoft.com")]
    NotAUrl(String),
    #[error("allow-list entry '{0}' has a path; give scheme://host[:port] only")]
    HasPath(String),
    #[error("allow-list entry '{0}' uses scheme '{1}'; only http and https are allowed")]
    Scheme(String, String),
}

impl AllowedOrigin {
    pub fn parse(entry: &str) -> Result<Self, AllowListError> {
        let url = Url::parse(entry).map_err(|_| AllowListError::NotAUrl(entry.into()))?;
        if !matches!(url.scheme(), "http" | "https") {
            return Err(AllowListError::Scheme(entry.into(), url.scheme().into()));
        }
        if url.path() != "/" || url.query().is_some() || url.fragment().is_some() {
            return Err(AllowListError::HasPath(entry.into()));
        }
        // `Url` percent-encodes `*` in hosts; read the host from the text instead.
        let authority = entry
            .split_once("://")
            .map(|(_, a)| a.trim_end_matches('/'))
            .unwrap_or("");
        let host = if authority.starts_with('[') {
            authority
                .find(']')
                .map_or(authority, |end| &authority[..=end])
        } else {
            authority
                .rsplit_once(':')
                .filter(|(_, port)| port.chars().all(|c| c.is_ascii_digit()))
                .map_or(authority, |(host, _)| host)
        };
        Ok(Self {
            scheme: url.scheme().into(),
            host: host.to_ascii_lowercase(),
            port: url.port_or_known_default().unwrap_or(443),
        })
    }

    fn matches(&self, url: &Url) -> bool {
        let Some(host) = url.host_str() else {
            return false;
        };
        let host = host.to_ascii_lowercase();
        self.scheme == url.scheme()
            && Some(self.port) == url.port_or_known_default()
            && host_matches(&self.host, &host)
    }
}

impl std::fmt::Display for AllowedOrigin {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}://{}:{}", self.scheme, self.host, self.port)
    }
}

fn host_matches(pattern: &str, host: &str) -> bool {
    match pattern.split_once('.') {
        Some(("*", rest)) => host
            .strip_suffix(rest)
            .is_some_and(|p| p.ends_with('.') && p.len() > 1),
        Some((first, rest)) if first.ends_with('*') => {
            let prefix = &first[..first.len() - 1];
            host.split_once('.').is_some_and(|(label, host_rest)| {
                host_rest == rest
                    && label.starts_with(prefix)
                    && label.chars().all(|c| c.is_ascii_alphanumeric() || c == '-')
            })
        }
        _ => pattern == host,
    }
}

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct AllowList {
    origins: Vec<AllowedOrigin>,
}

impl AllowList {
    pub fn parse<S: AsRef<str>>(entries: &[S]) -> Result<Self, AllowListError> {
        let origins = entries
            .iter()
            .map(|e| AllowedOrigin::parse(e.as_ref()))
            .collect::<Result<_, _>>()?;
        Ok(Self { origins })
    }

    /// `Ok(url)` when allowed; otherwise the reason, for the `denied` error the guest sees.
    pub fn check(&self, raw: &str) -> Result<Url, String> {
        let url = Url::parse(raw).map_err(|e| format!("'{raw}' is not a valid URL ({e})"))?;
        if !url.username().is_empty() || url.password().is_some() {
            return Err("URLs with credentials are not allowed".into());
        }
        if self.origins.iter().any(|o| o.matches(&url)) {
            Ok(url)
        } else {
            Err(format!(
                "{}://{}:{} is not in the allow-list",
                url.scheme(),
                url.host_str().unwrap_or(""),
                url.port_or_known_default().unwrap_or(0)
            ))
        }
    }

    pub fn entries(&self) -> Vec<String> {
        self.origins.iter().map(|o| o.to_string()).collect()
    }
}

/// Per-run resource limits.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Limits {
    /// Linear memory of the guest, in bytes.
    pub memory_bytes: usize,
    /// Wall-clock time for one call into the guest (configure, check, run-task, ...).
    pub timeout: Duration,
    /// Outbound requests per run.
    pub max_requests: u64,
    /// Response body cap, in bytes.
    pub max_response_bytes: usize,
    /// Log lines per run kept (the rest are counted and dropped).
    pub max_log_lines: u64,
    /// Records per run; emitting more stops the run (a guest that never stops emitting).
    pub max_records: u64,
}

impl Default for Limits {
    fn default() -> Self {
        Self {
            memory_bytes: 512 << 20,
            timeout: Duration::from_secs(60 * 60),
            max_requests: 200_000,
            max_response_bytes: 256 << 20,
            max_log_lines: 100_000,
            max_records: 50_000_000,
        }
    }
}

pub const REDACTED: &str = "[REDACTED]";

/// Scrubs secrets from any text the harness shows or stores: the configured secret values,
/// bearer tokens, `client_secret=` form fields, report download tokens, and JWTs.
#[derive(Debug, Clone)]
pub struct Redactor {
    secrets: Vec<String>,
}

impl Redactor {
    pub fn new(secrets: impl IntoIterator<Item = String>) -> Self {
        let mut secrets: Vec<String> = secrets.into_iter().filter(|s| s.len() >= 4).collect();
        // Longest first, so a secret containing another is scrubbed whole.
        secrets.sort_by_key(|s| std::cmp::Reverse(s.len()));
        let mut encoded: Vec<String> = Vec::new();
        for s in &secrets {
            let form: String = form_urlencoded::byte_serialize(s.as_bytes()).collect();
            if &form != s {
                encoded.push(form);
            }
        }
        secrets.extend(encoded);
        Self { secrets }
    }

    /// Token-like patterns, compiled once per process.
    fn patterns() -> &'static [Regex] {
        static PATTERNS: std::sync::OnceLock<Vec<Regex>> = std::sync::OnceLock::new();
        PATTERNS.get_or_init(|| {
            [
                r"(?i)(bearer\s+)[A-Za-z0-9\-._~+/]+=*",
                r"(?i)(client_secret=)[^&\s]+",
                r"(?i)(client_assertion=)[^&\s]+",
                r"(?i)([?&]token=)[^&\s]+",
                r#"(?i)("(?:access_token|client_secret)"\s*:\s*")[^"]*"#,
                r"()eyJ[A-Za-z0-9_-]{8,}\.[A-Za-z0-9_-]{8,}\.[A-Za-z0-9_-]*",
            ]
            .iter()
            .map(|p| Regex::new(p).expect("valid pattern"))
            .collect()
        })
    }

    pub fn redact(&self, text: &str) -> String {
        let mut out = text.to_string();
        for secret in &self.secrets {
            if out.contains(secret.as_str()) {
                out = out.replace(secret.as_str(), REDACTED);
            }
        }
        for pattern in Self::patterns() {
            out = pattern
                .replace_all(&out, format!("${{1}}{REDACTED}"))
                .into_owned();
        }
        out
    }

    /// Whether a text holds one of the configured secrets (verbatim or URL-encoded).
    pub fn leaks(&self, text: &str) -> bool {
        self.secrets.iter().any(|s| text.contains(s.as_str()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn list(entries: &[&str]) -> AllowList {
        AllowList::parse(entries).unwrap()
    }

    #[test]
    fn empty_list_denies_everything() {
        assert!(
            list(&[])
                .check("https://graph.microsoft.com/v1.0/users")
                .is_err()
        );
    }

    #[test]
    fn exact_origin_allows_only_that_origin() {
        let l = list(&["https://graph.microsoft.com"]);
        assert!(
            l.check("https://graph.microsoft.com/v1.0/users?$top=1")
                .is_ok()
        );
        assert!(l.check("https://graph.microsoft.com:443/v1.0").is_ok());
        assert!(
            l.check("http://graph.microsoft.com/v1.0").is_err(),
            "scheme matters"
        );
        assert!(
            l.check("https://graph.microsoft.com:8443/v1.0").is_err(),
            "port matters"
        );
        assert!(l.check("https://evil.example/graph.microsoft.com").is_err());
        assert!(
            l.check("https://graph.microsoft.com.evil.example/")
                .is_err()
        );
        assert!(l.check("https://user:pw@graph.microsoft.com/").is_err());
    }

    #[test]
    fn wildcard_subdomain_does_not_match_the_parent() {
        let l = list(&["https://*.office.com"]);
        assert!(l.check("https://reportsweu.office.com/data").is_ok());
        assert!(l.check("https://office.com/").is_err());
    }

    #[test]
    fn prefix_wildcard_matches_one_label() {
        let l = list(&["https://reports*.office.com"]);
        assert!(
            l.check("https://reports.office.com/data/download/x")
                .is_ok()
        );
        assert!(
            l.check("https://reportsweu.office.com/data/v1.0/download?token=x")
                .is_ok()
        );
        assert!(l.check("https://outlook.office.com/").is_err());
        assert!(l.check("https://reports.evil.office.com/").is_err());
    }

    #[test]
    fn loopback_ports_are_distinct() {
        let l = list(&["http://127.0.0.1:8080"]);
        assert!(l.check("http://127.0.0.1:8080/v1.0").is_ok());
        assert!(l.check("http://127.0.0.1:8081/v1.0").is_err());
    }

    #[test]
    fn entries_with_paths_or_odd_schemes_are_refused() {
        assert_eq!(
            AllowList::parse(&["https://graph.microsoft.com/v1.0"]),
            Err(AllowListError::HasPath(
                "https://graph.microsoft.com/v1.0".into()
            ))
        );
        assert!(matches!(
            AllowList::parse(&["ftp://x.example"]),
            Err(AllowListError::Scheme(..))
        ));
        assert!(matches!(
            AllowList::parse(&["graph.microsoft.com"]),
            Err(AllowListError::NotAUrl(_))
        ));
    }

    #[test]
    fn redacts_secrets_tokens_and_form_fields() {
        let r = Redactor::new(["s3cr3t~V@lue+1".to_string()]);
        let text = "secret s3cr3t~V@lue+1 form client_secret=s3cr3t%7EV%40lue%2B1&x=1 Authorization: Bearer abc.def-ghi \
                    url https://reportsweu.office.com/data/v1.0/download?token=eyJhbGciOiJIUzI1NiJ9.eyJhdWQiOiJ4In0.sig";
        let out = r.redact(text);
        assert!(!out.contains("s3cr3t"), "{out}");
        assert!(!out.contains("abc.def"), "{out}");
        assert!(!out.contains("eyJhbGci"), "{out}");
        assert!(out.contains("client_secret=[REDACTED]&x=1"), "{out}");
        assert!(r.leaks("x s3cr3t~V@lue+1"));
        assert!(!r.leaks(&out));
    }
}
