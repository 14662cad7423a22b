//! Time as the guest sees it: real, or virtual (tests and simulations run retries and
//! throttling waits instantly and deterministically).

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

pub trait Clock: Send + Sync {
    /// Milliseconds since the Unix epoch.
    fn now_ms(&self) -> u64;
    /// Waits up to `ms`, never past `limit` of real time.
    fn sleep(&self, ms: u64, limit: Duration);
}

#[derive(Debug, Default)]
pub struct RealClock;

impl Clock for RealClock {
    fn now_ms(&self) -> u64 {
        SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| d.as_millis() as u64)
            .unwrap_or(0)
    }

    fn sleep(&self, ms: u64, limit: Duration) {
        std::thread::sleep(Duration::from_millis(ms).min(limit));
    }
}

/// A clock that only moves when told to or when the guest sleeps.
#[derive(Debug)]
pub struct VirtualClock {
    now_ms: AtomicU64,
    slept_ms: AtomicU64,
}

impl VirtualClock {
    pub fn starting_at(now_ms: u64) -> Self {
        Self {
            now_ms: AtomicU64::new(now_ms),
            slept_ms: AtomicU64::new(0),
        }
    }

    pub fn advance(&self, ms: u64) {
        self.now_ms.fetch_add(ms, Ordering::SeqCst);
    }

    /// Total virtual time the guest has slept.
    pub fn slept_ms(&self) -> u64 {
        self.slept_ms.load(Ordering::SeqCst)
    }
}

impl Clock for VirtualClock {
    fn now_ms(&self) -> u64 {
        self.now_ms.load(Ordering::SeqCst)
    }

    fn sleep(&self, ms: u64, _limit: Duration) {
        self.slept_ms.fetch_add(ms, Ordering::SeqCst);
        self.now_ms.fetch_add(ms, Ordering::SeqCst);
    }
}
