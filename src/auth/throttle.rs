//! Login throttling (S10, NIST AC-7): per-username consecutive failures earn exponentially
//! growing delays after a few free ones and a hard lock well below 100; a success resets the
//! count. A global token bucket caps logins per minute across all users.
//!
//! An admitted attempt is pending until its password check ends, and counts as a failure until
//! then: beyond what the free failures leave, one attempt per username is checked at a time, so
//! parallel guesses cannot all be verified before the first failure is counted.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

/// Why a login attempt is refused before the password is even checked.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Throttled {
    /// Whole seconds until an attempt may be made.
    pub retry_after: u64,
    /// The username is locked outright (not merely delayed).
    pub locked: bool,
    /// The global login rate is exceeded (not this username's failures).
    pub global: bool,
    /// Other attempts for the username are being checked; this one waits for them.
    pub busy: bool,
}

#[derive(Debug, Clone, Copy)]
pub struct ThrottleConfig {
    pub free_failures: u32,
    pub max_delay_secs: u64,
    pub lock_after: u32,
    pub lock_secs: u64,
    pub per_minute: u32,
}

#[derive(Debug, Default)]
struct Failures {
    count: u32,
    /// Attempts admitted whose password check has not ended.
    pending: u32,
    blocked_until_ms: u64,
    last_ms: u64,
}

#[derive(Debug)]
struct State {
    failures: HashMap<String, Failures>,
    tokens: f64,
    refilled_ms: u64,
}

/// A cheap `Clone` handle.
#[derive(Clone)]
pub struct LoginThrottle {
    config: ThrottleConfig,
    state: Arc<Mutex<State>>,
}

fn secs_until(until_ms: u64, now_ms: u64) -> u64 {
    until_ms.saturating_sub(now_ms).div_ceil(1000).max(1)
}

