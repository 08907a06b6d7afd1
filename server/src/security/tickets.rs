//! Upgrade tickets: short-lived, single-use, bound to a user.
//!
//! Browsers cannot put an `Authorization` header on a WebSocket upgrade, so a client trades
//! its credentials for a ticket over HTTPS (`POST /auth/ticket`) and presents the ticket as
//! `/ws?ticket=...`. A ticket is 256 random bits (the OS generator, `getrandom`) in base64url
//! without padding: exactly 43 characters. A guess therefore never succeeds, and a ticket
//! seen in a log or a proxy's access log is worthless once used or 30 s old.
//!
//! The store keeps only the SHA-256 digest of each ticket, never the ticket itself, so a
//! memory dump holds no usable tickets and the map's lookup timing says nothing about
//! ticket bytes. It is bounded twice: a total cap (minting cannot exhaust memory) and a
//! per-user cap (one leaked key cannot crowd out every other user). Redeemed and expired
//! entries are kept until one more TTL has passed, so that a replay is answered "used"
//! and a late ticket "expired" rather than "unknown", then purged.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
use parking_lot::Mutex;
use sha2::{Digest, Sha256};

use super::entitlements::Access;

/// Characters of an encoded ticket (32 bytes in base64url without padding).
pub const TICKET_LEN: usize = 43;

/// Why a ticket string is refused. Every case answers 401; the wire name (`as_str`) goes
/// into the refusal's JSON body.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum TicketError {
    #[error("no ticket: get one with POST /auth/ticket and connect to /ws?ticket=...")]
    Missing,
    #[error("malformed ticket: not a ticket this server issued")]
    Malformed,
    #[error("unknown ticket: not issued by this server (or long expired)")]
    Unknown,
    #[error("ticket expired: tickets are valid for a short time; get a new one")]
    Expired,
    #[error("ticket already used: tickets are single-use; get a new one")]
    Used,
    #[error("ticket was issued to another address")]
    WrongAddress,
}

impl TicketError {
    /// The `reason` of the 401 body.
    pub const fn as_str(self) -> &'static str {
        match self {
            TicketError::Missing => "ticket_missing",
            TicketError::Malformed => "ticket_malformed",
            TicketError::Unknown => "ticket_unknown",
            TicketError::Expired => "ticket_expired",
            TicketError::Used => "ticket_used",
            TicketError::WrongAddress => "ticket_wrong_address",
        }
    }
}

/// Decodes a presented ticket into its 32 bytes. Accepts exactly what [`TicketStore::issue`]
/// produces: 43 characters of the base64url alphabet, canonical (the last character's unused
/// bits are zero). Anything else is [`TicketError::Malformed`]; an empty string is
/// [`TicketError::Missing`].
pub fn parse_ticket(s: &str) -> Result<[u8; 32], TicketError> {
    if s.is_empty() {
        return Err(TicketError::Missing);
    }
    if s.len() != TICKET_LEN {
        return Err(TicketError::Malformed);
    }
    // The decoder refuses non-alphabet bytes, padding and non-canonical trailing bits.
    let bytes = URL_SAFE_NO_PAD
        .decode(s.as_bytes())
        .map_err(|_| TicketError::Malformed)?;
    bytes.try_into().map_err(|_| TicketError::Malformed)
}

/// The `ticket` parameter of a query string (`a=1&ticket=...`), percent-decoding nothing:
/// a ticket's alphabet needs no escaping, so an escaped one is malformed. A repeated
/// `ticket` parameter is malformed too (which one would count is ambiguous).
pub fn ticket_from_query(query: &str) -> Result<&str, TicketError> {
    let mut found = None;
    for pair in query.split('&') {
        let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
        if k == "ticket" {
            if found.is_some() {
                return Err(TicketError::Malformed);
            }
            found = Some(v);
        }
    }
    found.ok_or(TicketError::Missing)
}

/// A redeemed ticket: who it was issued to.
#[derive(Debug, Clone, PartialEq)]
pub struct Redeemed {
    pub access: Arc<Access>,
    pub issued_to: IpAddr,
}

/// Why no ticket was issued.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum IssueError {
    #[error("too many unused tickets for this user; use or let expire the ones issued")]
    UserCap,
    #[error("too many unused tickets on this server; try again shortly")]
    TotalCap,
}

struct Entry {
    user: String,
    access: Arc<Access>,
    issued_to: IpAddr,
    expires: Instant,
    used: bool,
}

/// Settings of a [`TicketStore`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TicketLimits {
    pub ttl: Duration,
    pub max_total: usize,
    pub max_per_user: usize,
}

