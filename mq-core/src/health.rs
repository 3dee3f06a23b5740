//! [`Health`]: what `GET /healthz` reports. Parts of a worker that talk to Redis (fetchers,
//! ackers, the lease thread) report each success and failure; the worker is unhealthy while
//! any part has failed [`UNHEALTHY_AFTER`] times in a row, or when a fetcher stopped while the
//! worker was not shutting down. Reports are a mutex on a tiny map, taken on failures and on
//! the first success after them only: the hot path pays an atomic load (also after a part
//! stopped for good).

use std::{
    collections::BTreeMap,
    sync::{
        atomic::{AtomicBool, Ordering},
        Mutex,
    },
};

/// Consecutive failures of one part after which the worker reports itself unhealthy: 3.
pub const UNHEALTHY_AFTER: u32 = 3;

/// The health of one worker.
#[derive(Debug, Default)]
pub struct Health {
    /// Whether any part has a recoverable failure recorded (lets `ok` skip the lock).
    failing: AtomicBool,
    /// Part name -> (consecutive failures, last error); fatal problems use `u32::MAX`.
    parts: Mutex<BTreeMap<String, (u32, String)>>,
}

impl Health {
    /// Records a success of `part`, clearing its failures.
    pub fn ok(&self, part: &str) {
        if self.failing.load(Ordering::Relaxed) {
            let mut parts = self.lock();
            if parts.get(part).is_some_and(|(n, _)| *n != u32::MAX) {
                parts.remove(part);
            }
            self.failing.store(
                parts.values().any(|(n, _)| *n != u32::MAX),
                Ordering::Relaxed,
            );
        }
    }

    /// Records a failure of `part` with its error.
    pub fn failed(&self, part: &str, error: &str) {
        let mut parts = self.lock();
        let e = parts.entry(part.to_owned()).or_insert((0, String::new()));
        e.0 = e.0.saturating_add(1).min(u32::MAX - 1);
        e.1 = error.to_owned();
        self.failing.store(true, Ordering::Relaxed);
    }

    /// Records that `part` stopped for good (e.g. a fetcher ended while the worker runs).
    pub fn fatal(&self, part: &str, error: &str) {
        self.lock()
            .insert(part.to_owned(), (u32::MAX, error.to_owned()));
    }

    /// `Ok(())` when healthy, else the reasons, one line each.
    pub fn check(&self) -> Result<(), String> {
        let reasons: Vec<String> = self
            .lock()
            .iter()
            .filter(|(_, (n, _))| *n >= UNHEALTHY_AFTER)
            .map(|(part, (n, e))| match *n {
                u32::MAX => format!("{part}: stopped: {e}"),
                n => format!("{part}: {n} failures in a row, last: {e}"),
            })
            .collect();
        if reasons.is_empty() {
            Ok(())
        } else {
            Err(reasons.join("\n"))
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, BTreeMap<String, (u32, String)>> {
        self.parts.lock().unwrap_or_else(|e| e.into_inner())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn failures_in_a_row_make_unhealthy_and_a_success_heals() {
        let h = Health::default();
        assert!(h.check().is_ok());
        for _ in 0..UNHEALTHY_AFTER - 1 {
            h.failed("fetch images", "connection refused");
        }
        assert!(h.check().is_ok(), "not yet");
        h.failed("fetch images", "connection refused");
        let e = h.check().unwrap_err();
        assert!(
            e.contains("fetch images: 3 failures in a row, last: connection refused"),
            "{e}"
        );
        h.ok("fetch images");
        assert!(h.check().is_ok());
        h.fatal("fetcher texts", "panicked");
        h.ok("fetcher texts");
        assert!(h
            .check()
            .unwrap_err()
            .contains("fetcher texts: stopped: panicked"));
    }
}
