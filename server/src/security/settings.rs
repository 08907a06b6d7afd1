//! The security settings: their layout in the configuration file (`[auth]`,
//! `[[auth.users]]`, `[origin]`, `[limits]`), their validation (every error names its key),
//! and the [`SecurityConfig`] the server runs with.
//!
//! They live here rather than in `config/` so that the security subsystem owns its own
//! keys; `config/` only embeds the sections and calls [`validate`] and
//! [`SecurityConfig::from_sections`].

use std::sync::Arc;
use std::time::Duration;

use tickwire_engine::tick::{Channel, ChannelSet};

use super::entitlements::{Access, Pattern};
use super::limits::ConnectionCaps;
use super::origin::{OriginPattern, OriginPolicy};
use super::rate::RateLimits;
use super::tickets::TicketLimits;
use super::users::{KeyDigest, Secret, User, Users};

/// `[auth]`: ticket authentication.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct AuthSection {
    /// Require a ticket on every WebSocket upgrade. Off by default for local runs.
    pub enabled: bool,
    /// How long a ticket stays valid.
    pub ticket_ttl_ms: u64,
    /// Unused tickets held in total, and per user.
    pub max_tickets: usize,
    pub max_tickets_per_user: usize,
    /// Refuse a ticket presented from another address than the one it was issued to.
    pub bind_ticket_to_ip: bool,
    /// HS256 secret for signed tokens (at least 32 bytes); "" accepts API keys only.
    /// Better set through TICKWIRE_AUTH__JWT_SECRET than written in the file.
    pub jwt_secret: String,
    /// Seconds of clock skew tolerated on a token's `exp`.
    pub jwt_leeway_s: u64,
    /// SHA-256 (hex) of the key that `/admin/*` requests must present as
    /// `Authorization: Bearer`; "" keeps `/admin/*` loopback-only.
    pub admin_key_sha256: String,
    /// The users (`[[auth.users]]` tables).
    pub users: Vec<UserSection>,
}

/// `[[auth.users]]`: one user and its entitlements.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct UserSection {
    pub name: String,
    /// SHA-256 (hex) of the user's API key; "" for a user who only signs in with tokens.
    pub key_sha256: String,
    /// Symbol patterns the user may subscribe to (`*`, `BTC-*`, `SYM00??`).
    pub symbols: Vec<String>,
    /// Channels the user may subscribe to.
    pub channels: Vec<String>,
    /// Concurrent connections; 0: no per-user cap.
    pub max_connections: usize,
    /// Symbols per session; 0: only `session.max_symbols_per_session`.
    pub max_symbols: usize,
}

impl Default for UserSection {
    fn default() -> Self {
        UserSection {
            name: String::new(),
            key_sha256: String::new(),
            symbols: vec!["*".into()],
            channels: Channel::ALL
                .iter()
                .map(|c| c.as_str().to_string())
                .collect(),
            max_connections: 0,
            max_symbols: 0,
        }
    }
}

/// `[origin]`: which browser origins may open a WebSocket.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct OriginSection {
    /// Allowed origins: `https://app.example.com`, `https://*.example.com`,
    /// `http://localhost:*`, `*`, `null`.
    pub allowed: Vec<String>,
    /// Also allow the server's own origin (the Origin's host:port equals the Host header).
    pub allow_same_host: bool,
    /// Allow upgrades without an Origin header (non-browser clients).
    pub allow_missing: bool,
}

/// `[limits]`: rates, connection caps and timeouts against abuse.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct LimitsSection {
    /// Sustained client messages per second per session (token bucket rate).
    pub messages_per_second: f64,
    /// Messages a session may send in a burst above that.
    pub message_burst: u32,
    /// Dropped messages (net of the refill) before the session is closed 1008.
    pub rate_limit_close_after: u32,
    /// WebSocket connections in total, and from one client address; 0: no cap.
    pub max_connections: usize,
    pub max_connections_per_ip: usize,
    /// Time a client has to send its complete HTTP request head.
    pub handshake_timeout_ms: u64,
    /// A session with no subscription that sends no request for this long is closed 4002;
    /// 0: never.
    pub idle_timeout_ms: u64,
}

