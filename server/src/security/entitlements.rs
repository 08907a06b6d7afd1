//! What one user may see: symbol patterns, channels, and connection and subscription caps.
//!
//! An [`Access`] is immutable and shared (`Arc`) by every session of its user; a reload
//! builds new ones and sends each changed user's sessions the new value (see
//! `security/mod.rs`), which they compare with what they hold
//! ([`Access::revocations`]). Checking a subscribe costs a pattern match per requested symbol,
//! on the request path only; market data never looks at entitlements.
//!
//! Patterns are globs over symbol names: `*` matches any run of characters (also none), `?`
//! exactly one; everything else matches itself, case-sensitively, as symbol names are.

use tickwire_engine::domain::{SymbolId, SymbolTable};
use tickwire_engine::tick::{Channel, ChannelSet};

use crate::protocol::{ErrorCode, RequestError, RequestId};

/// A symbol glob (`BTC-*`, `SYM00??`, `*`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Pattern(String);

impl Pattern {
    /// Parses a pattern: symbol characters (see
    /// [`is_valid_symbol_name`](tickwire_engine::domain::is_valid_symbol_name)) plus `*` and
    /// `?`, at most 64 bytes.
    pub fn parse(s: &str) -> Result<Pattern, String> {
        if s.is_empty() || s.len() > 64 {
            return Err(format!("pattern {s:?} must be 1 to 64 characters"));
        }
        if let Some(c) = s.chars().find(|c| {
            !(c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-' | '/' | ':' | '*' | '?'))
        }) {
            return Err(format!("pattern {s:?} has the character {c:?}; allowed: letters, digits, . _ - / : and the wildcards * ?"));
        }
        Ok(Pattern(s.to_string()))
    }

    /// The pattern as written.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// Whether `name` matches. Iterative with one backtrack point, so linear in practice and
    /// never exponential, whatever the pattern.
    pub fn matches(&self, name: &str) -> bool {
        let (p, n) = (self.0.as_bytes(), name.as_bytes());
        let (mut pi, mut ni) = (0, 0);
        let mut star: Option<(usize, usize)> = None;
        while ni < n.len() {
            match p.get(pi) {
                Some(b'*') => {
                    star = Some((pi, ni));
                    pi += 1;
                }
                Some(&c) if c == b'?' || c == n[ni] => {
                    pi += 1;
                    ni += 1;
                }
                _ => match star {
                    Some((sp, sn)) => {
                        pi = sp + 1;
                        ni = sn + 1;
                        star = Some((sp, sn + 1));
                    }
                    None => return false,
                },
            }
        }
        p[pi..].iter().all(|&c| c == b'*')
    }
}

/// One user's entitlements.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Access {
    /// The user's name (logged as the session span's `user`).
    pub user: String,
    /// Symbols the user may subscribe to (any pattern matching is enough).
    pub symbols: Vec<Pattern>,
    /// Channels the user may subscribe to.
    pub channels: ChannelSet,
    /// Concurrent connections of this user across the server; 0: no per-user cap.
    pub max_connections: usize,
    /// Symbols one session of this user may hold; 0: only the server's
    /// `session.max_symbols_per_session` applies.
    pub max_symbols: usize,
}

impl Access {
    /// Everything, uncapped: the access of every session when authentication is off.
    pub fn anonymous() -> Access {
        Access {
            user: "anonymous".into(),
            symbols: vec![Pattern("*".into())],
            channels: Channel::ALL.into_iter().collect(),
            max_connections: 0,
            max_symbols: 0,
        }
    }

    /// Whether the user may see `symbol` at all.
    pub fn allows_symbol(&self, symbol: &str) -> bool {
        self.symbols.iter().any(|p| p.matches(symbol))
    }

    /// The most symbols a session of this user may hold, given the server's own cap.
    pub fn symbol_cap(&self, server_cap: usize) -> usize {
        match self.max_symbols {
            0 => server_cap,
            n => n.min(server_cap),
        }
    }

