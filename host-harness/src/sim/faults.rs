//! Fault injection: the spec-string grammar and the runtime state that
//! decides, request by request, which fault fires.
//!
//! Grammar: a comma-separated list of `key=value` or bare `key` items, for
//! example `throttle=0.2,retry-after=2.128,latency=50,missing-permission=User.Read.All+Directory.Read.All`.
//! An empty string (or `none`) means no faults. Keys may use `_` for `-`.

use std::collections::HashMap;
use std::fmt;
use std::str::FromStr;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};

use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

/// AADSTS codes the `aadsts=CODE` fault can force on the token endpoint.
pub const FORCEABLE_AADSTS: &[u32] = &[
    7000215, 7000222, 90002, 900023, 700016, 70011, 1002012, 700022, 7000218, 500011,
];

/// Faults to inject. `Default` is "no faults".
#[derive(Debug, Clone, PartialEq)]
pub struct Faults {
    /// Probability (0..=1) that a Graph request gets 429 TooManyRequests.
    pub throttle: f64,
    /// `Retry-After` seconds sent with a 429 (fractional allowed). Default 0.5.
    pub retry_after: f64,
    /// Deterministic throttling: every Nth Graph request gets 429.
    pub every_nth_429: Option<u64>,
    /// Probability (0..=1) that a Graph request gets 503 (with Retry-After 1) or 504.
    pub error5xx: f64,
    /// Probability (0..=1) that a Graph request's connection is closed without a response.
    pub drop: f64,
    /// Milliseconds added before every response.
    pub latency_ms: u64,
    /// `expires_in` of issued tokens in seconds (default 3599); Graph enforces it.
    pub token_lifetime: Option<u64>,
    /// A token is rejected as expired once it has been presented on this many Graph requests.
    pub expire_token_after: Option<u64>,
    /// Application permissions removed from the app's grant.
    pub missing_permissions: Vec<String>,
    /// Tokens carry no `roles` claim at all.
    pub no_roles: bool,
    /// Force the token endpoint to fail with this AADSTS code.
    pub aadsts: Option<u32>,
    /// Page `subscribedSkus` with this many SKUs per page.
    pub sku_page_size: Option<usize>,
    /// The tenant has no Entra ID P1/P2 (used by premium-only endpoints).
    pub non_premium: bool,
    /// The tenant conceals user names in usage reports (the initial value of
    /// `adminReportSettings.displayConcealedNames`; PATCH changes it at run time).
    pub concealed: bool,
    /// Application permissions added to the app's grant (e.g. `ReportSettings.ReadWrite.All`).
    pub grant_permissions: Vec<String>,
    /// Lifetime in seconds of report download URLs (default 120).
    pub report_url_ttl: Option<u64>,
    /// Sign-in log retention in days (default 30, Entra ID P1/P2; 7 is a
    /// Free tenant's). Unlike `non-premium`, `/auditLogs/signIns` still answers.
    pub signin_retention_days: Option<u32>,
    /// Identity-reports throttling on `/auditLogs/signIns`: the 6th, 12th, ...
    /// request within one 10 s window of the simulator clock gets 429.
    pub signin_throttle: bool,
}

impl Default for Faults {
    fn default() -> Self {
        Faults {
            throttle: 0.0,
            retry_after: 0.5,
            every_nth_429: None,
            error5xx: 0.0,
            drop: 0.0,
            latency_ms: 0,
            token_lifetime: None,
            expire_token_after: None,
            missing_permissions: Vec::new(),
            no_roles: false,
            aadsts: None,
            sku_page_size: None,
            non_premium: false,
            concealed: false,
            grant_permissions: Vec::new(),
            report_url_ttl: None,
            signin_retention_days: None,
            signin_throttle: false,
        }
    }
}

impl Faults {
    /// True when nothing is injected.
    pub fn is_none(&self) -> bool {
        *self == Faults::default()
    }

    /// `expires_in` for newly issued tokens.
    pub fn effective_token_lifetime(&self) -> u64 {
        self.token_lifetime.unwrap_or(3599)
    }

