//! Origin checks on the WebSocket upgrade.
//!
//! Browsers let any page open a WebSocket to any server and send the page's `Origin` with
//! the upgrade; the server is the only one who can refuse (cross-site WebSocket hijacking).
//! Non-browser clients send no `Origin` (or whatever they like), so the check protects users'
//! browsers, not the server: authentication does that.
//!
//! An upgrade passes when it has no `Origin` and `allow_missing` is set, when its origin is
//! the server's own (`allow_same_host`: the origin's host and port equal the request's
//! `Host`, which is how the bundled UI connects), or when it matches an entry of the
//! allow-list: `*`, an exact origin `https://app.example.com`, a subdomain wildcard
//! `https://*.example.com`, or any port `http://localhost:*`. Comparisons ignore case; a
//! scheme's default port may be written or left out. `null` (sandboxed frames, `file:`
//! pages) only matches an entry `null`.

/// One allow-list entry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum OriginPattern {
    Any,
    Null,
    Origin {
        scheme: String,
        /// Lowercase host; `*.example.com` is stored as `.example.com` with `subdomains`.
        host: String,
        subdomains: bool,
        /// `None`: any port.
        port: Option<u16>,
    },
}

/// A parsed `Origin` value: scheme, lowercase host, port (explicit or the scheme's default).
#[derive(Debug, Clone, PartialEq, Eq)]
struct Origin {
    scheme: String,
    host: String,
    port: u16,
}

fn default_port(scheme: &str) -> Option<u16> {
    match scheme {
        "http" => Some(80),
        "https" => Some(443),
        _ => None,
    }
}

/// Splits `host[:port]`, bracketed IPv6 included; `port` is `None` when absent.
fn split_authority(a: &str) -> Option<(&str, Option<&str>)> {
    if let Some(rest) = a.strip_prefix('[') {
        let end = rest.find(']')?;
        let host = &a[..end + 2];
        return match &rest[end + 1..] {
            "" => Some((host, None)),
            p => Some((host, Some(p.strip_prefix(':')?))),
        };
    }
    match a.rsplit_once(':') {
        Some((h, p)) => Some((h, Some(p))),
        None => Some((a, None)),
    }
}

fn valid_host(h: &str) -> bool {
    !h.is_empty()
        && h.len() <= 253
        && h.bytes().all(|b| {
            b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'[' | b']' | b':' | b'_')
        })
}

fn parse_origin(s: &str) -> Option<Origin> {
    let (scheme, rest) = s.split_once("://")?;
    let scheme = scheme.to_ascii_lowercase();
    if rest.contains('/') || rest.contains('@') {
        return None;
    }
    let (host, port) = split_authority(rest)?;
    if !valid_host(host) {
        return None;
    }
    let port = match port {
        Some(p) => p.parse().ok()?,
        None => default_port(&scheme)?,
    };
    Some(Origin {
        scheme,
        host: host.to_ascii_lowercase(),
        port,
    })
}

impl OriginPattern {
    /// Parses an allow-list entry.
    pub fn parse(s: &str) -> Result<OriginPattern, String> {
        match s {
            "*" => return Ok(OriginPattern::Any),
            "null" => return Ok(OriginPattern::Null),
            _ => {}
        }
        let bad = || {
            format!(
                "{s:?} is not an origin: expected scheme://host[:port] \
                 (e.g. https://app.example.com, https://*.example.com, http://localhost:*), \
                 `*` or `null`"
            )
        };
        let (scheme, rest) = s.split_once("://").ok_or_else(bad)?;
        let scheme = scheme.to_ascii_lowercase();
        if !matches!(scheme.as_str(), "http" | "https") || rest.contains('/') {
            return Err(bad());
        }
        let (host, port) = split_authority(rest).ok_or_else(bad)?;
        let (host, subdomains) = match host.strip_prefix("*.") {
            Some(h) => (h, true),
            None => (host, false),
        };
        if !valid_host(host) {
            return Err(bad());
        }
        let port = match port {
            Some("*") => None,
            Some(p) => Some(p.parse::<u16>().map_err(|_| bad())?),
            None => default_port(&scheme),
        };
        Ok(OriginPattern::Origin {
            scheme,
            host: host.to_ascii_lowercase(),
            subdomains,
            port,
        })
    }

    fn matches(&self, raw: &str, parsed: Option<&Origin>) -> bool {
        match self {
            OriginPattern::Any => true,
            OriginPattern::Null => raw == "null",
            OriginPattern::Origin {
                scheme,
                host,
                subdomains,
                port,
            } => {
                let Some(o) = parsed else { return false };
                let host_ok = if *subdomains {
                    o.host
                        .strip_suffix(host.as_str())
                        .is_some_and(|pre| pre.len() > 1 && pre.ends_with('.'))
                } else {
                    o.host == *host
                };
                o.scheme == *scheme && host_ok && port.is_none_or(|p| p == o.port)
            }
        }
    }
}

/// The origin rules (see the module documentation).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OriginPolicy {
    pub allowed: Vec<OriginPattern>,
    pub allow_same_host: bool,
    pub allow_missing: bool,
}

