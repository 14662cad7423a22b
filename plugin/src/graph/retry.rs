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

    /// The wait before the next attempt: the service's `Retry-After` when it sent one, else
    /// exponential backoff with jitter; `GiveUp` once the attempts are spent.
    pub fn next_wait(&mut self, retry_after_ms: Option<u64>) -> Decision {
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
        429 | 503 | 504 | 500 | 502 => backoff.next_wait(retry_after_ms(response)),
        _ => Decision::GiveUp,
    }
}

pub fn classify_transport(backoff: &mut Backoff) -> Decision {
    backoff.next_wait(None)
}

/// `Retry-After` as milliseconds: decimal seconds (Graph sends fractions).
pub fn retry_after_ms(response: &HttpResponse) -> Option<u64> {
    parse_retry_after(response.header("retry-after")?)
}

/// A `Retry-After` value in decimal seconds as milliseconds; anything else (an HTTP date,
/// garbage, a negative or absurd number) is `None`, which falls back to backoff.
pub fn parse_retry_after(value: &str) -> Option<u64> {
    let seconds: f64 = value.trim().parse().ok()?;
    (seconds.is_finite() && (0.0..=86_400.0).contains(&seconds))
        .then(|| (seconds * 1000.0).round() as u64)
}