    /// Lifetime of report download URLs in seconds.
    pub fn effective_report_url_ttl(&self) -> u64 {
        self.report_url_ttl.unwrap_or(120)
    }
}

/// A fault spec string that could not be parsed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum FaultParseError {
    #[error("unknown fault key '{0}'")]
    UnknownKey(String),
    #[error("fault '{key}' needs a value ({expected})")]
    MissingValue { key: String, expected: String },
    #[error("fault '{key}' takes no value, got '{value}'")]
    UnexpectedValue { key: String, value: String },
    #[error("bad value '{value}' for fault '{key}': expected {expected}")]
    BadValue {
        key: String,
        value: String,
        expected: String,
    },
    #[error("fault '{0}' given more than once")]
    Duplicate(String),
}

fn bad(key: &str, value: &str, expected: &str) -> FaultParseError {
    FaultParseError::BadValue {
        key: key.to_string(),
        value: value.to_string(),
        expected: expected.to_string(),
    }
}

fn parse_probability(key: &str, value: &str) -> Result<f64, FaultParseError> {
    match value.parse::<f64>() {
        Ok(p) if p.is_finite() && (0.0..=1.0).contains(&p) => Ok(p),
        _ => Err(bad(key, value, "a probability between 0 and 1")),
    }
}

fn parse_u64(key: &str, value: &str, min: u64) -> Result<u64, FaultParseError> {
    match value.parse::<u64>() {
        Ok(n) if n >= min => Ok(n),
        _ => Err(bad(
            key,
            value,
            &format!("an integer greater than or equal to {min}"),
        )),
    }
}

fn parse_permissions(key: &str, value: &str) -> Result<Vec<String>, FaultParseError> {
    let mut out = Vec::new();
    for perm in value.split('+') {
        let perm = perm.trim();
        let valid = !perm.is_empty()
            && perm
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '.' || c == '_');
        if !valid {
            return Err(bad(key, value, "permission names joined with '+'"));
        }
        out.push(perm.to_string());
    }
    Ok(out)
}

impl FromStr for Faults {
    type Err = FaultParseError;

