//! The active/standby lease: which engine publishes, decided in NATS JetStream.
//!
//! The lease is one key (`active`) in a JetStream key-value bucket (`cluster.lease_bucket`,
//! history 1, in memory, `max_age` = TTL). Every engine runs the same loop every TTL/4:
//!
//! * **Holding it**: renew with a revision-checked update (compare-and-swap on the revision
//!   it last wrote). A failed update means another engine took it: step down at once. A
//!   holder that could not renew for a whole TTL (cut off from NATS) also steps down.
//! * **Not holding it**: if the key is absent (first start, or aged out by `max_age`),
//!   create it (create-if-absent, so two standbys cannot both win). If it exists but its
//!   revision has not changed for a whole TTL by this engine's own clock, the holder is
//!   dead: take it over with an update checked against that revision (again a
//!   compare-and-swap: only one standby wins, and a holder that renewed meanwhile wins).
//!
//! The revision at which an engine acquired the lease is its **epoch**: it increases with
//! every takeover, goes into every message the engine publishes, and gateways ignore
//! messages of an older epoch (fencing a holder that has not noticed yet).
//!
//! Takeover bound: a standby sees the same revision for TTL, then acts at its next check,
//! at most TTL/4 later: **TTL + TTL/4** after the last renewal (2.5 s with the default TTL of
//! 2 s), plus one NATS round trip. Only clocks' rates matter, never their agreement.

use std::time::{Duration, Instant};

use async_nats::jetstream::{self, kv};
use bytes::Bytes;
use tokio::sync::watch;

/// The key holding the lease.
pub const KEY: &str = "active";

/// Who this engine is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Role {
    /// Holding the lease since revision `epoch`: publish.
    Active { epoch: u32 },
    /// Warm: feeds and books run, nothing is published.
    Standby,
}

/// Opens (or creates) the bucket.
///
/// The bucket's stream is created here with the layout async-nats gives a key-value bucket
/// (`KV_<bucket>` over `$KV.<bucket>.>`, roll-ups, direct get, discard new): its own
/// `create_key_value` first reads the account's limits, and the account reply of the
/// nats-server 2.9 that Debian ships does not parse there.
async fn bucket(js: &jetstream::Context, name: &str, ttl: Duration) -> Result<kv::Store, String> {
    if let Ok(store) = js.get_key_value(name).await {
        return Ok(store);
    }
    let created = js
        .create_stream(jetstream::stream::Config {
            name: format!("KV_{name}"),
            subjects: vec![format!("$KV.{name}.>")],
            max_messages_per_subject: 1,
            max_age: ttl,
            storage: jetstream::stream::StorageType::Memory,
            allow_rollup: true,
            deny_delete: true,
            allow_direct: true,
            discard: jetstream::stream::DiscardPolicy::New,
            num_replicas: 1,
            ..Default::default()
        })
        .await;
    // Another engine may have created it at the same moment: open it either way.
    js.get_key_value(name).await.map_err(|e| match created {
        Err(c) => format!("lease bucket {name}: {c}; {e}"),
        Ok(_) => format!("lease bucket {name}: {e}"),
    })
}

/// Runs the lease loop forever, telling `role` whenever this engine's role changes.
pub async fn run(
    client: async_nats::Client,
    bucket_name: String,
    engine_id: String,
    ttl: Duration,
    role: watch::Sender<Role>,
) {
    let js = jetstream::new(client);
    let check = ttl / 4;
    let mut timer = tokio::time::interval(check);
    timer.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut store: Option<kv::Store> = None;
    // Holding: the revision we wrote last and when we wrote it.
    let mut held: Option<(u64, Instant)> = None;
    // Not holding: the holder's revision and since when we have seen it unchanged.
    let mut observed: Option<(u64, Instant)> = None;
    let value = Bytes::from(engine_id.clone());
    loop {
        timer.tick().await;
        let kv = match &store {
            Some(s) => s,
            None => match bucket(&js, &bucket_name, ttl).await {
                Ok(s) => store.insert(s),
                Err(e) => {
                    tracing::warn!(error = %e, "lease bucket unavailable; retrying");
                    step_down(&role, &mut held, "lease bucket unavailable");
                    continue;
                }
            },
        };
        if let Some((revision, at)) = held {
            match kv.update(KEY, value.clone(), revision).await {
                Ok(next) => held = Some((next, Instant::now())),
                Err(e) if e.kind() == kv::UpdateErrorKind::WrongLastRevision => {
                    step_down(&role, &mut held, "lease taken by another engine");
                }
                Err(e) => {
                    tracing::warn!(error = %e, "lease renewal failed");
                    if at.elapsed() >= ttl {
                        step_down(&role, &mut held, "lease not renewed within its TTL");
                    }
                }
            }
            continue;
        }
        let entry = match kv.entry(KEY).await {
            Ok(e) => e,
            Err(e) => {
                tracing::debug!(error = %e, "lease read failed");
                continue;
            }
        };
        let live = entry.filter(|e| e.operation == kv::Operation::Put);
        let attempt = match &live {
            None => kv
                .create(KEY, value.clone())
                .await
                .map_err(|e| e.to_string()),
            Some(e) => {
                let now = Instant::now();
                match observed {
                    Some((rev, since)) if rev == e.revision => {
                        if now.duration_since(since) < ttl {
                            continue;
                        }
                        tracing::warn!(
                            holder = %String::from_utf8_lossy(&e.value),
                            revision = e.revision,
                            "lease not renewed within its TTL; taking over"
                        );
                        kv.update(KEY, value.clone(), e.revision)
                            .await
                            .map_err(|e| e.to_string())
                    }
                    _ => {
                        observed = Some((e.revision, now));
                        continue;
                    }
                }
            }
        };
        match attempt {
            Ok(revision) => {
                held = Some((revision, Instant::now()));
                observed = None;
                tracing::info!(engine = %engine_id, epoch = revision, "lease acquired: active");
                role.send_replace(Role::Active {
                    epoch: revision as u32,
                });
            }
            Err(e) => tracing::debug!(error = %e, "lease not acquired"),
        }
    }
}

fn step_down(role: &watch::Sender<Role>, held: &mut Option<(u64, Instant)>, why: &str) {
    if held.take().is_some() || matches!(*role.borrow(), Role::Active { .. }) {
        tracing::warn!(reason = why, "lease lost: standby");
        role.send_replace(Role::Standby);
    }
}
