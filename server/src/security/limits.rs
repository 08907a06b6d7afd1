//! Connection caps: in total, per client address, and per user.
//!
//! The counts are taken at the upgrade, before a session exists, and held by a
//! [`ConnectionGuard`] that the session keeps for its whole life: dropping it (the session
//! actor ending, for whatever reason) gives the slots back, so the counts cannot leak. One
//! mutex guards the three maps; it is taken once per connect and once per disconnect, never
//! on the data path.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::Arc;

use parking_lot::Mutex;

/// Connection caps; 0 means no cap.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ConnectionCaps {
    pub total: usize,
    pub per_ip: usize,
}

impl Default for ConnectionCaps {
    fn default() -> Self {
        ConnectionCaps {
            total: 50_000,
            per_ip: 1_000,
        }
    }
}

/// Which cap refused a connection.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CapHit {
    Total,
    PerIp,
    PerUser,
}

#[derive(Default)]
struct Counts {
    total: usize,
    per_ip: HashMap<IpAddr, usize>,
    per_user: HashMap<String, usize>,
}

/// The live counts (see the module documentation).
#[derive(Default)]
pub struct ConnectionCounter {
    counts: Mutex<Counts>,
}

/// Holds one connection's slots; releases them when dropped.
pub struct ConnectionGuard {
    counter: Arc<ConnectionCounter>,
    ip: Option<IpAddr>,
    user: Option<String>,
}

impl std::fmt::Debug for ConnectionGuard {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ConnectionGuard")
            .field("ip", &self.ip)
            .field("user", &self.user)
            .finish()
    }
}

impl ConnectionCounter {
    /// Takes a total and a per-address slot, or says which cap is full.
    pub fn acquire(
        self: &Arc<Self>,
        ip: Option<IpAddr>,
        caps: ConnectionCaps,
    ) -> Result<ConnectionGuard, CapHit> {
        let mut c = self.counts.lock();
        if caps.total > 0 && c.total >= caps.total {
            return Err(CapHit::Total);
        }
        if let Some(ip) = ip {
            let n = c.per_ip.get(&ip).copied().unwrap_or(0);
            if caps.per_ip > 0 && n >= caps.per_ip {
                return Err(CapHit::PerIp);
            }
            c.per_ip.insert(ip, n + 1);
        }
        c.total += 1;
        Ok(ConnectionGuard {
            counter: self.clone(),
            ip,
            user: None,
        })
    }

    /// Connections open now: total, and from `ip`.
    pub fn open(&self, ip: IpAddr) -> (usize, usize) {
        let c = self.counts.lock();
        (c.total, c.per_ip.get(&ip).copied().unwrap_or(0))
    }
}

impl ConnectionGuard {
    /// Adds the user's slot (`cap` 0: uncapped). On refusal the guard is kept as it was.
    pub fn add_user(&mut self, user: &str, cap: usize) -> Result<(), CapHit> {
        let mut c = self.counter.counts.lock();
        let n = c.per_user.get(user).copied().unwrap_or(0);
        if cap > 0 && n >= cap {
            return Err(CapHit::PerUser);
        }
        c.per_user.insert(user.to_string(), n + 1);
        drop(c);
        self.user = Some(user.to_string());
        Ok(())
    }
}

fn release<K: std::hash::Hash + Eq>(map: &mut HashMap<K, usize>, k: &K) {
    if let Some(n) = map.get_mut(k) {
        *n -= 1;
        if *n == 0 {
            map.remove(k);
        }
    }
}

impl Drop for ConnectionGuard {
    fn drop(&mut self) {
        let mut c = self.counter.counts.lock();
        c.total -= 1;
        if let Some(ip) = &self.ip {
            release(&mut c.per_ip, ip);
        }
        if let Some(u) = &self.user {
            release(&mut c.per_user, u);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn caps_hold_and_guards_give_slots_back() {
        let counter = Arc::new(ConnectionCounter::default());
        let caps = ConnectionCaps {
            total: 3,
            per_ip: 2,
        };
        let a: IpAddr = "10.0.0.1".parse().unwrap();
        let b: IpAddr = "10.0.0.2".parse().unwrap();
        let g1 = counter.acquire(Some(a), caps).unwrap();
        let mut g2 = counter.acquire(Some(a), caps).unwrap();
        assert_eq!(counter.acquire(Some(a), caps).unwrap_err(), CapHit::PerIp);
        let g3 = counter.acquire(Some(b), caps).unwrap();
        assert_eq!(counter.acquire(Some(b), caps).unwrap_err(), CapHit::Total);
        g2.add_user("alice", 1).unwrap();
        let mut g4 = {
            drop(g1);
            counter.acquire(Some(a), caps).unwrap()
        };
        assert_eq!(g4.add_user("alice", 1), Err(CapHit::PerUser));
        drop(g2);
        g4.add_user("alice", 1).unwrap();
        drop((g3, g4));
        assert_eq!(counter.open(a), (0, 0));
        assert!(counter.counts.lock().per_user.is_empty());
        let unlimited = ConnectionCaps {
            total: 0,
            per_ip: 0,
        };
        let many: Vec<_> = (0..10)
            .map(|_| counter.acquire(Some(a), unlimited).unwrap())
            .collect();
        assert_eq!(counter.open(a), (10, 10));
        drop(many);
    }
}
