//! Fault injection: the spec-string grammar and the runtime state that
//! decides, request by request, which fault fires.
//!
//! Grammar: a comma-separated list of `key=value` or bare `key` items, for
//! example `throttle=0.2,retry-after=2.128,latency=50,missing-permission=User.Read.All+Directory.Read.All`
//! or `seed=7,429=10%,5xx=5%,reset=2%,truncate=2%,token-expiry=60s,latency=50,jitter=20`.
//! An empty string (or `none`) means no faults. Keys may use `_` for `-`;
//! probabilities are written `0.1` or `10%`.
//!
//! Which request draws which fault is a function of the seed and the request
//! alone: each decision hashes (seed, what is decided, method, path and
//! query, attempt number at that URL). The same sequence of requests per URL
//! therefore meets the same faults, however concurrent requests interleave.

use std::collections::HashMap;
use std::fmt;
use std::str::FromStr;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

/// AADSTS codes the `aadsts=CODE` fault can force on the token endpoint.
pub const FORCEABLE_AADSTS: &[u32] = &[
    7000215, 7000222, 90002, 900023, 700016, 70011, 1002012, 700022, 7000218, 500011,
];

/// Faults to inject. `Default` is "no faults".
#[derive(Debug, Clone, PartialEq)]
pub struct Faults {
    /// Probability (0..=1) that a Graph or report download request gets 429
    /// TooManyRequests (`throttle=P`, or `429=P` which also sets `vary_retry_after`).
    pub throttle: f64,
    /// `Retry-After` seconds sent with a 429 (fractional allowed). Default 0.5.
    pub retry_after: f64,
    /// A 429's `Retry-After` varies by request instead: fractional seconds
    /// (e.g. `0.4`), whole seconds, or no header at all. Set by `429=P`
    /// unless `retry-after` is given.
    pub vary_retry_after: bool,
    /// Deterministic throttling: every Nth Graph request gets 429.
    pub every_nth_429: Option<u64>,
    /// Probability (0..=1) that a Graph or report download request gets 503
    /// (sometimes with a Retry-After) or 504 (`error5xx=P` or `5xx=P`).
    pub error5xx: f64,
    /// Probability (0..=1) that a Graph or report download request's
    /// connection is closed without a response (`drop=P` or `reset=P`).
    pub drop: f64,
    /// Probability (0..=1) that a 200 from Graph or the report host is cut in
    /// the middle of its body: the headers promise the whole body, half of it
    /// arrives, then the connection closes.
    pub truncate: f64,
    /// Milliseconds added before every Graph and report download response.
    pub latency_ms: u64,
    /// Up to this many more milliseconds, drawn uniformly per request.
    pub jitter_ms: u64,
    /// Seed of the fault decisions (`seed=N`); the simulator's seed otherwise.
    pub seed: Option<u64>,
    /// `expires_in` of issued tokens in seconds (default 3599); Graph enforces
    /// it against the wall clock (`token-lifetime=S` or `token-expiry=60s`).
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
    /// `userRegistrationDetails` lists users in the reverse of `/users`' order (Graph documents
    /// neither order, so a client must not rely on them matching).
    pub registration_reversed: bool,
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
    /// Probability (0..=1) that an inner request of `$batch` gets 429 (with an
    /// inner `Retry-After`) instead of being carried out.
    pub batch_throttle: f64,
    /// Deterministic inner throttling: every Nth inner `$batch` request gets 429.
    pub batch_every_nth_429: Option<u64>,
}