impl Default for AuthSection {
    fn default() -> Self {
        let c = SecurityConfig::default();
        AuthSection {
            enabled: false,
            ticket_ttl_ms: c.tickets.ttl.as_millis() as u64,
            max_tickets: c.tickets.max_total,
            max_tickets_per_user: c.tickets.max_per_user,
            bind_ticket_to_ip: c.bind_ticket_to_ip,
            jwt_secret: String::new(),
            jwt_leeway_s: c.users.jwt_leeway_s,
            admin_key_sha256: String::new(),
            users: Vec::new(),
        }
    }
}

impl Default for OriginSection {
    fn default() -> Self {
        let p = OriginPolicy::default();
        OriginSection {
            allowed: Vec::new(),
            allow_same_host: p.allow_same_host,
            allow_missing: p.allow_missing,
        }
    }
}

impl Default for LimitsSection {
    fn default() -> Self {
        let c = SecurityConfig::default();
        LimitsSection {
            messages_per_second: c.rate.per_second,
            message_burst: c.rate.burst,
            rate_limit_close_after: c.rate.close_after,
            max_connections: c.caps.total,
            max_connections_per_ip: c.caps.per_ip,
            handshake_timeout_ms: c.handshake_timeout.as_millis() as u64,
            idle_timeout_ms: c.idle_timeout.map_or(0, |d| d.as_millis() as u64),
        }
    }
}

/// The security settings the server runs with.
#[derive(Debug, Clone, PartialEq)]
pub struct SecurityConfig {
    pub auth_enabled: bool,
    pub users: Arc<Users>,
    pub tickets: TicketLimits,
    pub bind_ticket_to_ip: bool,
    pub admin_key: Option<KeyDigest>,
    pub origin: OriginPolicy,
    pub rate: RateLimits,
    pub caps: ConnectionCaps,
    pub handshake_timeout: Duration,
    pub idle_timeout: Option<Duration>,
}

impl Default for SecurityConfig {
    fn default() -> Self {
        SecurityConfig {
            auth_enabled: false,
            users: Arc::new(Users {
                users: Vec::new(),
                jwt_secret: None,
                jwt_leeway_s: 5,
            }),
            tickets: TicketLimits {
                ttl: Duration::from_secs(30),
                max_total: 10_000,
                max_per_user: 16,
            },
            bind_ticket_to_ip: true,
            admin_key: None,
            origin: OriginPolicy::default(),
            rate: RateLimits::default(),
            caps: ConnectionCaps::default(),
            handshake_timeout: Duration::from_secs(5),
            idle_timeout: Some(Duration::from_secs(60)),
        }
    }
}

/// A bad security setting: the key and what is wrong with it.
pub type KeyError = (String, String);

fn parse_channels(list: &[String]) -> Result<ChannelSet, String> {
    if list.is_empty() {
        return Err("must name at least one channel (quote, trade, book)".into());
    }
    list.iter()
        .map(|c| {
            Channel::parse(c)
                .ok_or_else(|| format!("unknown channel {c:?}; expected quote, trade or book"))
        })
        .collect()
}

fn user_name_ok(n: &str) -> bool {
    !n.is_empty()
        && n.len() <= 64
        && n.bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'-' | b'.' | b'@'))
}

/// Checks the sections; the error names the key (`auth.users[1].symbols`).
pub fn validate(
    auth: &AuthSection,
    origin: &OriginSection,
    limits: &LimitsSection,
) -> Result<(), KeyError> {
    SecurityConfig::from_sections(auth, origin, limits).map(|_| ())
}

