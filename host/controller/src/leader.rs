//! Leader election on a `coordination.k8s.io/v1` Lease, as client-go does
//! it: the holder renews the lease every `renew` period; another replica
//! takes it over once it has seen the lease record unchanged for the lease's
//! `leaseDurationSeconds`; a holder that cannot renew in time stops leading;
//! a holder that shuts down releases the lease so another replica takes over
//! at once. Writes use the lease's resourceVersion, so two replicas never
//! both win.
//!
//! Expiry is measured as client-go's `observedTime` does: on this replica's
//! monotonic clock, from when it first saw the current record (holder,
//! duration, acquire and renew times, transitions). The holder's `renewTime`
//! is never compared with the local wall clock, so clock skew between
//! replicas neither steals a live lease nor keeps a dead holder's. A replica
//! that has just started therefore waits a full duration before taking over
//! a lease that is not renewed, however old its `renewTime`.

use std::sync::Mutex;
use std::time::Duration;

use k8s_openapi::api::coordination::v1::{Lease, LeaseSpec};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::MicroTime;
use k8s_openapi::jiff::Timestamp;
use kube::Client;
use kube::api::{Api, ObjectMeta, PostParams};
use tokio::time::Instant;

/// Settings of one election.
#[derive(Debug, Clone)]
pub struct LeaseConfig {
    /// Namespace of the Lease.
    pub namespace: String,
    /// Name of the Lease.
    pub name: String,
    /// This replica's identity (e.g. the pod name).
    pub identity: String,
    /// How long a lease lasts without renewal.
    pub duration: Duration,
    /// How often the holder renews.
    pub renew: Duration,
}

/// What a Lease says about its holder: the record client-go compares to
/// tell whether the holder still renews it.
#[derive(Debug, Clone, PartialEq, Eq)]
struct LeaseRecord {
    holder: String,
    duration_seconds: i32,
    acquire_time: Option<Timestamp>,
    renew_time: Option<Timestamp>,
    transitions: i32,
}

impl LeaseRecord {
    fn of(spec: &LeaseSpec) -> Self {
        LeaseRecord {
            holder: spec.holder_identity.clone().unwrap_or_default(),
            duration_seconds: spec.lease_duration_seconds.unwrap_or(0),
            acquire_time: spec.acquire_time.as_ref().map(|t| t.0),
            renew_time: spec.renew_time.as_ref().map(|t| t.0),
            transitions: spec.lease_transitions.unwrap_or(0),
        }
    }

    /// How long the holder says the lease lasts without renewal.
    fn duration(&self) -> Duration {
        Duration::from_secs(u64::try_from(self.duration_seconds).unwrap_or(0))
    }
}

/// This replica's view of the lease: the record it last read.
#[derive(Debug, Default)]
struct Observer {
    last: Option<(LeaseRecord, Instant)>,
}

impl Observer {
    /// Notes `record`, read at `now`.
    fn observe(&mut self, record: &LeaseRecord, now: Instant) {
        if self.last.as_ref().is_none_or(|(last, _)| last != record) {
            self.last = Some((record.clone(), now));
        }
    }

    /// Notes `record`, read at `now`, and says whether another replica may
    /// take the lease over: it was released, or this replica has seen it
    /// unchanged for its duration. As client-go's `observedTime`, this
    /// counts on this replica's monotonic clock from when it first saw the
    /// record, never compares its wall clock with the holder's `renewTime`:
    /// clock skew between replicas neither steals a lease nor keeps a dead
    /// holder's.
    fn expired(&mut self, record: &LeaseRecord, now: Instant) -> bool {
        self.observe(record, now);
        if record.holder.is_empty() {
            return true;
        }
        let (_, seen) = self.last.as_ref().expect("just observed");
        now.saturating_duration_since(*seen) >= record.duration()
    }
}

/// One replica's side of the election.
#[derive(Debug)]
pub struct Elector {
    api: Api<Lease>,
    config: LeaseConfig,
    observer: Mutex<Observer>,
}

