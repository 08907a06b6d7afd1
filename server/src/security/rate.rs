//! Per-session message rate limiting: a token bucket, and a second bucket for abuse.
//!
//! Every client frame except a close takes a token (requests, binary frames, pings and
//! pongs alike: each costs the server work). The bucket holds `burst` tokens and refills at
//! `per_second`. A message that finds the bucket empty is dropped unprocessed; at most one
//! `rate_limited` error per second tells the client so (the replies must not become a flood
//! of their own). Dropped messages fill the abuse counter, which drains at `per_second`
//! too; when it exceeds `close_after`, the client is not slipping over the limit now and
//! then but ignoring it, and the session is closed 1008 "rate limited".
//!
//! Time is passed in, so the arithmetic is tested without sleeping.

use std::time::{Duration, Instant};

/// Settings of the limiter.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct RateLimits {
    /// Sustained messages per second.
    pub per_second: f64,
    /// Messages accepted in a burst above the sustained rate.
    pub burst: u32,
    /// Dropped messages (net of the drain) after which the session is closed.
    pub close_after: u32,
}

impl Default for RateLimits {
    fn default() -> Self {
        RateLimits {
            per_second: 50.0,
            burst: 100,
            close_after: 500,
        }
    }
}

/// What to do with one message.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    /// Process it.
    Pass,
    /// Drop it; `reply`: send a `rate_limited` error this time.
    Drop { reply: bool },
    /// Close the session 1008.
    Close,
}

/// One session's limiter state.
#[derive(Debug, Clone)]
pub struct RateLimiter {
    limits: RateLimits,
    tokens: f64,
    abuse: f64,
    last: Instant,
    last_reply: Option<Instant>,
}

/// Minimum spacing of `rate_limited` replies.
pub const REPLY_EVERY: Duration = Duration::from_secs(1);

impl RateLimiter {
    pub fn new(limits: RateLimits, now: Instant) -> RateLimiter {
        RateLimiter {
            limits,
            tokens: limits.burst as f64,
            abuse: 0.0,
            last: now,
            last_reply: None,
        }
    }

    /// Accounts for one message arriving at `now`.
    pub fn check(&mut self, now: Instant) -> Verdict {
        let elapsed = now.saturating_duration_since(self.last).as_secs_f64();
        self.last = now.max(self.last);
        let refill = elapsed * self.limits.per_second;
        self.tokens = (self.tokens + refill).min(self.limits.burst as f64);
        self.abuse = (self.abuse - refill).max(0.0);
        if self.tokens >= 1.0 {
            self.tokens -= 1.0;
            return Verdict::Pass;
        }
        self.abuse += 1.0;
        if self.abuse > self.limits.close_after as f64 {
            return Verdict::Close;
        }
        let reply = self
            .last_reply
            .is_none_or(|t| now.saturating_duration_since(t) >= REPLY_EVERY);
        if reply {
            self.last_reply = Some(now);
        }
        Verdict::Drop { reply }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const LIMITS: RateLimits = RateLimits {
        per_second: 10.0,
        burst: 5,
        close_after: 20,
    };

    #[test]
    fn bursts_pass_then_the_rate_holds() {
        let t0 = Instant::now();
        let mut r = RateLimiter::new(LIMITS, t0);
        for _ in 0..5 {
            assert_eq!(r.check(t0), Verdict::Pass);
        }
        assert_eq!(r.check(t0), Verdict::Drop { reply: true });
        assert_eq!(r.check(t0), Verdict::Drop { reply: false });
        // 100 ms later one token is back.
        let t1 = t0 + Duration::from_millis(100);
        assert_eq!(r.check(t1), Verdict::Pass);
        // A client at the sustained rate is never refused.
        let mut t = t1;
        for _ in 0..1000 {
            t += Duration::from_millis(100);
            assert_eq!(r.check(t), Verdict::Pass);
        }
    }

    #[test]
    fn sustained_abuse_closes_and_occasional_excess_does_not() {
        let t0 = Instant::now();
        let mut r = RateLimiter::new(LIMITS, t0);
        // 2x the rate for 10 s: one drop per pass, drained by the refill.
        let mut t = t0;
        let mut closed = false;
        for _ in 0..200 {
            t += Duration::from_millis(50);
            closed |= r.check(t) == Verdict::Close;
        }
        assert!(!closed, "twice the rate in short bursts drains");
        // A flood: thousands at once.
        let mut verdicts = Vec::new();
        for _ in 0..100 {
            verdicts.push(r.check(t));
        }
        let replies = verdicts
            .iter()
            .filter(|v| **v == Verdict::Drop { reply: true })
            .count();
        assert!(replies <= 1, "replies are limited too: {replies}");
        assert_eq!(verdicts.last(), Some(&Verdict::Close));
    }
}