    fn from_str(spec: &str) -> Result<Self, Self::Err> {
        let mut faults = Faults::default();
        let spec = spec.trim();
        if spec.is_empty() || spec.eq_ignore_ascii_case("none") {
            return Ok(faults);
        }
        let mut seen: Vec<String> = Vec::new();
        for item in spec.split(',') {
            let item = item.trim();
            if item.is_empty() {
                continue;
            }
            let (raw_key, value) = match item.split_once('=') {
                Some((k, v)) => (k.trim(), Some(v.trim())),
                None => (item, None),
            };
            let key = raw_key.to_ascii_lowercase().replace('_', "-");
            if seen.contains(&key) {
                return Err(FaultParseError::Duplicate(raw_key.to_string()));
            }
            seen.push(key.clone());
            let need = |expected: &str| -> Result<&str, FaultParseError> {
                match value {
                    Some(v) if !v.is_empty() => Ok(v),
                    _ => Err(FaultParseError::MissingValue {
                        key: raw_key.to_string(),
                        expected: expected.to_string(),
                    }),
                }
            };
            let flag = || -> Result<bool, FaultParseError> {
                match value {
                    None => Ok(true),
                    Some(v) => match v.to_ascii_lowercase().as_str() {
                        "true" | "1" | "yes" | "on" => Ok(true),
                        "false" | "0" | "no" | "off" => Ok(false),
                        _ => Err(FaultParseError::UnexpectedValue {
                            key: raw_key.to_string(),
                            value: v.to_string(),
                        }),
                    },
                }
            };
            match key.as_str() {
                "throttle" => {
                    faults.throttle = parse_probability(raw_key, need("a probability")?)?;
                }
                "retry-after" => {
                    let v = need("seconds")?;
                    faults.retry_after = match v.parse::<f64>() {
                        Ok(s) if s.is_finite() && s >= 0.0 => s,
                        _ => return Err(bad(raw_key, v, "a non-negative number of seconds")),
                    };
                }
                "every-nth-429" => {
                    faults.every_nth_429 = Some(parse_u64(raw_key, need("an integer")?, 1)?);
                }
                "error5xx" => {
                    faults.error5xx = parse_probability(raw_key, need("a probability")?)?;
                }
                "drop" => {
                    faults.drop = parse_probability(raw_key, need("a probability")?)?;
                }
                "latency" => {
                    faults.latency_ms = parse_u64(raw_key, need("milliseconds")?, 0)?;
                }
                "token-lifetime" => {
                    faults.token_lifetime = Some(parse_u64(raw_key, need("seconds")?, 1)?);
                }
                "expire-token-after" => {
                    faults.expire_token_after =
                        Some(parse_u64(raw_key, need("a request count")?, 0)?);
                }
                "missing-permission" | "missing-permissions" => {
                    let v = need("permission names joined with '+'")?;
                    faults.missing_permissions = parse_permissions(raw_key, v)?;
                }
                "grant-permission" | "grant-permissions" => {
                    let v = need("permission names joined with '+'")?;
                    faults.grant_permissions = parse_permissions(raw_key, v)?;
                }
                "report-url-ttl" => {
                    faults.report_url_ttl = Some(parse_u64(raw_key, need("seconds")?, 0)?);
                }
                "no-roles" => faults.no_roles = flag()?,
                "aadsts" => {
                    let v = need("an AADSTS code")?;
                    let digits = v.trim_start_matches("AADSTS").trim_start_matches("aadsts");
                    match digits.parse::<u32>() {
                        Ok(code) if FORCEABLE_AADSTS.contains(&code) => {
                            faults.aadsts = Some(code);
                        }
                        _ => {
                            let list = FORCEABLE_AADSTS
                                .iter()
                                .map(|c| c.to_string())
                                .collect::<Vec<_>>()
                                .join(", ");
                            return Err(bad(raw_key, v, &format!("one of {list}")));
                        }
                    }
                }
                "sku-page-size" => {
                    faults.sku_page_size =
                        Some(parse_u64(raw_key, need("an integer")?, 1)? as usize);
                }
                "non-premium" => faults.non_premium = flag()?,
                "signin-retention-days" => {
                    let v = need("days")?;
                    faults.signin_retention_days = match v.parse::<u32>() {
                        Ok(d) if (1..=3650).contains(&d) => Some(d),
                        _ => return Err(bad(raw_key, v, "a number of days from 1 to 3650")),
                    };
                }
                "signin-throttle" => faults.signin_throttle = flag()?,
                "concealed" => faults.concealed = flag()?,
                _ => return Err(FaultParseError::UnknownKey(raw_key.to_string())),
            }
        }
        Ok(faults)
    }
}

impl fmt::Display for Faults {
    /// The canonical spec string (parses back to an equal value).
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let d = Faults::default();
        let mut parts: Vec<String> = Vec::new();
        if self.throttle != d.throttle {
            parts.push(format!("throttle={}", self.throttle));
        }
        if self.retry_after != d.retry_after {
            parts.push(format!("retry-after={}", self.retry_after));
        }
        if let Some(n) = self.every_nth_429 {
            parts.push(format!("every-nth-429={n}"));
        }
        if self.error5xx != d.error5xx {
            parts.push(format!("error5xx={}", self.error5xx));
        }
        if self.drop != d.drop {
            parts.push(format!("drop={}", self.drop));
        }
        if self.latency_ms != 0 {
            parts.push(format!("latency={}", self.latency_ms));
        }
        if let Some(s) = self.token_lifetime {
            parts.push(format!("token-lifetime={s}"));
        }
        if let Some(n) = self.expire_token_after {
            parts.push(format!("expire-token-after={n}"));
        }
        if !self.missing_permissions.is_empty() {
            parts.push(format!(
                "missing-permission={}",
                self.missing_permissions.join("+")
            ));
        }
        if self.no_roles {
            parts.push("no-roles".into());
        }
        if let Some(c) = self.aadsts {
            parts.push(format!("aadsts={c}"));
        }
        if let Some(n) = self.sku_page_size {
            parts.push(format!("sku-page-size={n}"));
        }
        if self.non_premium {
            parts.push("non-premium".into());
        }
        if self.concealed {
            parts.push("concealed".into());
        }
        if !self.grant_permissions.is_empty() {
            parts.push(format!(
                "grant-permission={}",
                self.grant_permissions.join("+")
            ));
        }
        if let Some(s) = self.report_url_ttl {
            parts.push(format!("report-url-ttl={s}"));
        }
        if let Some(d) = self.signin_retention_days {
            parts.push(format!("signin-retention-days={d}"));
        }
        if self.signin_throttle {
            parts.push("signin-throttle".into());
        }
        if parts.is_empty() {
            f.write_str("none")
        } else {
            f.write_str(&parts.join(","))
        }
    }
}