/// See the module documentation.
pub struct TicketStore {
    inner: Mutex<Inner>,
}

struct Inner {
    limits: TicketLimits,
    entries: HashMap<[u8; 32], Entry>,
    /// Live (unused, unexpired) tickets per user.
    live_per_user: HashMap<String, usize>,
    last_purge: Instant,
}

const PURGE_EVERY: Duration = Duration::from_secs(1);

fn digest(ticket: &[u8; 32]) -> [u8; 32] {
    Sha256::digest(ticket).into()
}

impl TicketStore {
    pub fn new(limits: TicketLimits) -> TicketStore {
        TicketStore {
            inner: Mutex::new(Inner {
                limits,
                entries: HashMap::new(),
                live_per_user: HashMap::new(),
                last_purge: Instant::now(),
            }),
        }
    }

    /// New limits (a reload); tickets already issued keep their expiry.
    pub fn set_limits(&self, limits: TicketLimits) {
        self.inner.lock().limits = limits;
    }

    /// The current limits.
    pub fn limits(&self) -> TicketLimits {
        self.inner.lock().limits
    }

    /// Mints a ticket for `access`'s user, requested from `peer`.
    pub fn issue(
        &self,
        access: Arc<Access>,
        peer: IpAddr,
        now: Instant,
    ) -> Result<String, IssueError> {
        let mut raw = [0u8; 32];
        // The OS generator does not fail on the platforms we build for; if it ever does,
        // refusing to serve is the only safe answer.
        getrandom::fill(&mut raw).expect("the operating system's random generator failed");
        let mut inner = self.inner.lock();
        let limits = inner.limits;
        let live = |inner: &Inner| inner.live_per_user.get(&access.user).copied().unwrap_or(0);
        // Purging walks the whole map: at most once a second, or when a cap is reached.
        if now.duration_since(inner.last_purge) >= PURGE_EVERY
            || live(&inner) >= limits.max_per_user
            || inner.entries.len() >= limits.max_total
        {
            inner.purge(now);
        }
        if live(&inner) >= limits.max_per_user {
            return Err(IssueError::UserCap);
        }
        if inner.entries.len() >= limits.max_total {
            return Err(IssueError::TotalCap);
        }
        let user = access.user.clone();
        *inner.live_per_user.entry(user.clone()).or_insert(0) += 1;
        inner.entries.insert(
            digest(&raw),
            Entry {
                user,
                access,
                issued_to: peer,
                expires: now + limits.ttl,
                used: false,
            },
        );
        Ok(URL_SAFE_NO_PAD.encode(raw))
    }

    /// Redeems a presented ticket: once, before its expiry. `bind_to` is the upgrade's
    /// address when tickets are bound to the requesting address. A ticket presented from
    /// the wrong address is consumed all the same (whoever holds it, it has leaked).
    pub fn redeem(
        &self,
        presented: &str,
        bind_to: Option<IpAddr>,
        now: Instant,
    ) -> Result<Redeemed, TicketError> {
        let raw = parse_ticket(presented)?;
        let key = digest(&raw);
        let mut inner = self.inner.lock();
        let Inner {
            entries,
            live_per_user,
            ..
        } = &mut *inner;
        let entry = entries.get_mut(&key).ok_or(TicketError::Unknown)?;
        if entry.used {
            return Err(TicketError::Used);
        }
        if now >= entry.expires {
            return Err(TicketError::Expired);
        }
        entry.used = true;
        if let Some(n) = live_per_user.get_mut(&entry.user) {
            *n = n.saturating_sub(1);
        }
        if bind_to.is_some_and(|ip| ip != entry.issued_to) {
            return Err(TicketError::WrongAddress);
        }
        Ok(Redeemed {
            access: entry.access.clone(),
            issued_to: entry.issued_to,
        })
    }

    /// Entries held (live, used or recently expired).
    pub fn len(&self) -> usize {
        self.inner.lock().entries.len()
    }

