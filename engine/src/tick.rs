//! Ticks: what book actors publish to subscribers, after coalescing.
//!
//! A tick is built once per change and shared by reference with every subscriber. Quote,
//! trade and status ticks carry their WebSocket frame already encoded; a book tick carries the
//! levels and is encoded per requested depth by each server worker (see
//! [`crate::fanout::router`]).

use std::sync::Arc;

use bytes::Bytes;

use crate::book::{Level, TopOfBook};
use crate::domain::{Nanos, Price, Qty, Seq, Side, SymbolId};

/// A subscribable stream of a symbol.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Channel {
    /// Top of book changes.
    Quote,
    /// Trade prints.
    Trade,
    /// Order-book depth (full ladder at the subscriber's depth).
    Book,
}

impl Channel {
    /// Every channel, in wire order.
    pub const ALL: [Channel; 3] = [Channel::Quote, Channel::Trade, Channel::Book];

    /// The wire name.
    pub const fn as_str(self) -> &'static str {
        match self {
            Channel::Quote => "quote",
            Channel::Trade => "trade",
            Channel::Book => "book",
        }
    }

    /// Parses a wire name.
    pub fn parse(s: &str) -> Option<Channel> {
        match s {
            "quote" => Some(Channel::Quote),
            "trade" => Some(Channel::Trade),
            "book" => Some(Channel::Book),
            _ => None,
        }
    }

    /// This channel's bit in a [`ChannelSet`].
    pub const fn bit(self) -> u8 {
        1 << self as u8
    }
}

/// A small set of channels as a bitmask.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Hash)]
pub struct ChannelSet(pub u8);

impl ChannelSet {
    /// No channel.
    pub const EMPTY: ChannelSet = ChannelSet(0);

    /// Whether `c` is in the set.
    pub const fn contains(self, c: Channel) -> bool {
        self.0 & c.bit() != 0
    }

    /// Adds `c`.
    pub fn insert(&mut self, c: Channel) {
        self.0 |= c.bit();
    }

    /// The set without `other`'s members.
    #[must_use]
    pub const fn without(self, other: ChannelSet) -> ChannelSet {
        ChannelSet(self.0 & !other.0)
    }

    /// The union.
    #[must_use]
    pub const fn union(self, other: ChannelSet) -> ChannelSet {
        ChannelSet(self.0 | other.0)
    }

    /// Whether the set is empty.
    pub const fn is_empty(self) -> bool {
        self.0 == 0
    }

    /// Members in wire order.
    pub fn iter(self) -> impl Iterator<Item = Channel> {
        Channel::ALL.into_iter().filter(move |c| self.contains(*c))
    }
}

impl FromIterator<Channel> for ChannelSet {
    fn from_iter<I: IntoIterator<Item = Channel>>(iter: I) -> Self {
        let mut s = ChannelSet::EMPTY;
        for c in iter {
            s.insert(c);
        }
        s
    }
}

/// Feed state of a symbol, as told to clients in `status` messages.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FeedState {
    /// Data is flowing and the book is in sync with the venue.
    Live,
    /// The upstream is down or the book is resynchronizing; the last values may be old.
    Stale,
}

impl FeedState {
    /// The wire name.
    pub const fn as_str(self) -> &'static str {
        match self {
            FeedState::Live => "live",
            FeedState::Stale => "stale",
        }
    }
}

/// The top levels of a book at the moment of a tick, best first.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct BookLevels {
    pub bids: Vec<Level>,
    pub asks: Vec<Level>,
}

/// Sequence numbers and times stamped on every data tick.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TickHeader {
    pub symbol: SymbolId,
    /// Per-symbol sequence over all channels.
    pub seq: Seq,
    /// Per-(symbol, channel) sequence: consecutive within the channel unless conflated.
    pub chan_seq: Seq,
    pub ts: Nanos,
    pub recv_ts: Nanos,
}

/// The content of a tick.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TickBody {
    Quote(TopOfBook),
    Trade {
        price: Price,
        qty: Qty,
        aggressor: Option<Side>,
    },
    Book(BookLevels),
    Status {
        state: FeedState,
        reason: Arc<str>,
    },
}

/// How a session wants its frames: JSON or MessagePack, compressed or not.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Hash)]
pub struct Encoding {
    pub msgpack: bool,
    pub deflate: bool,
}

impl Encoding {
    /// Plain JSON text frames.
    pub const JSON: Encoding = Encoding {
        msgpack: false,
        deflate: false,
    };
    /// Number of distinct encodings.
    pub const COUNT: usize = 4;

    /// A dense index for per-encoding tables.
    pub const fn index(self) -> usize {
        (self.msgpack as usize) << 1 | self.deflate as usize
    }

    /// The encoding with index `i`.
    pub const fn from_index(i: usize) -> Encoding {
        Encoding {
            msgpack: i & 2 != 0,
            deflate: i & 1 != 0,
        }
    }
}

/// A published, immutable update of one symbol.
#[derive(Debug)]
pub struct Tick {
    pub header: TickHeader,
    pub body: TickBody,
    /// The encoded WebSocket frame per [`Encoding::index`]; empty where no session needed it
    /// when the tick was published, and always empty for book ticks (the router encodes
    /// those per depth).
    pub frames: [Bytes; Encoding::COUNT],
}

impl Tick {
    /// The frame for `enc`, if it was encoded at publication.
    #[inline]
    pub fn frame(&self, enc: Encoding) -> Option<&Bytes> {
        let f = &self.frames[enc.index()];
        (!f.is_empty()).then_some(f)
    }

    /// The plain JSON frame (empty for book ticks).
    pub fn json(&self) -> &Bytes {
        &self.frames[0]
    }
}

impl TickBody {
    /// Whether this is a book ladder (encoded per subscriber depth).
    pub fn is_book(&self) -> bool {
        matches!(self, TickBody::Book(_))
    }
}

impl Tick {
    /// The channel this tick belongs to; `None` for status ticks (sent to every subscriber
    /// of the symbol).
    pub fn channel(&self) -> Option<Channel> {
        match self.body {
            TickBody::Quote(_) => Some(Channel::Quote),
            TickBody::Trade { .. } => Some(Channel::Trade),
            TickBody::Book(_) => Some(Channel::Book),
            TickBody::Status { .. } => None,
        }
    }
}
