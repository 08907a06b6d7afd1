//! HTTP side of security: `POST /auth/ticket`, `GET /auth/status`, the CORS answers for
//! allow-listed origins, and the `/admin/*` guard.
//!
//! Each handler is a thin actix wrapper over a function of plain inputs (headers, peer
//! address), so the decisions are tested without a server and stay independent of how the
//! HTTP layer is wired.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Instant;

use actix_http::header::{HeaderMap, AUTHORIZATION, ORIGIN};
use actix_web::http::StatusCode;
use actix_web::{web, HttpRequest, HttpResponse};
use subtle::ConstantTimeEq;

use super::tickets::IssueError;
use super::users::{CredentialError, KeyDigest};
use super::Security;
use crate::metrics::TicketOutcome;

/// An HTTP answer: status and JSON body.
pub type Answer = (StatusCode, serde_json::Value);

impl Security {
    /// Answers `POST /auth/ticket`: a ticket for the user the `Authorization` header proves.
    pub fn ticket_request(&self, headers: &HeaderMap, peer: Option<SocketAddr>) -> Answer {
        let (outcome, answer) = self.decide_ticket(headers, peer);
        self.metrics.security.ticket(outcome);
        answer
    }

    fn decide_ticket(
        &self,
        headers: &HeaderMap,
        peer: Option<SocketAddr>,
    ) -> (TicketOutcome, Answer) {
        let config = self.config();
        if !config.auth_enabled {
            return (
                TicketOutcome::AuthDisabled,
                (
                    StatusCode::NOT_FOUND,
                    serde_json::json!({"error": "auth_disabled", "message":
                        "authentication is off on this server: connect to /ws without a ticket"}),
                ),
            );
        }
        let auth = headers.get(AUTHORIZATION).map(|v| v.as_bytes());
        let access = match config.users.authenticate(auth) {
            Ok(a) => a,
            Err(e) => {
                let outcome = match e {
                    CredentialError::Missing => TicketOutcome::CredentialsMissing,
                    CredentialError::Malformed => TicketOutcome::CredentialsMalformed,
                    CredentialError::Invalid => TicketOutcome::CredentialsInvalid,
                    CredentialError::Expired => TicketOutcome::TokenExpired,
                };
                tracing::info!(peer = ?peer, reason = e.as_str(), "ticket refused");
                return (
                    outcome,
                    (
                        StatusCode::UNAUTHORIZED,
                        serde_json::json!({"error": "unauthorized", "reason": e.as_str(), "message": e.to_string()}),
                    ),
                );
            }
        };
        let ip = peer
            .map(|p| p.ip())
            .unwrap_or(std::net::IpAddr::V4(std::net::Ipv4Addr::UNSPECIFIED));
        match self.tickets.issue(access.clone(), ip, Instant::now()) {
            Ok(ticket) => {
                tracing::debug!(user = %access.user, peer = ?peer, "ticket issued");
                (
                    TicketOutcome::Issued,
                    (
                        StatusCode::OK,
                        serde_json::json!({
                            "ticket": ticket,
                            "user": access.user,
                            "expires_in_ms": config.tickets.ttl.as_millis() as u64,
                        }),
                    ),
                )
            }
            Err(e) => {
                let (outcome, status) = match e {
                    IssueError::UserCap => (
                        TicketOutcome::UserTicketLimit,
                        StatusCode::TOO_MANY_REQUESTS,
                    ),
                    IssueError::TotalCap => (
                        TicketOutcome::ServerTicketLimit,
                        StatusCode::SERVICE_UNAVAILABLE,
                    ),
                };
                tracing::warn!(user = %access.user, peer = ?peer, reason = outcome.as_str(), "ticket refused");
                (
                    outcome,
                    (
                        status,
                        serde_json::json!({"error": outcome.as_str(), "message": e.to_string()}),
                    ),
                )
            }
        }
    }