impl Default for Faults {
    fn default() -> Self {
        Faults {
            throttle: 0.0,
            retry_after: 0.5,
            vary_retry_after: false,
            every_nth_429: None,
            error5xx: 0.0,
            drop: 0.0,
            truncate: 0.0,
            latency_ms: 0,
            jitter_ms: 0,
            seed: None,
            token_lifetime: None,
            expire_token_after: None,
            missing_permissions: Vec::new(),
            no_roles: false,
            aadsts: None,
            sku_page_size: None,
            non_premium: false,
            registration_reversed: false,
            concealed: false,
            grant_permissions: Vec::new(),
            report_url_ttl: None,
            signin_retention_days: None,
            signin_throttle: false,
            batch_throttle: 0.0,
            batch_every_nth_429: None,
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

/// `0.1` or `10%`.
fn parse_probability(key: &str, value: &str) -> Result<f64, FaultParseError> {
    let parsed = match value.strip_suffix('%') {
        Some(pct) => pct.trim().parse::<f64>().map(|p| p / 100.0),
        None => value.parse::<f64>(),
    };
    match parsed {
        Ok(p) if p.is_finite() && (0.0..=1.0).contains(&p) => Ok(p),
        _ => Err(bad(
            key,
            value,
            "a probability between 0 and 1, or a percentage such as 10%",
        )),
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

/// `60`, `60s`, `2m` or `1h`, in seconds.
fn parse_seconds(key: &str, value: &str, min: u64) -> Result<u64, FaultParseError> {
    let lower = value.to_ascii_lowercase();
    let (digits, scale) = if let Some(d) = lower.strip_suffix('s') {
        (d, 1)
    } else if let Some(d) = lower.strip_suffix('m') {
        (d, 60)
    } else if let Some(d) = lower.strip_suffix('h') {
        (d, 3600)
    } else {
        (lower.as_str(), 1)
    };
    match digits
        .trim()
        .parse::<u64>()
        .ok()
        .and_then(|n| n.checked_mul(scale))
    {
        Some(n) if n >= min => Ok(n),
        _ => Err(bad(
            key,
            value,
            &format!("a duration of at least {min} s such as 60, 60s, 2m or 1h"),
        )),
    }
}

/// `50` or `50ms`, in milliseconds.
fn parse_millis(key: &str, value: &str) -> Result<u64, FaultParseError> {
    let digits = value.strip_suffix("ms").unwrap_or(value).trim();
    digits
        .parse::<u64>()
        .map_err(|_| bad(key, value, "milliseconds such as 50 or 50ms"))
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
            // Aliases count as their canonical key: `drop=1,reset=1` is a duplicate.
            let canonical = match key.as_str() {
                "reset" => "drop",
                "5xx" => "error5xx",
                "429" => "throttle",
                "token-expiry" => "token-lifetime",
                "missing-permissions" => "missing-permission",
                "grant-permissions" => "grant-permission",
                other => other,
            }
            .to_string();
            if seen.contains(&canonical) {
                return Err(FaultParseError::Duplicate(raw_key.to_string()));
            }
            seen.push(canonical);
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
                "429" => {
                    faults.throttle = parse_probability(raw_key, need("a probability")?)?;
                    faults.vary_retry_after = true;
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
                "error5xx" | "5xx" => {
                    faults.error5xx = parse_probability(raw_key, need("a probability")?)?;
                }
                "drop" | "reset" => {
                    faults.drop = parse_probability(raw_key, need("a probability")?)?;
                }
                "truncate" => {
                    faults.truncate = parse_probability(raw_key, need("a probability")?)?;
                }
                "latency" => {
                    faults.latency_ms = parse_millis(raw_key, need("milliseconds")?)?;
                }
                "jitter" => {
                    faults.jitter_ms = parse_millis(raw_key, need("milliseconds")?)?;
                }
                "seed" => {
                    faults.seed = Some(parse_u64(raw_key, need("an integer")?, 0)?);
                }
                "token-lifetime" | "token-expiry" => {
                    faults.token_lifetime = Some(parse_seconds(raw_key, need("seconds")?, 1)?);
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
                "registration-reversed" => faults.registration_reversed = flag()?,
                "signin-retention-days" => {
                    let v = need("days")?;
                    faults.signin_retention_days = match v.parse::<u32>() {
                        Ok(d) if (1..=3650).contains(&d) => Some(d),
                        _ => return Err(bad(raw_key, v, "a number of days from 1 to 3650")),
                    };
                }
                "signin-throttle" => faults.signin_throttle = flag()?,
                "concealed" => faults.concealed = flag()?,
                "batch-429" => {
                    faults.batch_throttle = parse_probability(raw_key, need("a probability")?)?;
                }
                "batch-429-every" => {
                    faults.batch_every_nth_429 = Some(parse_u64(raw_key, need("an integer")?, 1)?);
                }
                _ => return Err(FaultParseError::UnknownKey(raw_key.to_string())),
            }
        }
        // A fixed `retry-after` wins over `429`'s varied one.
        if seen.iter().any(|k| k == "retry-after") {
            faults.vary_retry_after = false;
        }
        Ok(faults)
    }
}

impl fmt::Display for Faults {
    /// The canonical spec string (parses back to an equal value).
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let d = Faults::default();
        let mut parts: Vec<String> = Vec::new();
        if let Some(seed) = self.seed {
            parts.push(format!("seed={seed}"));
        }
        if self.vary_retry_after {
            parts.push(format!("429={}", self.throttle));
        } else if self.throttle != d.throttle {
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
        if self.truncate != d.truncate {
            parts.push(format!("truncate={}", self.truncate));
        }
        if self.latency_ms != 0 {
            parts.push(format!("latency={}", self.latency_ms));
        }
        if self.jitter_ms != 0 {
            parts.push(format!("jitter={}", self.jitter_ms));
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
        if self.registration_reversed {
            parts.push("registration-reversed".into());
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
        if self.batch_throttle != d.batch_throttle {
            parts.push(format!("batch-429={}", self.batch_throttle));
        }
        if let Some(n) = self.batch_every_nth_429 {
            parts.push(format!("batch-429-every={n}"));
        }
        if parts.is_empty() {
            f.write_str("none")
        } else {
            f.write_str(&parts.join(","))
        }
    }
}

fn splitmix64(mut z: u64) -> u64 {
    z = z.wrapping_add(0x9E37_79B9_7F4A_7C15);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

/// A number in `[0, 1)` that depends only on the seed, what is being decided
/// (`salt`) and the request's identity: the same request sequence draws the
/// same faults whatever the order concurrent requests arrive in.
pub(crate) fn roll(seed: u64, salt: &str, method: &str, target: &str, attempt: u64) -> f64 {
    // FNV-1a over the parts, each closed by a byte no UTF-8 text contains.
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for part in [salt, method, target] {
        for b in part.bytes().chain(std::iter::once(0xff)) {
            h ^= u64::from(b);
            h = h.wrapping_mul(0x0100_0000_01b3);
        }
    }
    let x = splitmix64(h ^ splitmix64(seed) ^ splitmix64(attempt.wrapping_add(1) << 1));
    (x >> 11) as f64 / (1u64 << 53) as f64
}

/// The `Retry-After` a varied 429 carries, from a roll: fractional seconds,
/// whole seconds, or (`None`) no header at all.
pub(crate) fn varied_retry_after(r: f64) -> Option<&'static str> {
    const FRACTIONAL: &[&str] = &["0.2", "0.4", "0.7", "1.3", "2.128"];
    const WHOLE: &[&str] = &["1", "2"];
    let pick = |items: &[&'static str], share: f64| {
        items[((share * items.len() as f64) as usize).min(items.len() - 1)]
    };
    if r < 0.4 {
        Some(pick(FRACTIONAL, r / 0.4))
    } else if r < 0.8 {
        Some(pick(WHOLE, (r - 0.4) / 0.4))
    } else {
        None
    }
}

/// What the fault layer decided for one request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum RequestFault {
    None,
    /// 429; no `Retry-After` header when `retry_after` is `None`.
    Throttle {
        retry_after: Option<String>,
    },
    /// 503, sometimes with a `Retry-After`.
    ServiceUnavailable {
        retry_after: Option<&'static str>,
    },
    GatewayTimeout,
}

/// The identity of one request for fault decisions: the same request (method,
/// target, attempt number at that target) always draws the same numbers.
#[derive(Debug, Clone)]
pub(crate) struct Draw {
    seed: u64,
    method: String,
    target: String,
    attempt: u64,
}

impl Draw {
    /// A number in `[0, 1)` for the decision named `salt`.
    pub(crate) fn roll(&self, salt: &str) -> f64 {
        roll(self.seed, salt, &self.method, &self.target, self.attempt)
    }

    fn hit(&self, salt: &str, probability: f64) -> bool {
        probability > 0.0 && self.roll(salt) < probability
    }
}

/// Runtime fault state: the seed and the counters decisions depend on.
pub(crate) struct FaultState {
    seed: u64,
    graph_requests: AtomicU64,
    batch_requests: AtomicU64,
    token_uses: Mutex<HashMap<String, u64>>,
    /// Per scope, method and target: how many times it has been asked for.
    attempts: Mutex<HashMap<String, u64>>,
}

impl FaultState {
    pub(crate) fn new(seed: u64) -> Self {
        FaultState {
            seed,
            graph_requests: AtomicU64::new(0),
            batch_requests: AtomicU64::new(0),
            token_uses: Mutex::new(HashMap::new()),
            attempts: Mutex::new(HashMap::new()),
        }
    }

    /// Which attempt (1, 2, ...) this is at `method target` within `scope`.
    fn attempt(&self, scope: &str, method: &str, target: &str) -> u64 {
        let mut attempts = self.attempts.lock().unwrap_or_else(|e| e.into_inner());
        let n = attempts
            .entry(format!("{scope} {method} {target}"))
            .or_insert(0);
        *n += 1;
        *n
    }

    /// Counts one request at `method target` (path and query) and returns
    /// its identity for the decisions below.
    pub(crate) fn draw(&self, scope: &str, method: &str, target: &str) -> Draw {
        Draw {
            seed: self.seed,
            method: method.to_string(),
            target: format!("{scope} {target}"),
            attempt: self.attempt(scope, method, target),
        }
    }

    /// Connection closed without a response (`drop` / `reset`).
    pub(crate) fn decide_drop(&self, faults: &Faults, draw: &Draw) -> bool {
        draw.hit("reset", faults.drop)
    }

    /// Throttling and 5xx. `every-nth-429` counts Graph requests only.
    pub(crate) fn decide_service_fault(
        &self,
        faults: &Faults,
        draw: &Draw,
        count_for_every_nth: bool,
    ) -> RequestFault {
        if count_for_every_nth && let Some(every) = faults.every_nth_429 {
            let n = self.graph_requests.fetch_add(1, Ordering::SeqCst) + 1;
            if n.is_multiple_of(every) {
                return RequestFault::Throttle {
                    retry_after: Some(format!("{}", faults.retry_after)),
                };
            }
        }
        if draw.hit("429", faults.throttle) {
            let retry_after = if faults.vary_retry_after {
                varied_retry_after(draw.roll("retry-after")).map(str::to_string)
            } else {
                Some(format!("{}", faults.retry_after))
            };
            return RequestFault::Throttle { retry_after };
        }
        if draw.hit("5xx", faults.error5xx) {
            return if draw.roll("5xx-kind") < 0.5 {
                let retry_after = if draw.roll("5xx-retry-after") < 0.5 {
                    Some(varied_retry_after(draw.roll("retry-after")).unwrap_or("1"))
                } else {
                    None
                };
                RequestFault::ServiceUnavailable { retry_after }
            } else {
                RequestFault::GatewayTimeout
            };
        }
        RequestFault::None
    }

    /// For a 200 of `len` body bytes: how many to send before cutting the
    /// connection, or `None` to send it whole.
    pub(crate) fn decide_truncate(
        &self,
        faults: &Faults,
        draw: &Draw,
        len: usize,
    ) -> Option<usize> {
        (len >= 2 && draw.hit("truncate", faults.truncate)).then_some(len / 2)
    }

    /// `latency` plus a uniform share of `jitter`.
    pub(crate) fn delay(&self, faults: &Faults, draw: &Draw) -> Duration {
        let jitter = if faults.jitter_ms > 0 {
            (draw.roll("jitter") * (faults.jitter_ms + 1) as f64) as u64
        } else {
            0
        };
        Duration::from_millis(faults.latency_ms + jitter.min(faults.jitter_ms))
    }

    /// For an inner `$batch` request: `Some(Retry-After)` when it is throttled.
    pub(crate) fn decide_batch_throttle(
        &self,
        faults: &Faults,
        method: &str,
        target: &str,
    ) -> Option<&'static str> {
        if faults.batch_throttle <= 0.0 && faults.batch_every_nth_429.is_none() {
            return None;
        }
        let n = self.batch_requests.fetch_add(1, Ordering::SeqCst) + 1;
        let draw = self.draw("batch", method, target);
        let every = faults
            .batch_every_nth_429
            .is_some_and(|every| n.is_multiple_of(every));
        (every || draw.hit("batch-429", faults.batch_throttle))
            .then(|| varied_retry_after(draw.roll("retry-after")).unwrap_or("1"))
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
            .map(|i| {
                let draw = st.draw("graph", "GET", &format!("/v1.0/users?n={i}"));
                matches!(
                    st.decide_service_fault(&f, &draw, true),
                    RequestFault::Throttle { .. }
                )
            })
            .collect();
        assert_eq!(
            got,
            vec![false, false, true, false, false, true, false, false, true]
        );
    }

    #[test]
    fn resilience_spec_parses_with_aliases_and_units() {
        let f: Faults =
            "seed=7,429=10%,5xx=5%,reset=2%,truncate=2%,token-expiry=60s,latency=50,jitter=20"
                .parse()
                .unwrap();
        assert_eq!(f.seed, Some(7));
        assert_eq!(f.throttle, 0.1);
        assert!(f.vary_retry_after);
        assert_eq!(f.error5xx, 0.05);
        assert_eq!(f.drop, 0.02);
        assert_eq!(f.truncate, 0.02);
        assert_eq!(f.token_lifetime, Some(60));
        assert_eq!((f.latency_ms, f.jitter_ms), (50, 20));
        assert_eq!(f.to_string().parse::<Faults>().unwrap(), f);
        let f: Faults = "429=0.1,token-expiry=2m,latency=5ms,batch-429=25%,batch-429-every=4"
            .parse()
            .unwrap();
        assert_eq!(f.throttle, 0.1);
        assert_eq!(f.token_lifetime, Some(120));
        assert_eq!(f.latency_ms, 5);
        assert_eq!(f.batch_throttle, 0.25);
        assert_eq!(f.batch_every_nth_429, Some(4));
        assert_eq!(f.to_string().parse::<Faults>().unwrap(), f);
        // A fixed Retry-After wins over the varied one.
        let f: Faults = "429=10%,retry-after=3".parse().unwrap();
        assert!(!f.vary_retry_after);
        assert_eq!(f.retry_after, 3.0);
        assert_eq!(f.to_string().parse::<Faults>().unwrap(), f);
        assert!(!"throttle=0.2".parse::<Faults>().unwrap().vary_retry_after);
    }

    #[test]
    fn resilience_spec_errors_name_the_key_and_value() {
        for (spec, key, value) in [
            ("429=110%", "429", "110%"),
            ("5xx=abc", "5xx", "abc"),
            ("reset=-1", "reset", "-1"),
            ("truncate=2", "truncate", "2"),
            ("token-expiry=0s", "token-expiry", "0s"),
            ("token-expiry=soon", "token-expiry", "soon"),
            ("jitter=fast", "jitter", "fast"),
            ("seed=-3", "seed", "-3"),
            ("batch-429=1.5", "batch-429", "1.5"),
            ("batch-429-every=0", "batch-429-every", "0"),
        ] {
            let e = spec.parse::<Faults>().unwrap_err().to_string();
            assert!(e.contains(key) && e.contains(value), "{spec}: {e}");
        }
        for spec in [
            "drop=0.1,reset=0.1",
            "throttle=0.1,429=0.2",
            "error5xx=0.1,5xx=0.1",
            "token-lifetime=5,token-expiry=5s",
        ] {
            assert!(
                matches!(spec.parse::<Faults>(), Err(FaultParseError::Duplicate(_))),
                "{spec}"
            );
        }
        let e = "seed".parse::<Faults>().unwrap_err();
        assert!(matches!(e, FaultParseError::MissingValue { ref key, .. } if key == "seed"));
    }

    /// The decisions for a request depend on the seed, the request and its
    /// attempt number, not on the order requests arrive in.
    #[test]
    fn decisions_do_not_depend_on_arrival_order() {
        let f: Faults = "429=20%,5xx=10%,reset=20%,truncate=10%,jitter=30"
            .parse()
            .unwrap();
        let urls: Vec<String> = (0..40)
            .map(|i| format!("/v1.0/users?$skiptoken={i}"))
            .collect();
        let decide = |st: &FaultState, url: &str| {
            let draw = st.draw("graph", "GET", url);
            (
                st.decide_drop(&f, &draw),
                st.decide_service_fault(&f, &draw, true),
                st.decide_truncate(&f, &draw, 1000),
                st.delay(&f, &draw),
            )
        };
        let forward = FaultState::new(7);
        let mut a: Vec<_> = urls
            .iter()
            .map(|u| (u.clone(), decide(&forward, u)))
            .collect();
        let backward = FaultState::new(7);
        let mut b: Vec<_> = urls
            .iter()
            .rev()
            .map(|u| (u.clone(), decide(&backward, u)))
            .collect();
        a.sort_by(|x, y| x.0.cmp(&y.0));
        b.sort_by(|x, y| x.0.cmp(&y.0));
        assert_eq!(a, b);
        // Every kind shows up, and a retry of the same URL draws afresh.
        let all: Vec<_> = a.iter().map(|(_, d)| d.clone()).collect();
        assert!(all.iter().any(|d| d.0));
        assert!(
            all.iter()
                .any(|d| matches!(d.1, RequestFault::Throttle { .. }))
        );
        assert!(all.iter().any(|d| d.2 == Some(500)));
        assert!(all.iter().all(|d| d.3 <= Duration::from_millis(30)));
        assert!(all.iter().any(|d| d.3 > Duration::from_millis(0)));
        let retry = decide(&forward, &urls[0]);
        let again = FaultState::new(7);
        decide(&again, &urls[0]);
        assert_eq!(decide(&again, &urls[0]), retry, "second attempts agree");
        // Another seed, another pattern.
        let other = FaultState::new(8);
        let c: Vec<_> = urls.iter().map(|u| decide(&other, u)).collect();
        assert_ne!(c, all);
    }

    #[test]
    fn varied_retry_after_mixes_fractional_whole_and_missing() {
        let st = FaultState::new(3);
        let f: Faults = "429=1".parse().unwrap();
        let values: Vec<Option<String>> = (0..200)
            .map(|i| {
                let draw = st.draw("graph", "GET", &format!("/v1.0/subscribedSkus?i={i}"));
                match st.decide_service_fault(&f, &draw, true) {
                    RequestFault::Throttle { retry_after } => retry_after,
                    other => panic!("{other:?}"),
                }
            })
            .collect();
        assert!(values.iter().any(|v| v.is_none()));
        assert!(values.iter().any(|v| v.as_deref() == Some("0.4")));
        assert!(
            values
                .iter()
                .any(|v| v.as_deref().is_some_and(|s| !s.contains('.')))
        );
        for v in values.iter().flatten() {
            assert!(v.parse::<f64>().unwrap() > 0.0, "{v}");
        }
    }
}