/// What the fault layer decided for one Graph request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum GraphFault {
    None,
    Throttle,
    ServiceUnavailable,
    GatewayTimeout,
}

/// Runtime fault state: a seeded random stream and counters.
pub(crate) struct FaultState {
    rng: Mutex<ChaCha8Rng>,
    graph_requests: AtomicU64,
    token_uses: Mutex<HashMap<String, u64>>,
}

impl FaultState {
    pub(crate) fn new(seed: u64) -> Self {
        let mut rng = ChaCha8Rng::seed_from_u64(seed);
        // A stream of its own, so faults never disturb tenant generation.
        rng.set_stream(7);
        FaultState {
            rng: Mutex::new(rng),
            graph_requests: AtomicU64::new(0),
            token_uses: Mutex::new(HashMap::new()),
        }
    }

    /// Only the network-level fault, decided before authentication.
    pub(crate) fn decide_drop(&self, faults: &Faults) -> bool {
        if faults.drop <= 0.0 {
            return false;
        }
        let mut rng = self.rng.lock().unwrap_or_else(|e| e.into_inner());
        rng.random_bool(faults.drop)
    }

    /// Throttling and 5xx, decided for an authenticated Graph request.
    pub(crate) fn decide_service_fault(&self, faults: &Faults) -> GraphFault {
        let n = self.graph_requests.fetch_add(1, Ordering::SeqCst) + 1;
        if let Some(every) = faults.every_nth_429
            && n.is_multiple_of(every)
        {
            return GraphFault::Throttle;
        }
        if faults.throttle <= 0.0 && faults.error5xx <= 0.0 {
            return GraphFault::None;
        }
        let mut rng = self.rng.lock().unwrap_or_else(|e| e.into_inner());
        if faults.throttle > 0.0 && rng.random_bool(faults.throttle) {
            return GraphFault::Throttle;
        }
        if faults.error5xx > 0.0 && rng.random_bool(faults.error5xx) {
            return if rng.random_bool(0.5) {
                GraphFault::ServiceUnavailable
            } else {
                GraphFault::GatewayTimeout
            };
        }
        GraphFault::None
    }

