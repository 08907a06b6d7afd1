//! Counters of the security subsystem: refused upgrades by reason, ticket requests by
//! outcome, rate-limited messages and entitlement revocations. Each event is one relaxed
//! atomic increment, on the connect or request path only.

use super::Counter;

/// Why an upgrade was refused before a session existed (the `reason` label of
/// `tickwire_upgrades_refused_total`; the `status` label is the HTTP status).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum UpgradeRefusal {
    TicketMissing,
    TicketMalformed,
    TicketUnknown,
    TicketExpired,
    TicketUsed,
    TicketWrongAddress,
    UserRevoked,
    Origin,
    UserConnections,
    IpConnections,
    TotalConnections,
}

impl UpgradeRefusal {
    pub const ALL: [UpgradeRefusal; 11] = [
        UpgradeRefusal::TicketMissing,
        UpgradeRefusal::TicketMalformed,
        UpgradeRefusal::TicketUnknown,
        UpgradeRefusal::TicketExpired,
        UpgradeRefusal::TicketUsed,
        UpgradeRefusal::TicketWrongAddress,
        UpgradeRefusal::UserRevoked,
        UpgradeRefusal::Origin,
        UpgradeRefusal::UserConnections,
        UpgradeRefusal::IpConnections,
        UpgradeRefusal::TotalConnections,
    ];

    /// The wire name, also the `reason` of the refusal's JSON body.
    pub const fn as_str(self) -> &'static str {
        match self {
            UpgradeRefusal::TicketMissing => "ticket_missing",
            UpgradeRefusal::TicketMalformed => "ticket_malformed",
            UpgradeRefusal::TicketUnknown => "ticket_unknown",
            UpgradeRefusal::TicketExpired => "ticket_expired",
            UpgradeRefusal::TicketUsed => "ticket_used",
            UpgradeRefusal::TicketWrongAddress => "ticket_wrong_address",
            UpgradeRefusal::UserRevoked => "user_revoked",
            UpgradeRefusal::Origin => "origin_not_allowed",
            UpgradeRefusal::UserConnections => "user_connection_limit",
            UpgradeRefusal::IpConnections => "ip_connection_limit",
            UpgradeRefusal::TotalConnections => "server_connection_limit",
        }
    }

    /// The HTTP status of the refusal.
    pub const fn status(self) -> u16 {
        match self {
            UpgradeRefusal::Origin => 403,
            UpgradeRefusal::UserConnections => 429,
            UpgradeRefusal::IpConnections | UpgradeRefusal::TotalConnections => 503,
            _ => 401,
        }
    }
}

/// The outcome of a `POST /auth/ticket` (the `outcome` label of
/// `tickwire_ticket_requests_total`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TicketOutcome {
    Issued,
    CredentialsMissing,
    CredentialsMalformed,
    CredentialsInvalid,
    TokenExpired,
    UserTicketLimit,
    ServerTicketLimit,
    AuthDisabled,
}

impl TicketOutcome {
    pub const ALL: [TicketOutcome; 8] = [
        TicketOutcome::Issued,
        TicketOutcome::CredentialsMissing,
        TicketOutcome::CredentialsMalformed,
        TicketOutcome::CredentialsInvalid,
        TicketOutcome::TokenExpired,
        TicketOutcome::UserTicketLimit,
        TicketOutcome::ServerTicketLimit,
        TicketOutcome::AuthDisabled,
    ];

    pub const fn as_str(self) -> &'static str {
        match self {
            TicketOutcome::Issued => "issued",
            TicketOutcome::CredentialsMissing => "credentials_missing",
            TicketOutcome::CredentialsMalformed => "credentials_malformed",
            TicketOutcome::CredentialsInvalid => "credentials_invalid",
            TicketOutcome::TokenExpired => "token_expired",
            TicketOutcome::UserTicketLimit => "user_ticket_limit",
            TicketOutcome::ServerTicketLimit => "server_ticket_limit",
            TicketOutcome::AuthDisabled => "auth_disabled",
        }
    }
}

/// See the module documentation.
#[derive(Debug, Default)]
pub struct SecurityCounters {
    /// Indexed by `UpgradeRefusal as usize`.
    pub upgrades_refused: [Counter; UpgradeRefusal::ALL.len()],
    /// Indexed by `TicketOutcome as usize`.
    pub ticket_requests: [Counter; TicketOutcome::ALL.len()],
    /// Client messages dropped by the per-session rate limit.
    pub rate_limited_messages: Counter,
    /// (session, symbol, channel) streams removed because entitlements changed.
    pub revoked_streams: Counter,
    /// Admin requests refused (no or wrong admin key, or not from loopback).
    pub admin_refused: Counter,
}

impl SecurityCounters {
    pub fn refused(&self, r: UpgradeRefusal) {
        self.upgrades_refused[r as usize].inc();
    }

    pub fn ticket(&self, o: TicketOutcome) {
        self.ticket_requests[o as usize].inc();
    }
}
