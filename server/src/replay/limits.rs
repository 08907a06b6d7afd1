//! Concurrent replays per user and in total. A [`Permit`] is held for the life of a replay
//! (WebSocket or HTTP) and gives its slot back when dropped; it also keeps the
//! `tickwire_replay_sessions` gauge.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use crate::metrics::Metrics;

/// See the module documentation.
pub struct ReplayLimits {
    per_user: usize,
    total: usize,
    state: Mutex<(usize, HashMap<String, usize>)>,
    metrics: Arc<Metrics>,
}

/// A replay slot; released on drop.
pub struct Permit {
    limits: Arc<ReplayLimits>,
    user: String,
}

impl ReplayLimits {
    pub fn new(per_user: usize, total: usize, metrics: Arc<Metrics>) -> Arc<ReplayLimits> {
        Arc::new(ReplayLimits {
            per_user,
            total,
            state: Mutex::new((0, HashMap::new())),
            metrics,
        })
    }

    /// A slot for `user`, or why there is none.
    pub fn acquire(self: &Arc<Self>, user: &str) -> Result<Permit, String> {
        let mut g = self.state.lock().unwrap_or_else(|e| e.into_inner());
        let mine = g.1.get(user).copied().unwrap_or(0);
        if mine >= self.per_user {
            self.metrics.replays_refused.inc();
            return Err(format!(
                "at most {} concurrent replays per user ({user:?} has {mine})",
                self.per_user
            ));
        }
        if g.0 >= self.total {
            self.metrics.replays_refused.inc();
            return Err(format!(
                "the server runs its maximum of {} concurrent replays; try again later",
                self.total
            ));
        }
        g.0 += 1;
        *g.1.entry(user.to_string()).or_default() += 1;
        self.metrics.replay_sessions.inc();
        self.metrics.replays_started.inc();
        Ok(Permit {
            limits: self.clone(),
            user: user.to_string(),
        })
    }
}

impl Drop for Permit {
    fn drop(&mut self) {
        let mut g = self.limits.state.lock().unwrap_or_else(|e| e.into_inner());
        g.0 -= 1;
        if let Some(n) = g.1.get_mut(&self.user) {
            *n -= 1;
            if *n == 0 {
                g.1.remove(&self.user);
            }
        }
        self.limits.metrics.replay_sessions.dec();
    }
}