impl Default for OriginPolicy {
    fn default() -> Self {
        OriginPolicy {
            allowed: Vec::new(),
            allow_same_host: true,
            allow_missing: true,
        }
    }
}

/// Why an origin was refused (403).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum OriginRefusal {
    #[error("an Origin header is required")]
    Missing,
    #[error("origin not allowed")]
    NotAllowed,
}

impl OriginPolicy {
    /// Checks an upgrade's `Origin` against the request's `Host`.
    pub fn check(&self, origin: Option<&[u8]>, host: Option<&[u8]>) -> Result<(), OriginRefusal> {
        let Some(origin) = origin else {
            return if self.allow_missing {
                Ok(())
            } else {
                Err(OriginRefusal::Missing)
            };
        };
        let raw = std::str::from_utf8(origin).map_err(|_| OriginRefusal::NotAllowed)?;
        let raw = raw.trim();
        let parsed = parse_origin(raw);
        if self.allow_same_host {
            if let (Some(o), Some(host)) = (&parsed, host.and_then(|h| std::str::from_utf8(h).ok()))
            {
                if same_host(o, host) {
                    return Ok(());
                }
            }
        }
        if self.allowed.iter().any(|p| p.matches(raw, parsed.as_ref())) {
            Ok(())
        } else {
            Err(OriginRefusal::NotAllowed)
        }
    }

    /// Whether `origin` is on the allow-list proper (for CORS answers: the same-host rule
    /// needs no CORS).
    pub fn listed(&self, origin: &str) -> bool {
        let parsed = parse_origin(origin);
        self.allowed
            .iter()
            .any(|p| p.matches(origin, parsed.as_ref()))
    }
}

fn same_host(o: &Origin, host: &str) -> bool {
    let Some((h, p)) = split_authority(host.trim()) else {
        return false;
    };
    let port = match p {
        Some(p) => match p.parse::<u16>() {
            Ok(p) => p,
            Err(_) => return false,
        },
        None => match default_port(&o.scheme) {
            Some(p) => p,
            None => return false,
        },
    };
    h.eq_ignore_ascii_case(&o.host) && port == o.port
}

#[cfg(test)]
mod tests {
    use super::*;

    fn policy(allowed: &[&str]) -> OriginPolicy {
        OriginPolicy {
            allowed: allowed
                .iter()
                .map(|s| OriginPattern::parse(s).unwrap())
                .collect(),
            allow_same_host: true,
            allow_missing: true,
        }
    }

    fn check(p: &OriginPolicy, origin: Option<&str>, host: &str) -> bool {
        p.check(origin.map(str::as_bytes), Some(host.as_bytes()))
            .is_ok()
    }

    #[test]
    fn same_host_and_missing_pass_by_default() {
        let p = policy(&[]);
        assert!(check(&p, None, "x:1"));
        assert!(check(&p, Some("http://127.0.0.1:8080"), "127.0.0.1:8080"));
        assert!(check(&p, Some("HTTP://LOCALHOST:8080"), "localhost:8080"));
        assert!(check(
            &p,
            Some("https://md.example.com"),
            "md.example.com:443"
        ));
        assert!(check(&p, Some("http://[::1]:8080"), "[::1]:8080"));
        assert!(!check(&p, Some("http://127.0.0.1:8081"), "127.0.0.1:8080"));
        assert!(!check(&p, Some("https://evil.example"), "127.0.0.1:8080"));
        assert!(!check(&p, Some("null"), "127.0.0.1:8080"));
        assert!(!check(&p, Some("garbage"), "127.0.0.1:8080"));
    }

    #[test]
    fn allow_list_entries() {
        let p = policy(&[
            "https://app.example.com",
            "https://*.trading.example",
            "http://localhost:*",
        ]);
        let h = "md.example.com";
        assert!(check(&p, Some("https://app.example.com"), h));
        assert!(check(&p, Some("https://app.example.com:443"), h));
        assert!(!check(&p, Some("http://app.example.com"), h));
        assert!(!check(&p, Some("https://app.example.com:8443"), h));
        assert!(!check(&p, Some("https://app.example.com.evil"), h));
        assert!(check(&p, Some("https://eu.trading.example"), h));
        assert!(check(&p, Some("https://a.b.trading.example"), h));
        assert!(!check(&p, Some("https://trading.example"), h));
        assert!(!check(&p, Some("https://eviltrading.example"), h));
        assert!(check(&p, Some("http://localhost:3000"), h));
        assert!(!check(&p, Some("http://localhost.evil:3000"), h));
        assert!(policy(&["*"]).check(Some(b"anything"), None).is_ok());
        assert!(policy(&["null"]).check(Some(b"null"), None).is_ok());
    }

    #[test]
    fn strict_policy_needs_an_origin() {
        let mut p = policy(&[]);
        p.allow_missing = false;
        assert_eq!(p.check(None, None), Err(OriginRefusal::Missing));
    }

    #[test]
    fn bad_entries_are_refused() {
        for bad in [
            "app.example.com",
            "ftp://x",
            "https://x/path",
            "https://",
            "https://x:port",
            "https://x y",
        ] {
            assert!(OriginPattern::parse(bad).is_err(), "{bad}");
        }
    }
}