impl SecurityConfig {
    /// Builds the runtime settings, validating as it goes.
    pub fn from_sections(
        auth: &AuthSection,
        origin: &OriginSection,
        limits: &LimitsSection,
    ) -> Result<SecurityConfig, KeyError> {
        let bad = |k: &str, m: String| (k.to_string(), m);
        if !(1..=600_000).contains(&auth.ticket_ttl_ms) {
            return Err(bad(
                "auth.ticket_ttl_ms",
                format!("{} is not in 1..=600000", auth.ticket_ttl_ms),
            ));
        }
        for (k, v) in [
            ("auth.max_tickets", auth.max_tickets),
            ("auth.max_tickets_per_user", auth.max_tickets_per_user),
        ] {
            if v == 0 {
                return Err(bad(k, "must be greater than 0".into()));
            }
        }
        let jwt_secret = match auth.jwt_secret.as_str() {
            "" => None,
            s if s.len() < 32 => {
                return Err(bad(
                    "auth.jwt_secret",
                    format!(
                    "must be at least 32 bytes (it is {}); generate one with: openssl rand -hex 32",
                    s.len()
                ),
                ))
            }
            s => Some(Secret(s.as_bytes().to_vec())),
        };
        if auth.jwt_leeway_s > 300 {
            return Err(bad(
                "auth.jwt_leeway_s",
                format!("{} is more than 300", auth.jwt_leeway_s),
            ));
        }
        let admin_key = match auth.admin_key_sha256.as_str() {
            "" => None,
            s => Some(KeyDigest::parse_hex(s).map_err(|m| bad("auth.admin_key_sha256", m))?),
        };
        if auth.enabled && auth.users.is_empty() {
            return Err(bad(
                "auth.users",
                "auth.enabled = true needs at least one [[auth.users]] entry".into(),
            ));
        }
        let mut users: Vec<User> = Vec::with_capacity(auth.users.len());
        for (i, u) in auth.users.iter().enumerate() {
            let key = |k: &str| format!("auth.users[{i}].{k}");
            if !user_name_ok(&u.name) {
                return Err(bad(
                    &key("name"),
                    format!(
                        "{:?} is not a user name (1 to 64 of letters, digits, _ - . @)",
                        u.name
                    ),
                ));
            }
            if users.iter().any(|o| o.access.user == u.name) {
                return Err(bad(
                    &key("name"),
                    format!("user {:?} is defined twice", u.name),
                ));
            }
            let digest = match u.key_sha256.as_str() {
                "" if jwt_secret.is_none() => {
                    return Err(bad(
                        &key("key_sha256"),
                        "a user needs a key (or auth.jwt_secret for signed tokens)".into(),
                    ))
                }
                "" => None,
                s => Some(KeyDigest::parse_hex(s).map_err(|m| bad(&key("key_sha256"), m))?),
            };
            if digest.is_some() && users.iter().any(|o| o.key == digest) {
                return Err(bad(
                    &key("key_sha256"),
                    format!("user {:?} has the same key as another user", u.name),
                ));
            }
            if u.symbols.is_empty() {
                return Err(bad(
                    &key("symbols"),
                    "must list at least one symbol pattern (\"*\" for all)".into(),
                ));
            }
            let symbols = u
                .symbols
                .iter()
                .map(|s| Pattern::parse(s))
                .collect::<Result<Vec<_>, _>>()
                .map_err(|m| bad(&key("symbols"), m))?;
            let channels = parse_channels(&u.channels).map_err(|m| bad(&key("channels"), m))?;
            users.push(User {
                key: digest,
                access: Arc::new(Access {
                    user: u.name.clone(),
                    symbols,
                    channels,
                    max_connections: u.max_connections,
                    max_symbols: u.max_symbols,
                }),
            });
        }
        let allowed = origin
            .allowed
            .iter()
            .map(|s| OriginPattern::parse(s))
            .collect::<Result<Vec<_>, _>>()
            .map_err(|m| bad("origin.allowed", m))?;
        let l = limits;
        if !(l.messages_per_second.is_finite() && l.messages_per_second > 0.0) {
            return Err(bad(
                "limits.messages_per_second",
                format!("{} is not a positive number", l.messages_per_second),
            ));
        }
        for (k, v) in [
            ("limits.message_burst", l.message_burst as u64),
            (
                "limits.rate_limit_close_after",
                l.rate_limit_close_after as u64,
            ),
            ("limits.handshake_timeout_ms", l.handshake_timeout_ms),
        ] {
            if v == 0 {
                return Err(bad(k, "must be greater than 0".into()));
            }
        }
        if l.handshake_timeout_ms > 600_000 {
            return Err(bad(
                "limits.handshake_timeout_ms",
                format!("{} is more than 600000", l.handshake_timeout_ms),
            ));
        }
        Ok(SecurityConfig {
            auth_enabled: auth.enabled,
            users: Arc::new(Users {
                users,
                jwt_secret,
                jwt_leeway_s: auth.jwt_leeway_s,
            }),
            tickets: TicketLimits {
                ttl: Duration::from_millis(auth.ticket_ttl_ms),
                max_total: auth.max_tickets,
                max_per_user: auth.max_tickets_per_user,
            },
            bind_ticket_to_ip: auth.bind_ticket_to_ip,
            admin_key,
            origin: OriginPolicy {
                allowed,
                allow_same_host: origin.allow_same_host,
                allow_missing: origin.allow_missing,
            },
            rate: RateLimits {
                per_second: l.messages_per_second,
                burst: l.message_burst,
                close_after: l.rate_limit_close_after,
            },
            caps: ConnectionCaps {
                total: l.max_connections,
                per_ip: l.max_connections_per_ip,
            },
            handshake_timeout: Duration::from_millis(l.handshake_timeout_ms),
            idle_timeout: (l.idle_timeout_ms > 0).then(|| Duration::from_millis(l.idle_timeout_ms)),
        })
    }
}

