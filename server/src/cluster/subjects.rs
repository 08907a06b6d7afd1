//! NATS subject names of the cluster, and the escaping that lets any symbol be a token.
//!
//! | subject | what |
//! |---|---|
//! | `<prefix>.<venue>.<symbol>.<channel>` | ticks: channel `quote`, `trade`, `book`, `status`, and `snap` (periodic snapshots) |
//! | `<prefix>.snap.<venue>.<symbol>` | request/reply: the symbol's snapshot, from the active engine |
//! | `<prefix>.ctl.instruments` | request/reply: the instrument list (JSON) |
//! | `<prefix>.ctl.heartbeat` | the engines' heartbeats (JSON), several per second |
//!
//! `<prefix>` is `md` by default (`cluster.subject_prefix`). A gateway subscribes to
//! `<prefix>.<venue>.<symbol>.*`, one subscription per symbol its clients want, so it receives
//! that symbol's channels in the order the engine published them.
//!
//! NATS subject tokens cannot hold `.`, `*`, `>` or white space, and symbols like `XMR/USD`
//! or `BTC.X` exist, so venue and symbol names are escaped: ASCII letters, digits, `-` and `_`
//! stay as they are, every other byte becomes `%` and two upper-case hex digits (`XMR/USD` →
//! `XMR%2FUSD`, `BTC.X` → `BTC%2EX`). The mapping is one to one and reversible. The venue
//! names `snap` and `ctl` are reserved.

/// Default first token of every subject.
pub const DEFAULT_PREFIX: &str = "md";

/// Venue names that would collide with the request subjects.
pub const RESERVED_VENUES: [&str; 2] = ["snap", "ctl"];

/// Escapes a name into one NATS subject token (see the module documentation).
pub fn escape(name: &str) -> String {
    let mut out = String::with_capacity(name.len() + 4);
    for b in name.bytes() {
        if b.is_ascii_alphanumeric() || b == b'-' || b == b'_' {
            out.push(b as char);
        } else {
            out.push('%');
            out.push(char::from(HEX[(b >> 4) as usize]));
            out.push(char::from(HEX[(b & 0xf) as usize]));
        }
    }
    out
}

const HEX: &[u8; 16] = b"0123456789ABCDEF";

/// Reverses [`escape`]; `None` for a token [`escape`] cannot have produced.
pub fn unescape(token: &str) -> Option<String> {
    let mut out = Vec::with_capacity(token.len());
    let mut bytes = token.bytes();
    while let Some(b) = bytes.next() {
        match b {
            b'%' => {
                let hi = hex_value(bytes.next()?)?;
                let lo = hex_value(bytes.next()?)?;
                out.push(hi << 4 | lo);
            }
            b if b.is_ascii_alphanumeric() || b == b'-' || b == b'_' => out.push(b),
            _ => return None,
        }
    }
    String::from_utf8(out).ok()
}

fn hex_value(c: u8) -> Option<u8> {
    match c {
        b'0'..=b'9' => Some(c - b'0'),
        b'A'..=b'F' => Some(c - b'A' + 10),
        _ => None,
    }
}

/// The subjects of one cluster (one prefix).
#[derive(Debug, Clone)]
pub struct Subjects {
    prefix: String,
}

/// What a tick subject carries, its last token.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stream {
    Quote,
    Trade,
    Book,
    Status,
    /// A periodic snapshot (quote + book + status).
    Snap,
}

impl Stream {
    /// The subject token.
    pub const fn token(self) -> &'static str {
        match self {
            Stream::Quote => "quote",
            Stream::Trade => "trade",
            Stream::Book => "book",
            Stream::Status => "status",
            Stream::Snap => "snap",
        }
    }
}

impl Subjects {
    /// Subjects under `prefix` (itself a valid token, e.g. `md`).
    pub fn new(prefix: &str) -> Self {
        Subjects {
            prefix: prefix.to_string(),
        }
    }

    /// The first token.
    pub fn prefix(&self) -> &str {
        &self.prefix
    }

