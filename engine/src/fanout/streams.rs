//! Shared compression streams: one permessage-deflate window per distinct stream of
//! messages, not per client.
//!
//! Compressing each message on its own ([`crate::deflate::deflate_frame`]) lets one
//! compressed frame serve every client, but small market-data messages shrink little that
//! way: a ten-level book by about 2.5x, a quote by a third. A compressor that keeps its
//! window from one message to the next does several times better, because consecutive
//! messages of a stream repeat each other (symbols, field names, price prefixes). Doing that
//! per client would cost one compression per message per client and a window per
//! connection. This module does it per *stream* instead:
//!
//! * Clients that negotiated context takeover, do not batch, and have exactly the same
//!   subscriptions (symbols, channels, depth, encoding; no throttle) on the same worker
//!   receive exactly the same sequence of messages. They form a **group** with one
//!   [`StreamCompressor`]. Each message for the group is compressed once in that context
//!   and the same frame goes to every member: still one compression per message per group,
//!   and no state per connection.
//! * A client's inflater window is the concatenation of every *compressed* message it
//!   received. So while a client is a member, every compressed message it gets must come from
//!   its group, in order. Session replies (acks, pongs, errors) are sent uncompressed, which
//!   RFC 7692 allows and which leaves the window alone; subscription snapshots are sent while
//!   the client is not a member (the session leaves its group before it changes its
//!   subscriptions).
//! * Joining happens at a **sync point**: the group forgets its window before its next
//!   message, so that message references nothing a newcomer lacks. Every member, old or
//!   new, decodes from there.
//! * A member that falls behind (its outbox holds more than [`StreamConfig::demote_bytes`])
//!   cannot be conflated inside the group, since every frame depends on the previous ones.
//!   It is **demoted**: the group frames already queued stay (they are in order), and from
//!   the next message on it gets independent frames through its conflation slots like any
//!   other client. It rejoins, at a new sync point, once it has caught up.
//! * Groups are bounded ([`StreamConfig::max_groups`] per worker, each a deflate state of a
//!   few hundred KiB); a client that finds no room stays on independent frames, which are
//!   always correct.
//!
//! Everything here is owned by one worker's [`Router`](super::Router) and runs on its thread.

use std::cell::Cell;
use std::collections::HashMap;
use std::hash::{Hash, Hasher};
use std::rc::Rc;

use bytes::Bytes;

use super::router::{SessionId, SharedOutbox};
use crate::deflate::StreamCompressor;
use crate::domain::SymbolId;
use crate::tick::{ChannelSet, Encoding};

/// Settings of the shared streams of one worker.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct StreamConfig {
    /// Most groups (compressors) per worker; 0 turns shared streams off.
    pub max_groups: usize,
    /// zlib compression level of the group compressors (1..=9).
    pub level: u32,
    /// Queued bytes beyond which a member is demoted to independent frames.
    pub demote_bytes: usize,
}

impl Default for StreamConfig {
    fn default() -> Self {
        StreamConfig {
            max_groups: 64,
            level: 6,
            demote_bytes: 256 << 10,
        }
    }
}

/// Everything that determines the messages a session receives, in a canonical order: two
/// sessions with equal specs get the same messages.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct StreamSpec {
    /// The subprotocol's encoding of the messages (MessagePack or JSON) before compression.
    pub msgpack: bool,
    /// Per subscribed symbol, in ascending order: its channels and book depth.
    pub symbols: Vec<(SymbolId, ChannelSet, u8)>,
}

impl StreamSpec {
    fn key(&self) -> u64 {
        let mut h = std::hash::DefaultHasher::new();
        self.hash(&mut h);
        h.finish()
    }
}

/// A session's membership, shared by all of that session's router entries so that a change
/// is one write, whatever the number of symbols.
#[derive(Debug, Default)]
pub struct StreamRoute {
    group: Cell<Option<u32>>,
}

impl StreamRoute {
    /// The group the session belongs to now.
    #[inline]
    pub fn group(&self) -> Option<u32> {
        self.group.get()
    }
}