impl LoginThrottle {
    pub fn new(config: ThrottleConfig) -> Self {
        Self {
            config,
            state: Arc::new(Mutex::new(State {
                failures: HashMap::new(),
                tokens: f64::from(config.per_minute),
                refilled_ms: 0,
            })),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Takes a login slot for `username`, or says how long to wait. The slot is pending until the
    /// returned [`Attempt`] is settled (or dropped, when the call was abandoned).
    pub fn admit(&self, username: &str, now_ms: u64) -> Result<Attempt, Throttled> {
        let mut state = self.lock();
        if let Some(f) = state.failures.get(username) {
            if f.blocked_until_ms > now_ms {
                return Err(Throttled {
                    retry_after: secs_until(f.blocked_until_ms, now_ms),
                    locked: f.count >= self.config.lock_after,
                    global: false,
                    busy: false,
                });
            }
            // Were every pending attempt to fail, this one would have to wait: let them end first.
            if f.pending > 0 && f.count + f.pending >= self.config.free_failures {
                return Err(Throttled {
                    retry_after: 1,
                    locked: false,
                    global: false,
                    busy: true,
                });
            }
        }
        let capacity = f64::from(self.config.per_minute);
        let elapsed = now_ms.saturating_sub(state.refilled_ms) as f64 / 60_000.0;
        state.tokens = (state.tokens + elapsed * capacity).min(capacity);
        state.refilled_ms = now_ms;
        if state.tokens < 1.0 {
            let wait_ms = ((1.0 - state.tokens) * 60_000.0 / capacity).ceil() as u64;
            return Err(Throttled {
                retry_after: secs_until(now_ms + wait_ms, now_ms),
                locked: false,
                global: true,
                busy: false,
            });
        }
        state.tokens -= 1.0;
        let f = state.failures.entry(username.to_owned()).or_default();
        f.pending += 1;
        f.last_ms = now_ms;
        Ok(Attempt {
            throttle: self.clone(),
            username: Some(username.to_owned()),
        })
    }

    /// Ends a pending attempt; with `failed_at`, counts it as a failure and returns the block it
    /// earned, if any.
    fn settle(&self, username: &str, failed_at: Option<u64>) -> Option<Throttled> {
        let config = self.config;
        let mut state = self.lock();
        let f = state.failures.entry(username.to_owned()).or_default();
        f.pending = f.pending.saturating_sub(1);
        let Some(now_ms) = failed_at else {
            // An abandoned attempt of a name with no failures leaves nothing behind.
            if f.count == 0 && f.pending == 0 {
                state.failures.remove(username);
            }
            return None;
        };
        f.count = f.count.saturating_add(1);
        f.last_ms = now_ms;
        let delay_secs = if f.count >= config.lock_after {
            config.lock_secs
        } else if f.count > config.free_failures {
            let exponent = (f.count - config.free_failures - 1).min(30);
            (1u64 << exponent).min(config.max_delay_secs)
        } else {
            0
        };
        if delay_secs == 0 {
            return None;
        }
        f.blocked_until_ms = now_ms + delay_secs * 1000;
        Some(Throttled {
            retry_after: delay_secs,
            locked: f.count >= config.lock_after,
            global: false,
            busy: false,
        })
    }

    /// Forgets failure records untouched for a day and no longer blocking (memory only).
    pub fn prune(&self, now_ms: u64) {
        const DAY_MS: u64 = 24 * 3600 * 1000;
        self.lock().failures.retain(|_, f| {
            f.pending > 0
                || f.blocked_until_ms > now_ms
                || now_ms.saturating_sub(f.last_ms) < DAY_MS
        });
    }
}

/// An admitted login attempt, pending until it is settled.
pub struct Attempt {
    throttle: LoginThrottle,
    /// `None` once settled.
    username: Option<String>,
}

impl Attempt {
    /// The password was wrong (or the user unknown): counts a failure; returns the block it
    /// earned, if any.
    pub fn fail(mut self, now_ms: u64) -> Option<Throttled> {
        let username = self.username.take()?;
        self.throttle.settle(&username, Some(now_ms))
    }

    /// The password was right: forgets the username's failures.
    pub fn succeed(mut self) {
        if let Some(username) = self.username.take() {
            self.throttle.lock().failures.remove(&username);
        }
    }
}

/// The username may be a password typed into the wrong field: never printed.
impl std::fmt::Debug for Attempt {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Attempt")
    }
}

/// An attempt abandoned before its check ended (the call was cancelled) is neither a failure
/// nor a success; it only stops being pending.
impl Drop for Attempt {
    fn drop(&mut self) {
        if let Some(username) = self.username.take() {
            self.throttle.settle(&username, None);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn throttle(per_minute: u32) -> LoginThrottle {
        LoginThrottle::new(ThrottleConfig {
            free_failures: 5,
            max_delay_secs: 900,
            lock_after: 10,
            lock_secs: 900,
            per_minute,
        })
    }

    #[test]
    fn five_free_failures_then_growing_delays_then_lock() {
        let t = throttle(1000);
        let mut now = 1_000_000;
        for _ in 0..5 {
            let attempt = t.admit("alice", now).unwrap();
            assert_eq!(attempt.fail(now), None);
        }
        let mut delays = Vec::new();
        for _ in 5..10 {
            let block = t.admit("alice", now).unwrap().fail(now);
            let Some(block) = block else {
                panic!("no block after free failures")
            };
            assert!(
                t.admit("alice", now).is_err(),
                "attempt allowed while blocked"
            );
            delays.push((block.retry_after, block.locked));
            now += block.retry_after * 1000;
        }
        assert_eq!(
            delays,
            vec![(1, false), (2, false), (4, false), (8, false), (900, true)]
        );
        assert!(t.admit("bob", now).is_ok(), "other users are not affected");
    }

    #[test]
    fn success_resets() {
        let t = throttle(1000);
        for _ in 0..5 {
            t.admit("carol", 0).unwrap().fail(0);
        }
        t.admit("carol", 0).unwrap().succeed();
        assert_eq!(t.admit("carol", 0).unwrap().fail(0), None);
    }

    #[test]
    fn parallel_attempts_beyond_the_free_failures_wait_for_the_pending_ones() {
        let t = throttle(1000);
        // 40 attempts at once: the five free failures may be checked together, no more.
        let admitted: Vec<Attempt> = (0..40).filter_map(|_| t.admit("dave", 0).ok()).collect();
        assert_eq!(admitted.len(), 5);
        for attempt in admitted {
            attempt.fail(0);
        }
        // Then one at a time: the next is admitted, and none beside it.
        let next = t.admit("dave", 0).unwrap();
        assert!(t.admit("dave", 0).is_err());
        assert!(next.fail(0).is_some(), "the sixth failure earns a delay");
        // An abandoned attempt stops being pending without counting.
        let abandoned = t.admit("erin", 0).unwrap();
        drop(abandoned);
        let admitted: Vec<Attempt> = (0..10).filter_map(|_| t.admit("erin", 0).ok()).collect();
        assert_eq!(admitted.len(), 5, "the abandoned attempt was counted");
        drop(admitted);
        assert!(
            !t.lock().failures.contains_key("erin"),
            "abandoned attempts left a record behind"
        );
    }

    #[test]
    fn global_rate_limit() {
        let t = throttle(3);
        for i in 0..3 {
            assert!(t.admit(&format!("u{i}"), 0).is_ok());
        }
        let refused = t.admit("u4", 0);
        assert!(
            matches!(
                refused,
                Err(Throttled {
                    global: true,
                    retry_after: 20,
                    ..
                })
            ),
            "{refused:?}"
        );
        assert!(
            t.admit("u4", 20_000).is_ok(),
            "a token comes back after 60/3 s"
        );
    }
}
