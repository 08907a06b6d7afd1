//! The upgrade admission: who may open a WebSocket, decided before any upgrade.
//!
//! [`Security::admit`] takes plain inputs (the request target, its headers, the peer
//! address), so whichever code performs the upgrade (an actix-web route today) calls it the
//! same way. It checks, in this order, so that nothing is spent on a request that will be
//! refused anyway:
//!
//! 1. the `Origin` (403): free, and a refused browser page must not burn a ticket;
//! 2. the total and per-address connection caps (503): a slot is taken;
//! 3. the ticket (401) when authentication is on: it is consumed here;
//! 4. the user's own connection cap (429).
//!
//! The answer is an [`Admission`] (the user, their entitlements, the session's rate limiter
//! and the connection slots, released when it is dropped) or a [`Refusal`] (status and JSON
//! body). A refusal is counted and logged with the peer and, when known, the user; tickets
//! and credentials are never logged.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use actix::Recipient;
use actix_http::header::{HeaderMap, HOST, ORIGIN};
use actix_http::StatusCode;

use super::entitlements::Access;
use super::limits::{CapHit, ConnectionGuard};
use super::rate::RateLimiter;
use super::tickets::{ticket_from_query, TicketError};
use super::{AccessChanged, Security};
use crate::metrics::UpgradeRefusal;

/// What an upgrade request is judged on.
#[derive(Debug, Clone, Copy)]
pub struct UpgradeRequest<'a> {
    /// The request target: path and query (`/ws?ticket=...`).
    pub target: &'a str,
    pub headers: &'a HeaderMap,
    pub peer: Option<SocketAddr>,
}

/// A refused upgrade: the HTTP answer to send instead of `101`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Refusal {
    pub reason: UpgradeRefusal,
    pub message: String,
}

impl Refusal {
    fn new(reason: UpgradeRefusal, message: impl Into<String>) -> Refusal {
        Refusal {
            reason,
            message: message.into(),
        }
    }

    /// The HTTP status (401, 403, 429 or 503).
    pub fn status(&self) -> StatusCode {
        StatusCode::from_u16(self.reason.status()).expect("valid status")
    }

    /// `{"error":"unauthorized","reason":"ticket_expired","message":"..."}`.
    pub fn body(&self) -> serde_json::Value {
        let error = match self.reason.status() {
            401 => "unauthorized",
            403 => "forbidden",
            429 => "too_many_connections",
            _ => "unavailable",
        };
        serde_json::json!({"error": error, "reason": self.reason.as_str(), "message": self.message})
    }

    /// The complete HTTP response.
    pub fn to_response(&self) -> actix_web::HttpResponse {
        let mut r = actix_web::HttpResponse::build(self.status());
        match self.reason.status() {
            401 => {
                r.insert_header(("WWW-Authenticate", "Bearer realm=\"tickwire\""));
            }
            503 | 429 => {
                r.insert_header(("Retry-After", "1"));
            }
            _ => {}
        }
        r.json(self.body())
    }
}

/// An admitted connection; the session owns it for its whole life (see the module
/// documentation).
pub struct Admission {
    security: Arc<Security>,
    access: Arc<Access>,
    /// The session's message rate limiter.
    pub rate: RateLimiter,
    /// Close a session without subscriptions after this long without a request.
    pub idle_timeout: Option<Duration>,
    registered: Option<u64>,
    _slots: ConnectionGuard,
}

impl std::fmt::Debug for Admission {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Admission")
            .field("user", &self.access.user)
            .finish_non_exhaustive()
    }
}

impl Admission {
    /// The user's name.
    pub fn user(&self) -> &str {
        &self.access.user
    }

    /// The user's current entitlements.
    pub fn access(&self) -> &Arc<Access> {
        &self.access
    }

    /// Takes new entitlements (from an [`AccessChanged`]).
    pub fn set_access(&mut self, access: Arc<Access>) {
        self.access = access;
    }

    /// Registers the session, so that a reload that changes its user's entitlements reaches
    /// it. Deregistered when the admission is dropped.
    pub fn attach(&mut self, session: u64, notify: Recipient<AccessChanged>) {
        self.security
            .register(session, self.access.user.clone(), notify);
        self.registered = Some(session);
    }