    /// Whether an `/admin/*` request may proceed: with `auth.admin_key_sha256` set, it must
    /// present that key as a bearer credential (from anywhere); without, it must come from
    /// a loopback address.
    pub fn authorize_admin(
        &self,
        headers: &HeaderMap,
        peer: Option<SocketAddr>,
    ) -> Result<(), Answer> {
        let config = self.config();
        let refuse = |status: StatusCode, message: &str| {
            self.metrics.security.admin_refused.inc();
            tracing::warn!(peer = ?peer, "admin request refused");
            Err((
                status,
                serde_json::json!({"error": "admin_refused", "message": message}),
            ))
        };
        match &config.admin_key {
            None if peer.is_some_and(|a| a.ip().is_loopback()) => Ok(()),
            None => refuse(
                StatusCode::FORBIDDEN,
                "admin endpoints answer loopback clients only (set auth.admin_key_sha256 to allow others)",
            ),
            Some(expected) => {
                let presented = headers
                    .get(AUTHORIZATION)
                    .and_then(|v| v.to_str().ok())
                    .and_then(|v| v.trim().split_once(' '))
                    .filter(|(scheme, _)| scheme.eq_ignore_ascii_case("bearer"))
                    .map(|(_, key)| KeyDigest::of(key.trim()));
                match presented {
                    Some(d) if bool::from(d.0.ct_eq(&expected.0)) => Ok(()),
                    _ => refuse(
                        StatusCode::UNAUTHORIZED,
                        "admin endpoints need Authorization: Bearer <admin key>",
                    ),
                }
            }
        }
    }

    /// CORS headers for a cross-origin ticket request from an allow-listed origin.
    fn cors(&self, headers: &HeaderMap) -> Option<String> {
        let origin = headers.get(ORIGIN)?.to_str().ok()?;
        self.config()
            .origin
            .listed(origin)
            .then(|| origin.to_string())
    }
}

fn respond((status, body): Answer) -> HttpResponse {
    let mut r = HttpResponse::build(status);
    if status == StatusCode::UNAUTHORIZED {
        r.insert_header(("WWW-Authenticate", "Bearer realm=\"tickwire\""));
    }
    // Tickets are credentials: never cache them.
    r.insert_header(("Cache-Control", "no-store"));
    r.json(body)
}

/// `POST /auth/ticket`.
pub async fn ticket(req: HttpRequest, security: web::Data<Arc<Security>>) -> HttpResponse {
    let answer = security.ticket_request(req.headers(), req.peer_addr());
    let cors = security.cors(req.headers());
    let mut r = respond(answer);
    if let Some(origin) = cors {
        let h = r.headers_mut();
        h.insert(
            actix_http::header::ACCESS_CONTROL_ALLOW_ORIGIN,
            actix_http::header::HeaderValue::from_str(&origin).expect("was a header value"),
        );
        h.insert(
            actix_http::header::VARY,
            actix_http::header::HeaderValue::from_static("Origin"),
        );
    }
    r
}

/// `OPTIONS /auth/ticket`: the CORS preflight, answered for allow-listed origins only.
pub async fn ticket_preflight(
    req: HttpRequest,
    security: web::Data<Arc<Security>>,
) -> HttpResponse {
    match security.cors(req.headers()) {
        Some(origin) => HttpResponse::NoContent()
            .insert_header(("Access-Control-Allow-Origin", origin))
            .insert_header(("Access-Control-Allow-Methods", "POST"))
            .insert_header(("Access-Control-Allow-Headers", "Authorization"))
            .insert_header(("Access-Control-Max-Age", "600"))
            .insert_header(("Vary", "Origin"))
            .finish(),
        None => HttpResponse::Forbidden()
            .json(serde_json::json!({"error": "forbidden", "reason": "origin_not_allowed"})),
    }
}

/// `GET /auth/status`: whether this server wants tickets (for UIs deciding whether to ask
/// for a key).
pub async fn status(security: web::Data<Arc<Security>>) -> HttpResponse {
    let c = security.config();
    HttpResponse::Ok().json(serde_json::json!({
        "enabled": c.auth_enabled,
        "tokens": c.users.jwt_secret.is_some(),
        "ticket_endpoint": "/auth/ticket",
    }))
}

/// Registers the `/auth/*` routes. The app data must hold an `Arc<Security>`.
pub fn routes(cfg: &mut web::ServiceConfig) {
    cfg.route("/auth/ticket", web::post().to(ticket))
        .route(
            "/auth/ticket",
            web::method(actix_web::http::Method::OPTIONS).to(ticket_preflight),
        )
        .route("/auth/status", web::get().to(status));
}

/// The response for a refused admin request.
pub fn admin_refusal(answer: Answer) -> HttpResponse {
    respond(answer)
}