struct Session {
    route: Rc<StreamRoute>,
    outbox: SharedOutbox,
    spec: Option<Rc<StreamSpec>>,
}

struct Group {
    spec: Rc<StreamSpec>,
    key: u64,
    members: u32,
    compressor: StreamCompressor,
    /// A member joined: forget the window before the next message.
    needs_sync: bool,
    /// The frame made for the tick being dispatched, valid while `memo_epoch` matches.
    memo_epoch: u64,
    memo: Bytes,
}

/// Counters of one worker's shared streams.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct StreamStats {
    /// Groups existing now.
    pub groups: u64,
    /// Sessions in a group now.
    pub members: u64,
    /// Times a session joined a group.
    pub joins: u64,
    /// Times a member fell behind and went back to independent frames.
    pub demotions: u64,
    /// Messages compressed in a group context (once per group, whatever its size).
    pub frames: u64,
    /// Times a session found no room for a new group.
    pub pool_full: u64,
}

/// The shared streams of one worker. See the module documentation.
pub struct SharedStreams {
    config: StreamConfig,
    groups: Vec<Option<Group>>,
    free: Vec<u32>,
    by_key: HashMap<u64, Vec<u32>>,
    sessions: HashMap<SessionId, Session>,
    epoch: u64,
    stats: StreamStats,
}

impl SharedStreams {
    /// No groups yet.
    pub fn new(config: StreamConfig) -> Self {
        SharedStreams {
            config,
            groups: Vec::new(),
            free: Vec::new(),
            by_key: HashMap::new(),
            sessions: HashMap::new(),
            epoch: 0,
            stats: StreamStats::default(),
        }
    }

    /// The settings.
    pub fn config(&self) -> StreamConfig {
        self.config
    }

    /// Counters.
    pub fn stats(&self) -> StreamStats {
        self.stats
    }

    /// The route cell of `session`, created on first use; its router entries keep a clone.
    pub fn route(&mut self, session: SessionId, outbox: &SharedOutbox) -> Rc<StreamRoute> {
        self.sessions
            .entry(session)
            .or_insert_with(|| Session {
                route: Rc::new(StreamRoute::default()),
                outbox: outbox.clone(),
                spec: None,
            })
            .route
            .clone()
    }

    /// Sets what `session` receives from now on (`None`: it may not share a stream, e.g. it
    /// is throttled, batches, or negotiated no context takeover). It leaves its group and,
    /// with a spec, joins the group of that spec at a new sync point (creating it if there
    /// is room).
    pub fn set_spec(&mut self, session: SessionId, spec: Option<StreamSpec>) {
        self.leave(session);
        let spec = spec.filter(|s| !s.symbols.is_empty()).map(Rc::new);
        if let Some(s) = self.sessions.get_mut(&session) {
            s.spec = spec;
        }
        self.try_join(session);
    }

    /// Takes `session` out of its group (before it receives anything that is not part of
    /// the group's stream, such as the snapshots of a new subscription).
    pub fn leave(&mut self, session: SessionId) {
        let Some(s) = self.sessions.get(&session) else {
            return;
        };
        if let Some(g) = s.route.group.take() {
            self.release(g);
        }
    }

    /// Forgets `session` (it ended).
    pub fn remove(&mut self, session: SessionId) {
        self.leave(session);
        self.sessions.remove(&session);
    }

    /// Rejoins sessions that were demoted (or found no room) once their outbox is drained.
    /// The worker calls this periodically.
    pub fn maintain(&mut self) {
        let waiting: Vec<SessionId> = self
            .sessions
            .iter()
            .filter(|(_, s)| {
                s.spec.is_some() && s.route.group.get().is_none() && {
                    let ob = s.outbox.borrow();
                    ob.queued_bytes() == 0 && !ob.has_pending() && ob.closing().is_none()
                }
            })
            .map(|(id, _)| *id)
            .collect();
        for id in waiting {
            self.try_join(id);
        }
    }