    /// The metrics, for the session's own security events.
    pub fn metrics(&self) -> &crate::metrics::SecurityCounters {
        &self.security.metrics.security
    }
}

impl Drop for Admission {
    fn drop(&mut self) {
        if let Some(id) = self.registered {
            self.security.deregister(id);
        }
    }
}

impl Security {
    /// Decides an upgrade (see the module documentation).
    pub fn admit(self: &Arc<Self>, req: &UpgradeRequest<'_>) -> Result<Admission, Refusal> {
        let result = self.decide(req);
        if let Err(r) = &result {
            self.metrics.security.refused(r.reason);
            // Cap refusals come in storms: counted always, logged only at debug so that an
            // attacker cannot flood the logs.
            if r.reason.status() >= 429 {
                tracing::debug!(peer = ?req.peer, status = r.reason.status(), reason = r.reason.as_str(), "upgrade refused");
            } else {
                tracing::info!(peer = ?req.peer, status = r.reason.status(), reason = r.reason.as_str(), "upgrade refused");
            }
        }
        result
    }

    fn decide(self: &Arc<Self>, req: &UpgradeRequest<'_>) -> Result<Admission, Refusal> {
        let config = self.config();
        let header = |name| req.headers.get(name).map(|v| v.as_bytes());
        config
            .origin
            .check(header(ORIGIN), header(HOST))
            .map_err(|e| Refusal::new(UpgradeRefusal::Origin, e.to_string()))?;
        let ip = req.peer.map(|a| a.ip());
        let mut slots = self.connections.acquire(ip, config.caps).map_err(|hit| {
            let (reason, msg) = match hit {
                CapHit::PerIp => (
                    UpgradeRefusal::IpConnections,
                    format!(
                        "too many connections from this address (at most {})",
                        config.caps.per_ip
                    ),
                ),
                _ => (
                    UpgradeRefusal::TotalConnections,
                    "the server is at its connection limit; try again later".to_string(),
                ),
            };
            Refusal::new(reason, msg)
        })?;
        let access = if config.auth_enabled {
            let query = req.target.split_once('?').map_or("", |(_, q)| q);
            let redeemed = ticket_from_query(query)
                .and_then(|t| {
                    let bind = if config.bind_ticket_to_ip { ip } else { None };
                    self.tickets.redeem(t, bind, Instant::now())
                })
                .map_err(ticket_refusal)?;
            // Entitlements are read from the configuration now, not from when the ticket
            // was issued: a reload in between counts, and a removed user gets nothing.
            let user = &redeemed.access.user;
            config
                .users
                .get(user)
                .map(|u| u.access.clone())
                .ok_or_else(|| {
                    Refusal::new(
                        UpgradeRefusal::UserRevoked,
                        "the ticket's user no longer exists",
                    )
                })?
        } else {
            self.anonymous.clone()
        };
        slots
            .add_user(&access.user, access.max_connections)
            .map_err(|_| {
                Refusal::new(
                    UpgradeRefusal::UserConnections,
                    format!(
                        "user {:?} has its maximum of {} connections open",
                        access.user, access.max_connections
                    ),
                )
            })?;
        Ok(Admission {
            security: self.clone(),
            rate: RateLimiter::new(config.rate, Instant::now()),
            idle_timeout: config.idle_timeout,
            access,
            registered: None,
            _slots: slots,
        })
    }
}

fn ticket_refusal(e: TicketError) -> Refusal {
    let reason = match e {
        TicketError::Missing => UpgradeRefusal::TicketMissing,
        TicketError::Malformed => UpgradeRefusal::TicketMalformed,
        TicketError::Unknown => UpgradeRefusal::TicketUnknown,
        TicketError::Expired => UpgradeRefusal::TicketExpired,
        TicketError::Used => UpgradeRefusal::TicketUsed,
        TicketError::WrongAddress => UpgradeRefusal::TicketWrongAddress,
    };
    Refusal::new(reason, e.to_string())
}
