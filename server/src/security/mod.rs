//! Security: who may connect, what they may see, and how much they may ask.
//!
//! A market-data server faces the open internet; this module owns every measure that keeps
//! it safe there (the threat model and every setting are in `docs/security.md`):
//!
//! * [`users`]: API keys (SHA-256 digests, compared in constant time) and HS256 tokens;
//! * [`tickets`]: short-lived single-use upgrade tickets, `POST /auth/ticket` → `/ws?ticket=`;
//! * [`admission`]: the upgrade decision (origin 403, caps 503/429, ticket 401), a function
//!   of plain inputs usable from any upgrade code;
//! * [`entitlements`]: symbol patterns, channels and caps per user, checked on subscribe;
//! * [`origin`]: the Origin allow-list;
//! * [`limits`]: connection counts in total, per address and per user;
//! * [`rate`]: the per-session message token bucket;
//! * [`http`]: the `/auth/ticket` route and the `/admin/*` guard;
//! * [`settings`]: the `[auth]`, `[origin]` and `[limits]` configuration.
//!
//! [`Security`] is the one shared instance (an `Arc` in the app state). Its settings sit in
//! an `ArcSwap`, read lock-free on every upgrade and replaced whole by the reload hook
//! ([`Security::reload`]), which also tells the sessions of every user whose entitlements
//! changed (an [`AccessChanged`] message to their actors, through the registry of live
//! sessions kept here).

pub mod admission;
pub mod entitlements;
pub mod http;
pub mod limits;
pub mod origin;
pub mod rate;
pub mod settings;
pub mod tickets;
pub mod users;

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::Arc;

use actix::{Message, Recipient};
use arc_swap::ArcSwap;
use parking_lot::Mutex;

use tickwire_engine::fanout::CloseReason;

pub use admission::{Admission, Refusal, UpgradeRequest};
pub use entitlements::Access;
pub use settings::SecurityConfig;

use crate::metrics::Metrics;
use limits::ConnectionCounter;
use tickets::TicketStore;

/// 1008: the client kept sending faster than its rate limit.
pub const RATE_LIMITED: CloseReason = CloseReason {
    code: 1008,
    reason: "rate limited",
};

/// 4002: no subscription and no request for `limits.idle_timeout_ms`.
pub const IDLE_TIMEOUT: CloseReason = CloseReason {
    code: 4002,
    reason: "idle timeout",
};

/// 4003: a reload removed the session's user.
pub const ACCESS_REVOKED: CloseReason = CloseReason {
    code: 4003,
    reason: "access revoked",
};

/// Sent to a session when its user's entitlements changed on reload: the new ones, or
/// `None` when the user no longer exists.
#[derive(Debug, Clone, Message)]
#[rtype(result = "()")]
pub struct AccessChanged(pub Option<Arc<Access>>);

struct LiveSession {
    user: String,
    notify: Recipient<AccessChanged>,
}

/// See the module documentation.
pub struct Security {
    config: ArcSwap<SecurityConfig>,
    tickets: TicketStore,
    connections: Arc<ConnectionCounter>,
    sessions: Mutex<HashMap<u64, LiveSession>>,
    anonymous: Arc<Access>,
    metrics: Arc<Metrics>,
}

impl Security {
    pub fn new(config: SecurityConfig, metrics: Arc<Metrics>) -> Arc<Security> {
        Arc::new(Security {
            tickets: TicketStore::new(config.tickets),
            config: ArcSwap::from_pointee(config),
            connections: Arc::new(ConnectionCounter::default()),
            sessions: Mutex::new(HashMap::new()),
            anonymous: Arc::new(Access::anonymous()),
            metrics,
        })
    }

    /// The settings in force.
    pub fn config(&self) -> Arc<SecurityConfig> {
        self.config.load_full()
    }

    /// Says loudly at start-up what protects this server, and what does not.
    pub fn log_startup(&self, listen: SocketAddr) {
        let c = self.config();
        if c.auth_enabled {
            tracing::info!(
                users = c.users.users.len(),
                tokens = c.users.jwt_secret.is_some(),
                ticket_ttl_ms = c.tickets.ttl.as_millis() as u64,
                "authentication on: WebSocket upgrades need a ticket from POST /auth/ticket"
            );
        } else {
            tracing::warn!(
                %listen,
                exposed = !listen.ip().is_loopback(),
                "AUTHENTICATION IS OFF: anyone who can reach this address can read every \
                 symbol and channel. For local development only; set auth.enabled = true \
                 (see docs/security.md) before exposing the server"
            );
        }
        if c.admin_key.is_none() {
            tracing::info!("/admin/* answers loopback clients only (no auth.admin_key_sha256)");
        }
    }

    fn register(&self, id: u64, user: String, notify: Recipient<AccessChanged>) {
        self.sessions
            .lock()
            .insert(id, LiveSession { user, notify });
    }

    fn deregister(&self, id: u64) {
        self.sessions.lock().remove(&id);
    }

    /// Sessions registered now.
    pub fn live_sessions(&self) -> usize {
        self.sessions.lock().len()
    }

    /// The reload hook: takes the new settings, and tells the sessions of every user whose
    /// entitlements changed (or who was removed). Switching `auth.enabled` needs a restart
    /// and is refused, keeping everything as it was.
    pub fn reload(&self, new: SecurityConfig) -> Result<String, String> {
        let old = self.config();
        if new.auth_enabled != old.auth_enabled {
            return Err(format!(
                "auth.enabled changed to {}: that needs a restart; nothing reloaded",
                new.auth_enabled
            ));
        }
        let mut changed: Vec<&str> = Vec::new();
        let mut removed: Vec<&str> = Vec::new();
        for u in &old.users.users {
            match new.users.get(&u.access.user) {
                None => removed.push(&u.access.user),
                Some(n) if n.access != u.access => changed.push(&u.access.user),
                Some(_) => {}
            }
        }
        self.tickets.set_limits(new.tickets);
        let new = Arc::new(new);
        self.config.store(new.clone());
        let mut notified = 0;
        if new.auth_enabled {
            for s in self.sessions.lock().values() {
                let update = match new.users.get(&s.user) {
                    None => AccessChanged(None),
                    Some(u) if changed.contains(&s.user.as_str()) => {
                        AccessChanged(Some(u.access.clone()))
                    }
                    Some(_) => continue,
                };
                s.notify.do_send(update);
                notified += 1;
            }
        }
        Ok(format!(
            "{} users; entitlements changed: [{}]; removed: [{}]; sessions notified: {notified}",
            new.users.users.len(),
            changed.join(", "),
            removed.join(", ")
        ))
    }
}