    /// Checks a subscribe of `names` on `channels`: `not_entitled` naming every forbidden
    /// channel or symbol (nothing is applied then), or `limit_exceeded` when the session
    /// would hold more than its cap (`held_after`: symbols held if it succeeded).
    pub fn check_subscribe(
        &self,
        id: &Option<RequestId>,
        names: &[String],
        channels: ChannelSet,
        held_after: usize,
        server_cap: usize,
    ) -> Result<(), RequestError> {
        let forbidden_channels = channels.without(self.channels);
        if !forbidden_channels.is_empty() {
            let named: Vec<&str> = forbidden_channels.iter().map(Channel::as_str).collect();
            return Err(RequestError::new(
                id.clone(),
                ErrorCode::NotEntitled,
                format!(
                    "not entitled to channel(s) {} (user {:?})",
                    named.join(", "),
                    self.user
                ),
            ));
        }
        let forbidden: Vec<String> = names
            .iter()
            .filter(|n| !self.allows_symbol(n))
            .cloned()
            .collect();
        if !forbidden.is_empty() {
            let shown: Vec<&str> = forbidden.iter().take(5).map(String::as_str).collect();
            let more = if forbidden.len() > 5 { ", ..." } else { "" };
            let mut err = RequestError::new(
                id.clone(),
                ErrorCode::NotEntitled,
                format!(
                    "not entitled to symbol(s) {}{more} (user {:?})",
                    shown.join(", "),
                    self.user
                ),
            );
            err.symbols = forbidden;
            return Err(err);
        }
        let cap = self.symbol_cap(server_cap);
        if held_after > cap {
            return Err(RequestError::new(
                id.clone(),
                ErrorCode::LimitExceeded,
                format!("at most {cap} symbols per session (user {:?})", self.user),
            ));
        }
        Ok(())
    }

    /// What a session holding `held` must give up under these entitlements: per symbol, the
    /// channels to remove (all of them when the symbol is no longer allowed).
    pub fn revocations<'a>(
        &self,
        held: impl IntoIterator<Item = (&'a SymbolId, &'a ChannelSet)>,
        symbols: &SymbolTable,
    ) -> Vec<(SymbolId, ChannelSet)> {
        let mut out: Vec<(SymbolId, ChannelSet)> = held
            .into_iter()
            .filter_map(|(&id, &chans)| {
                let lose = if self.allows_symbol(&symbols.get(id).symbol) {
                    chans.without(self.channels)
                } else {
                    chans
                };
                (!lose.is_empty()).then_some((id, lose))
            })
            .collect();
        out.sort_by_key(|(id, _)| *id);
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn p(s: &str) -> Pattern {
        Pattern::parse(s).unwrap()
    }

    #[test]
    fn globs_match_as_documented() {
        assert!(p("*").matches("ANY"));
        assert!(p("*").matches(""));
        assert!(p("BTC-*").matches("BTC-USD"));
        assert!(p("BTC-*").matches("BTC-"));
        assert!(!p("BTC-*").matches("ETH-BTC"));
        assert!(p("SYM00*").matches("SYM0012"));
        assert!(!p("SYM00*").matches("SYM0100"));
        assert!(p("SYM00?1").matches("SYM0021"));
        assert!(!p("SYM00?1").matches("SYM001"));
        assert!(p("*/USD").matches("XMR/USD"));
        assert!(p("*-*-*").matches("a-b-c"));
        assert!(!p("*-*-*").matches("a-b"));
        assert!(!p("btc-*").matches("BTC-USD"));
        // A pathological pattern is still fast.
        let long = "a".repeat(10_000);
        assert!(!p("*a*a*a*a*a*a*a*a*b").matches(&long));
    }

    #[test]
    fn patterns_refuse_odd_characters() {
        assert!(Pattern::parse("").is_err());
        assert!(Pattern::parse("BTC USD").is_err());
        assert!(Pattern::parse("[A-Z]*").is_err());
        assert!(Pattern::parse(&"a".repeat(65)).is_err());
    }

    #[test]
    fn subscribe_checks_channels_then_symbols_then_caps() {
        let a = Access {
            user: "alice".into(),
            symbols: vec![p("SYM000*")],
            channels: [Channel::Quote, Channel::Trade].into_iter().collect(),
            max_connections: 0,
            max_symbols: 3,
        };
        let names = |v: &[&str]| v.iter().map(|s| s.to_string()).collect::<Vec<_>>();
        let qt: ChannelSet = [Channel::Quote].into_iter().collect();
        let book: ChannelSet = [Channel::Book, Channel::Quote].into_iter().collect();
        assert!(a
            .check_subscribe(&None, &names(&["SYM0001"]), qt, 1, 2000)
            .is_ok());
        let e = a
            .check_subscribe(&None, &names(&["SYM0001"]), book, 1, 2000)
            .unwrap_err();
        assert_eq!(e.code, ErrorCode::NotEntitled);
        assert!(e.message.contains("book") && !e.message.contains("quote"));
        let e = a
            .check_subscribe(&None, &names(&["SYM0001", "SYM0010"]), qt, 2, 2000)
            .unwrap_err();
        assert_eq!(e.code, ErrorCode::NotEntitled);
        assert_eq!(e.symbols, vec!["SYM0010".to_string()]);
        let e = a
            .check_subscribe(&None, &names(&["SYM0001"]), qt, 4, 2000)
            .unwrap_err();
        assert_eq!(e.code, ErrorCode::LimitExceeded);
        assert_eq!(a.symbol_cap(2), 2);
    }
}