impl Elector {
    /// An elector for `config`.
    pub fn new(client: Client, config: LeaseConfig) -> Self {
        Elector {
            api: Api::namespaced(client, &config.namespace),
            config,
            observer: Mutex::new(Observer::default()),
        }
    }

    /// Tries once to take or renew the lease. True when this replica holds
    /// it afterwards.
    pub async fn try_acquire(&self) -> Result<bool, kube::Error> {
        let now = Timestamp::now();
        let seconds = i32::try_from(self.config.duration.as_secs())
            .unwrap_or(i32::MAX)
            .max(1);
        let existing = self.api.get_opt(&self.config.name).await?;
        let Some(mut lease) = existing else {
            let lease = Lease {
                metadata: ObjectMeta {
                    name: Some(self.config.name.clone()),
                    namespace: Some(self.config.namespace.clone()),
                    ..ObjectMeta::default()
                },
                spec: Some(LeaseSpec {
                    holder_identity: Some(self.config.identity.clone()),
                    lease_duration_seconds: Some(seconds),
                    acquire_time: Some(MicroTime(now)),
                    renew_time: Some(MicroTime(now)),
                    lease_transitions: Some(0),
                    ..LeaseSpec::default()
                }),
            };
            return match self.api.create(&PostParams::default(), &lease).await {
                Ok(_) => Ok(true),
                Err(kube::Error::Api(e)) if e.code == 409 => Ok(false),
                Err(e) => Err(e),
            };
        };
        let spec = lease.spec.get_or_insert_with(LeaseSpec::default);
        let record = LeaseRecord::of(spec);
        let ours = record.holder == self.config.identity;
        let expired = self
            .observer
            .lock()
            .expect("the lease observer")
            .expired(&record, Instant::now());
        if !ours && !expired {
            return Ok(false);
        }
        if !ours {
            spec.acquire_time = Some(MicroTime(now));
            spec.lease_transitions = Some(spec.lease_transitions.unwrap_or(0) + 1);
        }
        spec.holder_identity = Some(self.config.identity.clone());
        spec.lease_duration_seconds = Some(seconds);
        spec.renew_time = Some(MicroTime(now));
        // `replace` carries the resourceVersion we read: a concurrent winner
        // makes this fail with 409 instead of both holding the lease.
        match self
            .api
            .replace(&self.config.name, &PostParams::default(), &lease)
            .await
        {
            Ok(_) => Ok(true),
            Err(kube::Error::Api(e)) if e.code == 409 => Ok(false),
            Err(e) => Err(e),
        }
    }

    /// Waits until this replica holds the lease.
    pub async fn acquire(&self) {
        loop {
            match self.try_acquire().await {
                Ok(true) => return,
                Ok(false) => {}
                Err(error) => tracing::warn!(%error, "leader election"),
            }
            tokio::time::sleep(self.config.renew).await;
        }
    }

    /// Renews the lease until a renewal fails for longer than the lease
    /// lasts (another replica may have taken over): then returns.
    pub async fn hold(&self) {
        let mut last_renewed = tokio::time::Instant::now();
        loop {
            tokio::time::sleep(self.config.renew).await;
            match self.try_acquire().await {
                Ok(true) => last_renewed = tokio::time::Instant::now(),
                Ok(false) => return,
                Err(error) => {
                    tracing::warn!(%error, "renewing the lease");
                    // Stop leading before another replica may take over.
                    if last_renewed.elapsed() + self.config.renew >= self.config.duration {
                        return;
                    }
                }
            }
        }
    }

    /// Gives the lease up (on graceful shutdown), so another replica takes
    /// over without waiting for it to expire: as client-go's
    /// `ReleaseOnCancel`, the holder is cleared, the duration set to one
    /// second and the acquire and renew times to now, the transitions kept.
    /// Only a lease this replica holds is touched (the write carries the
    /// resourceVersion read). Gives up after the lease's duration (it has
    /// expired by then anyway). True when the lease was released.
    pub async fn release(&self) -> bool {
        match tokio::time::timeout(self.config.duration, self.try_release()).await {
            Ok(Ok(released)) => released,
            Ok(Err(error)) => {
                tracing::warn!(%error, "releasing the lease");
                false
            }
            Err(_) => {
                tracing::warn!("releasing the lease timed out");
                false
            }
        }
    }

