//! Per-address budgets over a fixed window: transport sessions opened, and requests without a
//! valid bearer token. A client past its budget is told when the window ends (429 with
//! `Retry-After`).

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::Mutex;

/// How many events each address may have per window.
pub struct RateWindow {
    per_window: u32,
    window_ms: u64,
    /// Address → (window start, events in it).
    counts: Mutex<HashMap<IpAddr, (u64, u32)>>,
}

/// Most addresses remembered; past it the oldest windows are forgotten first.
const MAX_ADDRESSES: usize = 100_000;

impl RateWindow {
    pub fn new(per_window: u32, window_ms: u64) -> Self {
        Self {
            per_window,
            window_ms,
            counts: Mutex::new(HashMap::new()),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<IpAddr, (u64, u32)>> {
        self.counts.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn retry_after(&self, start: u64, now_ms: u64) -> u64 {
        (start + self.window_ms)
            .saturating_sub(now_ms)
            .div_ceil(1000)
            .max(1)
    }

    /// Counts one event of `address`; refused (with the seconds to wait) past the budget.
    pub fn hit(&self, address: IpAddr, now_ms: u64) -> Result<(), u64> {
        let mut counts = self.lock();
        if counts.len() >= MAX_ADDRESSES && !counts.contains_key(&address) {
            let window = self.window_ms;
            counts.retain(|_, (start, _)| now_ms < *start + window);
        }
        let slot = counts.entry(address).or_insert((now_ms, 0));
        if now_ms >= slot.0 + self.window_ms {
            *slot = (now_ms, 0);
        }
        if slot.1 >= self.per_window {
            let start = slot.0;
            return Err(self.retry_after(start, now_ms));
        }
        slot.1 += 1;
        Ok(())
    }

    /// Forgets windows that are over.
    pub fn prune(&self, now_ms: u64) {
        let window = self.window_ms;
        self.lock().retain(|_, (start, _)| now_ms < *start + window);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_budget_refuses_until_its_window_ends() {
        let limit = RateWindow::new(2, 60_000);
        let a: IpAddr = "192.0.2.1".parse().unwrap();
        let b: IpAddr = "192.0.2.2".parse().unwrap();
        assert!(limit.hit(a, 1_000).is_ok());
        assert!(limit.hit(a, 2_000).is_ok());
        assert_eq!(limit.hit(a, 3_000), Err(58));
        assert_eq!(limit.hit(a, 3_500), Err(58));
        assert!(
            limit.hit(b, 3_000).is_ok(),
            "another address has its own budget"
        );
        assert!(limit.hit(a, 61_000).is_ok(), "a new window");
        limit.prune(200_000);
        assert!(limit.lock().is_empty());
    }
}