    fn try_join(&mut self, session: SessionId) {
        let Some(s) = self.sessions.get(&session) else {
            return;
        };
        let Some(spec) = s.spec.clone() else {
            return;
        };
        if s.route.group.get().is_some() {
            return;
        }
        let key = spec.key();
        let existing = self.by_key.get(&key).and_then(|ids| {
            ids.iter().copied().find(|&g| {
                self.groups[g as usize]
                    .as_ref()
                    .is_some_and(|g| g.spec == spec)
            })
        });
        let g = match existing {
            Some(g) => g,
            None => {
                if self.stats.groups as usize >= self.config.max_groups {
                    self.stats.pool_full += 1;
                    return;
                }
                let group = Group {
                    spec: spec.clone(),
                    key,
                    members: 0,
                    compressor: StreamCompressor::new(self.config.level),
                    needs_sync: false,
                    memo_epoch: 0,
                    memo: Bytes::new(),
                };
                let g = match self.free.pop() {
                    Some(g) => {
                        self.groups[g as usize] = Some(group);
                        g
                    }
                    None => {
                        self.groups.push(Some(group));
                        (self.groups.len() - 1) as u32
                    }
                };
                self.by_key.entry(key).or_default().push(g);
                self.stats.groups += 1;
                g
            }
        };
        let group = self.groups[g as usize].as_mut().expect("live group");
        group.members += 1;
        group.needs_sync = true;
        self.stats.members += 1;
        self.stats.joins += 1;
        self.sessions[&session].route.group.set(Some(g));
    }

    fn release(&mut self, g: u32) {
        self.stats.members -= 1;
        let group = self.groups[g as usize].as_mut().expect("live group");
        group.members -= 1;
        if group.members > 0 {
            return;
        }
        let key = group.key;
        self.groups[g as usize] = None;
        self.free.push(g);
        self.stats.groups -= 1;
        if let Some(ids) = self.by_key.get_mut(&key) {
            ids.retain(|&x| x != g);
            if ids.is_empty() {
                self.by_key.remove(&key);
            }
        }
    }

    /// Starts the dispatch of a new tick: frames made for the previous one are not reused.
    #[inline]
    pub fn begin_tick(&mut self) {
        self.epoch += 1;
    }

    /// The group's compressed frame of the current tick, made from `plain` (the complete
    /// uncompressed frame) the first time a member asks.
    pub fn frame(&mut self, g: u32, plain: impl FnOnce() -> Bytes) -> Bytes {
        let group = self.groups[g as usize].as_mut().expect("live group");
        if group.memo_epoch != self.epoch {
            if group.needs_sync {
                group.compressor.sync();
                group.needs_sync = false;
            }
            group.memo = group.compressor.compress_frame(&plain());
            group.memo_epoch = self.epoch;
            self.stats.frames += 1;
        }
        group.memo.clone()
    }

    /// Demotes `route`'s session from group `g` when its outbox holds more than the
    /// configured bytes. Returns whether it did.
    #[inline]
    pub fn demote_if_behind(&mut self, route: &StreamRoute, g: u32, queued_bytes: usize) -> bool {
        if queued_bytes <= self.config.demote_bytes {
            return false;
        }
        self.demote(route, g);
        true
    }

    /// Takes `route`'s session out of group `g` now: from the next message on it gets
    /// independent frames. It rejoins through [`SharedStreams::maintain`].
    pub fn demote(&mut self, route: &StreamRoute, g: u32) {
        debug_assert_eq!(route.group.get(), Some(g));
        route.group.set(None);
        self.stats.demotions += 1;
        self.release(g);
    }

    /// Takes every session out of its group.
    pub fn leave_all(&mut self) {
        let ids: Vec<SessionId> = self.sessions.keys().copied().collect();
        for id in ids {
            self.leave(id);
        }
    }
}

/// The plain (uncompressed) variant of a session's encoding: what a group compresses.
pub fn plain(enc: Encoding) -> Encoding {
    Encoding {
        deflate: false,
        ..enc
    }
}