    async fn try_release(&self) -> Result<bool, kube::Error> {
        let Some(mut lease) = self.api.get_opt(&self.config.name).await? else {
            return Ok(false);
        };
        let Some(spec) = lease.spec.as_mut() else {
            return Ok(false);
        };
        if spec.holder_identity.as_deref() != Some(self.config.identity.as_str()) {
            return Ok(false);
        }
        let now = MicroTime(Timestamp::now());
        spec.holder_identity = None;
        spec.renew_time = Some(now.clone());
        spec.acquire_time = Some(now);
        spec.lease_duration_seconds = Some(1);
        self.api
            .replace(&self.config.name, &PostParams::default(), &lease)
            .await?;
        tracing::info!(
            lease = %format!("{}/{}", self.config.namespace, self.config.name),
            "released the lease"
        );
        Ok(true)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const SECOND: Duration = Duration::from_secs(1);

    /// A record of `holder` renewed at `renewed`, lasting 15 seconds.
    fn record(holder: &str, renewed: Timestamp) -> LeaseRecord {
        LeaseRecord {
            holder: holder.into(),
            duration_seconds: 15,
            acquire_time: Some(renewed),
            renew_time: Some(renewed),
            transitions: 3,
        }
    }

    /// `seconds` from now on the wall clock.
    fn wall(seconds: i64) -> Timestamp {
        Timestamp::now() + k8s_openapi::jiff::SignedDuration::from_secs(seconds)
    }

    #[test]
    fn a_record_seen_changing_is_not_expired_however_old_its_renew_time() {
        // This replica's wall clock is an hour ahead of the holder's: every
        // renewTime it reads is an hour old.
        let mut observer = Observer::default();
        let t0 = Instant::now();
        let mut renewed = wall(-3600);
        for step in 0..10 {
            let now = t0 + step * 5 * SECOND;
            assert!(
                !observer.expired(&record("other", renewed), now),
                "renewed {step} times, every 5s"
            );
            renewed += k8s_openapi::jiff::SignedDuration::from_secs(5);
        }
        // Just seen: not expired until 15s pass here without a change.
        let seen = t0 + 45 * SECOND;
        let last = record("other", renewed);
        assert!(!observer.expired(&last, seen));
        assert!(!observer.expired(&last, seen + 14 * SECOND));
        assert!(observer.expired(&last, seen + 15 * SECOND));
    }

    #[test]
    fn a_record_renewed_in_the_future_expires_once_it_stops_changing() {
        // This replica's wall clock is an hour behind the holder's.
        let mut observer = Observer::default();
        let t0 = Instant::now();
        let stuck = record("other", wall(3600));
        assert!(!observer.expired(&stuck, t0), "first seen");
        assert!(!observer.expired(&stuck, t0 + 14 * SECOND));
        assert!(
            observer.expired(&stuck, t0 + 15 * SECOND),
            "unchanged for its duration"
        );
        // A change (a renewal, a new holder) starts the count again.
        let renewed = LeaseRecord {
            renew_time: Some(wall(3605)),
            ..stuck.clone()
        };
        assert!(!observer.expired(&renewed, t0 + 16 * SECOND));
        assert!(!observer.expired(&renewed, t0 + 30 * SECOND));
        assert!(observer.expired(&renewed, t0 + 31 * SECOND));
        let taken = LeaseRecord {
            holder: "third".into(),
            transitions: 4,
            ..renewed
        };
        assert!(!observer.expired(&taken, t0 + 32 * SECOND));
        assert!(observer.expired(&taken, t0 + 47 * SECOND));
    }

    #[test]
    fn a_released_lease_is_free_at_once() {
        let mut observer = Observer::default();
        let t0 = Instant::now();
        assert!(!observer.expired(&record("other", wall(0)), t0));
        let released = LeaseRecord {
            holder: String::new(),
            duration_seconds: 1,
            acquire_time: None,
            renew_time: None,
            transitions: 3,
        };
        assert!(observer.expired(&released, t0 + SECOND / 10));
    }
}