    /// Whether the store holds nothing.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

impl Inner {
    /// Drops entries past one more TTL after their expiry; recounts live tickets.
    fn purge(&mut self, now: Instant) {
        self.last_purge = now;
        let ttl = self.limits.ttl;
        let live = &mut self.live_per_user;
        self.entries.retain(|_, e| {
            if !e.used && now >= e.expires {
                // Expired unused: no longer counts against the user.
                e.used = true;
                if let Some(n) = live.get_mut(&e.user) {
                    *n = n.saturating_sub(1);
                }
            }
            now < e.expires + ttl
        });
        live.retain(|_, n| *n > 0);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn store(max_total: usize, max_per_user: usize) -> TicketStore {
        TicketStore::new(TicketLimits {
            ttl: Duration::from_secs(30),
            max_total,
            max_per_user,
        })
    }

    fn user(name: &str) -> Arc<Access> {
        let mut a = Access::anonymous();
        a.user = name.into();
        Arc::new(a)
    }

    const HERE: IpAddr = IpAddr::V4(std::net::Ipv4Addr::LOCALHOST);

    #[test]
    fn a_ticket_is_good_once_and_only_before_expiry() {
        let s = store(100, 10);
        let t0 = Instant::now();
        let t = s.issue(user("alice"), HERE, t0).unwrap();
        assert_eq!(t.len(), TICKET_LEN);
        let r = s.redeem(&t, Some(HERE), t0).unwrap();
        assert_eq!(r.access.user, "alice");
        assert_eq!(s.redeem(&t, Some(HERE), t0), Err(TicketError::Used));
        let late = s.issue(user("alice"), HERE, t0).unwrap();
        assert_eq!(
            s.redeem(&late, None, t0 + Duration::from_secs(30))
                .unwrap_err(),
            TicketError::Expired
        );
        // After one more TTL the entries are gone: "unknown".
        let _ = s.issue(user("bob"), HERE, t0 + Duration::from_secs(61));
        assert_eq!(
            s.redeem(&t, None, t0 + Duration::from_secs(61))
                .unwrap_err(),
            TicketError::Unknown
        );
        assert_eq!(s.len(), 1);
    }

    #[test]
    fn wrong_address_consumes_the_ticket() {
        let s = store(100, 10);
        let now = Instant::now();
        let t = s.issue(user("alice"), HERE, now).unwrap();
        let other: IpAddr = "127.0.0.9".parse().unwrap();
        assert_eq!(
            s.redeem(&t, Some(other), now).unwrap_err(),
            TicketError::WrongAddress
        );
        assert_eq!(
            s.redeem(&t, Some(HERE), now).unwrap_err(),
            TicketError::Used
        );
        let t = s.issue(user("alice"), HERE, now).unwrap();
        assert!(
            s.redeem(&t, None, now).is_ok(),
            "unbound tickets ignore the address"
        );
    }

    #[test]
    fn caps_bound_the_store() {
        let s = store(3, 2);
        let now = Instant::now();
        s.issue(user("a"), HERE, now).unwrap();
        let t = s.issue(user("a"), HERE, now).unwrap();
        assert_eq!(s.issue(user("a"), HERE, now), Err(IssueError::UserCap));
        // Redeeming frees the user's slot but the entry stays (to answer replays).
        s.redeem(&t, None, now).unwrap();
        s.issue(user("a"), HERE, now).unwrap();
        assert_eq!(s.issue(user("b"), HERE, now), Err(IssueError::TotalCap));
        // Expired and purged entries make room.
        let later = now + Duration::from_secs(61);
        s.issue(user("b"), HERE, later).unwrap();
        assert_eq!(s.len(), 1);
    }

    #[test]
    fn only_canonical_tickets_parse() {
        let s = store(10, 10);
        let t = s.issue(user("a"), HERE, Instant::now()).unwrap();
        assert!(parse_ticket(&t).is_ok());
        assert_eq!(parse_ticket(""), Err(TicketError::Missing));
        assert_eq!(parse_ticket(&t[..42]), Err(TicketError::Malformed));
        assert_eq!(parse_ticket(&format!("{t}A")), Err(TicketError::Malformed));
        let mut bad = t.clone().into_bytes();
        bad[5] = b'+';
        assert_eq!(
            parse_ticket(std::str::from_utf8(&bad).unwrap()),
            Err(TicketError::Malformed)
        );
        // The last character carries 4 unused bits: 'B' (000001) is not canonical.
        let noncanonical = format!("{}B", &"A".repeat(42));
        assert_eq!(parse_ticket(&noncanonical), Err(TicketError::Malformed));
        assert!(parse_ticket(&"A".repeat(43)).is_ok());
    }

    #[test]
    fn query_parameter_extraction() {
        assert_eq!(ticket_from_query("ticket=abc"), Ok("abc"));
        assert_eq!(ticket_from_query("x=1&ticket=abc&y"), Ok("abc"));
        assert_eq!(ticket_from_query(""), Err(TicketError::Missing));
        assert_eq!(ticket_from_query("tickets=abc"), Err(TicketError::Missing));
        assert_eq!(ticket_from_query("ticket"), Ok(""));
        assert_eq!(
            ticket_from_query("ticket=a&ticket=b"),
            Err(TicketError::Malformed)
        );
    }
}
