//! When to retry a Graph request, and how long to wait.
//!
//! 429 and 503 honour `Retry-After` (a decimal number of seconds, e.g. `2.128`); otherwise the
//! wait grows exponentially with jitter. Waiting happens on the host clock, so tests run on
//! virtual time.

use crate::host::HttpResponse;

const MAX_ATTEMPTS: u32 = 8;
const BASE_MS: u64 = 1_000;
const CAP_MS: u64 = 60_000;

pub enum Decision {
    RetryAfter(u64),
    GiveUp,
}

pub struct Backoff {
    attempts: u32,
    seed: u64,
    last_retry_after_ms: Option<u64>,
}

impl Backoff {
    pub fn new(seed: u64) -> Self {
        Self {
            attempts: 0,
            seed: seed | 1,
            last_retry_after_ms: None,
        }
    }

    pub fn attempts(&self) -> u32 {
        self.attempts
    }

    pub fn last_retry_after_ms(&self) -> Option<u64> {
        self.last_retry_after_ms
    }

    fn next(&mut self, retry_after_ms: Option<u64>) -> Decision {
        self.attempts += 1;
        if self.attempts >= MAX_ATTEMPTS {
            return Decision::GiveUp;
        }
        if let Some(ms) = retry_after_ms {
            self.last_retry_after_ms = Some(ms);
            return Decision::RetryAfter(ms.min(10 * CAP_MS));
        }
        // Exponential with "equal jitter": half fixed, half random.
        let exp = (BASE_MS << (self.attempts - 1).min(10)).min(CAP_MS);
        self.seed ^= self.seed << 13;
        self.seed ^= self.seed >> 7;
        self.seed ^= self.seed << 17;
        Decision::RetryAfter(exp / 2 + self.seed % (exp / 2 + 1))
    }
}

pub fn classify_response(response: &HttpResponse, backoff: &mut Backoff) -> Decision {
    match response.status {
        429 | 503 | 504 | 500 | 502 => backoff.next(retry_after_ms(response)),
        _ => Decision::GiveUp,
    }
}

pub fn classify_transport(backoff: &mut Backoff) -> Decision {
    backoff.next(None)
}

/// `Retry-After` as milliseconds: decimal seconds (Graph sends fractions).
pub fn retry_after_ms(response: &HttpResponse) -> Option<u64> {
    let value = response.header("retry-after")?.trim();
    let seconds: f64 = value.parse().ok()?;
    (seconds.is_finite() && seconds >= 0.0).then(|| (seconds * 1000.0).round() as u64)
}