    /// The subject prefix of one symbol's ticks, `md.<venue>.<symbol>` (escaped); append
    /// `.<stream>` with [`Subjects::tick`] or `.*` to subscribe.
    pub fn symbol_base(&self, venue: &str, symbol: &str) -> String {
        format!("{}.{}.{}", self.prefix, escape(venue), escape(symbol))
    }

    /// `md.<venue>.<symbol>.<stream>`.
    pub fn tick(&self, base: &str, stream: Stream) -> String {
        format!("{base}.{}", stream.token())
    }

    /// `md.<venue>.<symbol>.*`: every stream of one symbol, in publication order.
    pub fn symbol_wildcard(&self, venue: &str, symbol: &str) -> String {
        format!("{}.*", self.symbol_base(venue, symbol))
    }

    /// `md.snap.<venue>.<symbol>`: where a symbol's snapshot is requested.
    pub fn snapshot_request(&self, venue: &str, symbol: &str) -> String {
        format!("{}.snap.{}.{}", self.prefix, escape(venue), escape(symbol))
    }

    /// `md.snap.>`: every snapshot request (the active engine's subscription).
    pub fn snapshot_requests(&self) -> String {
        format!("{}.snap.>", self.prefix)
    }

    /// `md.ctl.instruments`.
    pub fn instruments(&self) -> String {
        format!("{}.ctl.instruments", self.prefix)
    }

    /// `md.ctl.heartbeat`.
    pub fn heartbeat(&self) -> String {
        format!("{}.ctl.heartbeat", self.prefix)
    }

    /// `(venue, symbol)` of a snapshot request subject, unescaped.
    pub fn parse_snapshot_request(&self, subject: &str) -> Option<(String, String)> {
        let rest = subject.strip_prefix(&self.prefix)?.strip_prefix(".snap.")?;
        let (venue, symbol) = rest.split_once('.')?;
        Some((unescape(venue)?, unescape(symbol)?))
    }
}

/// Whether `prefix` can be the first subject token.
pub fn is_valid_prefix(prefix: &str) -> bool {
    !prefix.is_empty() && escape(prefix) == prefix
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn escapes_what_subjects_cannot_carry_and_round_trips() {
        for (name, token) in [
            ("SYM0001", "SYM0001"),
            ("BTC-USD", "BTC-USD"),
            ("XMR/USD", "XMR%2FUSD"),
            ("BTC.X", "BTC%2EX"),
            ("a*b>c d", "a%2Ab%3Ec%20d"),
            ("ETH:PERP", "ETH%3APERP"),
            ("100%", "100%25"),
            ("under_score", "under_score"),
        ] {
            assert_eq!(escape(name), token);
            assert!(!token.contains(['.', '*', '>', ' ', '/']));
            assert_eq!(unescape(token).as_deref(), Some(name));
        }
    }

    #[test]
    fn refuses_tokens_escape_cannot_make() {
        for bad in ["a.b", "%2", "%zz", "%2f", "a b", "x*"] {
            assert_eq!(unescape(bad), None, "{bad}");
        }
    }

    #[test]
    fn subjects_have_the_documented_shape() {
        let s = Subjects::new("md");
        let base = s.symbol_base("kraken", "XMR/USD");
        assert_eq!(base, "md.kraken.XMR%2FUSD");
        assert_eq!(s.tick(&base, Stream::Quote), "md.kraken.XMR%2FUSD.quote");
        assert_eq!(
            s.symbol_wildcard("kraken", "XMR/USD"),
            "md.kraken.XMR%2FUSD.*"
        );
        let req = s.snapshot_request("kraken", "XMR/USD");
        assert_eq!(req, "md.snap.kraken.XMR%2FUSD");
        assert_eq!(
            s.parse_snapshot_request(&req),
            Some(("kraken".into(), "XMR/USD".into()))
        );
        assert_eq!(s.parse_snapshot_request("md.ctl.instruments"), None);
        assert!(is_valid_prefix("md") && !is_valid_prefix("m.d") && !is_valid_prefix(""));
    }
}