    /// Counts one use of a token; returns how many times it has now been used.
    pub(crate) fn count_token_use(&self, token_id: &str) -> u64 {
        let mut uses = self.token_uses.lock().unwrap_or_else(|e| e.into_inner());
        let n = uses.entry(token_id.to_string()).or_insert(0);
        *n += 1;
        *n
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_every_key() {
        let f: Faults = "throttle=0.25, retry-after=2.128,every-nth-429=3,error5xx=0.1,drop=0.05,\
                         latency=20,token-lifetime=60,expire-token-after=5,\
                         missing-permission=User.Read.All+Directory.Read.All,no-roles,\
                         aadsts=7000222,sku_page_size=4,non-premium,concealed,\
                         grant-permission=ReportSettings.ReadWrite.All,report-url-ttl=5,\
                         signin-retention-days=7,signin_throttle"
            .parse()
            .unwrap();
        assert_eq!(f.throttle, 0.25);
        assert_eq!(f.retry_after, 2.128);
        assert_eq!(f.every_nth_429, Some(3));
        assert_eq!(f.error5xx, 0.1);
        assert_eq!(f.drop, 0.05);
        assert_eq!(f.latency_ms, 20);
        assert_eq!(f.token_lifetime, Some(60));
        assert_eq!(f.expire_token_after, Some(5));
        assert_eq!(
            f.missing_permissions,
            vec![
                "User.Read.All".to_string(),
                "Directory.Read.All".to_string()
            ]
        );
        assert!(f.no_roles && f.non_premium && f.concealed);
        assert_eq!(f.aadsts, Some(7000222));
        assert_eq!(f.sku_page_size, Some(4));
        assert_eq!(
            f.grant_permissions,
            vec!["ReportSettings.ReadWrite.All".to_string()]
        );
        assert_eq!(f.report_url_ttl, Some(5));
        assert_eq!(f.signin_retention_days, Some(7));
        assert!(f.signin_throttle);
        assert_eq!(f.effective_report_url_ttl(), 5);
        assert_eq!(Faults::default().effective_report_url_ttl(), 120);
        let round: Faults = f.to_string().parse().unwrap();
        assert_eq!(round, f);
    }

    #[test]
    fn empty_and_none_mean_no_faults() {
        assert!("".parse::<Faults>().unwrap().is_none());
        assert!("none".parse::<Faults>().unwrap().is_none());
        assert_eq!(Faults::default().to_string(), "none");
        assert_eq!(Faults::default().retry_after, 0.5);
    }

    #[test]
    fn errors_name_the_bad_key_or_value() {
        let e = "throttle=1.5".parse::<Faults>().unwrap_err();
        assert!(e.to_string().contains("throttle") && e.to_string().contains("1.5"));
        let e = "bogus=1".parse::<Faults>().unwrap_err();
        assert_eq!(e, FaultParseError::UnknownKey("bogus".into()));
        assert!(e.to_string().contains("bogus"));
        let e = "latency".parse::<Faults>().unwrap_err();
        assert!(matches!(e, FaultParseError::MissingValue { ref key, .. } if key == "latency"));
        let e = "aadsts=12345".parse::<Faults>().unwrap_err();
        assert!(e.to_string().contains("12345") && e.to_string().contains("aadsts"));
        let e = "no-roles=maybe".parse::<Faults>().unwrap_err();
        assert!(e.to_string().contains("no-roles") && e.to_string().contains("maybe"));
        let e = "every-nth-429=0".parse::<Faults>().unwrap_err();
        assert!(e.to_string().contains("every-nth-429"));
        let e = "latency=1,latency=2".parse::<Faults>().unwrap_err();
        assert_eq!(e, FaultParseError::Duplicate("latency".into()));
        let e = "missing-permission=User.Read.All+"
            .parse::<Faults>()
            .unwrap_err();
        assert!(e.to_string().contains("missing-permission"));
        let e = "retry-after=-1".parse::<Faults>().unwrap_err();
        assert!(e.to_string().contains("retry-after"));
        let e = "signin-retention-days=0".parse::<Faults>().unwrap_err();
        assert!(e.to_string().contains("signin-retention-days"));
        let e = "signin-retention-days".parse::<Faults>().unwrap_err();
        assert!(e.to_string().contains("signin-retention-days"));
    }

    #[test]
    fn every_nth_is_deterministic() {
        let f: Faults = "every-nth-429=3".parse().unwrap();
        let st = FaultState::new(1);
        let got: Vec<bool> = (0..9)
            .map(|_| st.decide_service_fault(&f) == GraphFault::Throttle)
            .collect();
        assert_eq!(
            got,
            vec![false, false, true, false, false, true, false, false, true]
        );
    }

    #[test]
    fn random_faults_are_reproducible() {
        let f: Faults = "throttle=0.3,error5xx=0.2".parse().unwrap();
        let a = FaultState::new(9);
        let b = FaultState::new(9);
        let sa: Vec<GraphFault> = (0..50).map(|_| a.decide_service_fault(&f)).collect();
        let sb: Vec<GraphFault> = (0..50).map(|_| b.decide_service_fault(&f)).collect();
        assert_eq!(sa, sb);
        assert!(sa.contains(&GraphFault::Throttle));
    }
}
