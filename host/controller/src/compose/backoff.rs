//! The backoff of failing composites: how many times in a row each has
//! failed, forgotten when it succeeds or is gone.

use std::collections::HashMap;
use std::hash::Hash;
use std::time::Duration;

/// Consecutive failures by composite.
#[derive(Debug)]
pub(super) struct Backoff<K> {
    failures: HashMap<K, u32>,
}

impl<K: Hash + Eq> Backoff<K> {
    pub(super) fn new() -> Self {
        Backoff {
            failures: HashMap::new(),
        }
    }

    /// Counts one more failure of `key`; the delay before retrying it:
    /// 0.5 s, 1 s, 2 s, ... up to 5 minutes.
    pub(super) fn failed(&mut self, key: K) -> Duration {
        let count = self.failures.entry(key).or_insert(0);
        *count = count.saturating_add(1);
        Duration::from_millis(500)
            .saturating_mul(1u32 << (*count - 1).min(10))
            .min(Duration::from_secs(300))
    }

    /// Forgets `key`: it succeeded, or it is being deleted.
    pub(super) fn forget(&mut self, key: &K) {
        self.failures.remove(key);
    }

    /// Forgets every composite `exists` says is gone.
    pub(super) fn retain(&mut self, exists: impl Fn(&K) -> bool) {
        self.failures.retain(|key, _| exists(key));
    }

    /// How many composites are backing off.
    #[cfg(test)]
    pub(super) fn len(&self) -> usize {
        self.failures.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn delays_double_up_to_five_minutes() {
        let mut backoff = Backoff::new();
        let delays: Vec<Duration> = (0..12).map(|_| backoff.failed("a")).collect();
        assert_eq!(delays[0], Duration::from_millis(500));
        assert_eq!(delays[1], Duration::from_secs(1));
        assert_eq!(delays[2], Duration::from_secs(2));
        assert_eq!(delays[11], Duration::from_secs(300));
        backoff.forget(&"a");
        assert_eq!(backoff.failed("a"), Duration::from_millis(500));
    }

    #[test]
    fn success_and_deletion_forget_a_composite() {
        let mut backoff = Backoff::new();
        for key in ["ok", "deleted", "gone", "failing"] {
            backoff.failed(key);
        }
        backoff.forget(&"ok");
        backoff.forget(&"deleted");
        backoff.retain(|key| *key != "gone");
        assert_eq!(backoff.len(), 1);
        assert_eq!(backoff.failed("failing"), Duration::from_secs(1));
    }
}