impl AuthSection {
    /// A copy safe to print (`tickwire config check`): the token secret is masked.
    pub fn redacted(&self) -> AuthSection {
        let mut a = self.clone();
        if !a.jwt_secret.is_empty() {
            a.jwt_secret = "<redacted>".into();
        }
        a
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_build() {
        let c = SecurityConfig::from_sections(
            &AuthSection::default(),
            &OriginSection::default(),
            &LimitsSection::default(),
        )
        .unwrap();
        assert_eq!(c, SecurityConfig::default());
    }

    #[test]
    fn errors_name_the_key() {
        let user = |f: &dyn Fn(&mut UserSection)| {
            let mut u = UserSection {
                name: "alice".into(),
                key_sha256: "a".repeat(64),
                ..UserSection::default()
            };
            f(&mut u);
            AuthSection {
                enabled: true,
                users: vec![u],
                ..AuthSection::default()
            }
        };
        let o = OriginSection::default();
        let l = LimitsSection::default();
        let key_of = |a: &AuthSection, o: &OriginSection, l: &LimitsSection| {
            validate(a, o, l).unwrap_err().0
        };
        let on = AuthSection {
            enabled: true,
            ..AuthSection::default()
        };
        assert_eq!(key_of(&on, &o, &l), "auth.users");
        assert_eq!(
            key_of(&user(&|u| u.name = "a b".into()), &o, &l),
            "auth.users[0].name"
        );
        assert_eq!(
            key_of(&user(&|u| u.key_sha256 = "xyz".into()), &o, &l),
            "auth.users[0].key_sha256"
        );
        assert_eq!(
            key_of(&user(&|u| u.channels = vec!["candles".into()]), &o, &l),
            "auth.users[0].channels"
        );
        assert_eq!(
            key_of(&user(&|u| u.symbols = vec!["BTC USD".into()]), &o, &l),
            "auth.users[0].symbols"
        );
        let bad_origin = OriginSection {
            allowed: vec!["example.com".into()],
            ..OriginSection::default()
        };
        assert_eq!(key_of(&user(&|_| {}), &bad_origin, &l), "origin.allowed");
        let bad_rate = LimitsSection {
            messages_per_second: 0.0,
            ..LimitsSection::default()
        };
        assert_eq!(
            key_of(&user(&|_| {}), &o, &bad_rate),
            "limits.messages_per_second"
        );
        assert!(validate(&user(&|_| {}), &o, &l).is_ok());
    }
}
