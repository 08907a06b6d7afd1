//! Zero-copy framing and parsing of NASDAQ TotalView-ITCH 5.0.
//!
//! Input is the layout of NASDAQ's published sample files: each message is preceded by its
//! length as a 2-byte big-endian integer. [`Frames`] walks a byte slice (a buffer or a
//! memory-mapped file) and yields each message body as a sub-slice; [`parse`] reads the
//! fields straight out of that slice into a small [`Message`] (stock symbols stay borrowed),
//! so no message body is ever copied.
//!
//! Errors are per message: an unknown type or a body whose length does not match its type
//! is reported and skipped (the length prefix still frames the next message); only a frame
//! cut short by the end of the input stops the walk.

/// Fields common to every ITCH 5.0 message.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Header {
    /// Stock locate code: the day's dense index of the stock (0 for market-wide messages).
    pub locate: u16,
    pub tracking: u16,
    /// Nanoseconds since midnight.
    pub timestamp: u64,
}

/// Buy or sell indicator of an order.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ItchSide {
    Buy,
    Sell,
}

/// A parsed message; every variant borrows from the input.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Message<'a> {
    /// `S`: start/end of messages, system hours, market hours.
    SystemEvent { header: Header, code: u8 },
    /// `R`: a stock of the day and its locate code.
    StockDirectory {
        header: Header,
        stock: &'a [u8; 8],
        market_category: u8,
        round_lot_size: u32,
    },
    /// `A` and `F` (with market participant id).
    AddOrder {
        header: Header,
        order_ref: u64,
        side: ItchSide,
        shares: u32,
        stock: &'a [u8; 8],
        /// Price in 1/10,000 dollars.
        price: u32,
        mpid: Option<&'a [u8; 4]>,
    },
    /// `E`: part or all of a resting order traded at its limit price.
    OrderExecuted {
        header: Header,
        order_ref: u64,
        shares: u32,
        match_number: u64,
    },
    /// `C`: an execution at a price other than the order's limit.
    OrderExecutedWithPrice {
        header: Header,
        order_ref: u64,
        shares: u32,
        match_number: u64,
        /// `false` (`N`) means the execution must not be printed as a trade (avoids double
        /// counting, e.g. a cross already reported).
        printable: bool,
        price: u32,
    },
    /// `X`: part of an order cancelled.
    OrderCancel {
        header: Header,
        order_ref: u64,
        shares: u32,
    },
    /// `D`: the whole order removed.
    OrderDelete { header: Header, order_ref: u64 },
    /// `U`: cancel-replace: the original order leaves, a new one (same side) enters.
    OrderReplace {
        header: Header,
        original_ref: u64,
        new_ref: u64,
        shares: u32,
        price: u32,
    },
    /// `P`: an execution against a non-displayed order (no book change).
    Trade {
        header: Header,
        side: ItchSide,
        shares: u32,
        stock: &'a [u8; 8],
        price: u32,
        match_number: u64,
    },
    /// `Q`: a cross (opening, closing, halt) trade.
    CrossTrade {
        header: Header,
        shares: u64,
        stock: &'a [u8; 8],
        price: u32,
        match_number: u64,
        cross_type: u8,
    },
    /// `B`: a previously reported trade is broken.
    BrokenTrade { header: Header, match_number: u64 },
    /// A well-formed message of a type the book does not use (`H`, `Y`, `L`, `V`, `W`, `K`,
    /// `J`, `h`, `I`, `N`, `O`).
    Other { header: Header, kind: u8 },
}

impl Message<'_> {
    /// The message's common header.
    pub fn header(&self) -> Header {
        match *self {
            Message::SystemEvent { header, .. }
            | Message::StockDirectory { header, .. }
            | Message::AddOrder { header, .. }
            | Message::OrderExecuted { header, .. }
            | Message::OrderExecutedWithPrice { header, .. }
            | Message::OrderCancel { header, .. }
            | Message::OrderDelete { header, .. }
            | Message::OrderReplace { header, .. }
            | Message::Trade { header, .. }
            | Message::CrossTrade { header, .. }
            | Message::BrokenTrade { header, .. }
            | Message::Other { header, .. } => header,
        }
    }
}

/// Why a message was skipped.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum ItchError {
    #[error("empty message")]
    Empty,
    #[error("unknown message type {0:#04x}")]
    UnknownType(u8),
    #[error("message type {kind:?} must be {expected} bytes, got {got}")]
    BadLength {
        kind: char,
        expected: usize,
        got: usize,
    },
    #[error("invalid field value in message type {0:?}")]
    BadField(char),
}

/// The body length of each ITCH 5.0 message type, `None` for unknown types.
pub const fn message_len(kind: u8) -> Option<usize> {
    Some(match kind {
        b'S' => 12,
        b'R' => 39,
        b'H' => 25,
        b'Y' => 20,
        b'L' => 26,
        b'V' => 35,
        b'W' => 12,
        b'K' => 28,
        b'J' => 35,
        b'h' => 21,
        b'A' => 36,
        b'F' => 40,
        b'E' => 31,
        b'C' => 36,
        b'X' => 23,
        b'D' => 19,
        b'U' => 35,
        b'P' => 44,
        b'Q' => 40,
        b'B' => 19,
        b'I' => 50,
        b'N' => 20,
        b'O' => 48,
        _ => return None,
    })
}

#[inline(always)]
fn u16_at(b: &[u8], at: usize) -> u16 {
    u16::from_be_bytes([b[at], b[at + 1]])
}

#[inline(always)]
fn u32_at(b: &[u8], at: usize) -> u32 {
    u32::from_be_bytes([b[at], b[at + 1], b[at + 2], b[at + 3]])
}

#[inline(always)]
fn u48_at(b: &[u8], at: usize) -> u64 {
    u64::from_be_bytes([
        0,
        0,
        b[at],
        b[at + 1],
        b[at + 2],
        b[at + 3],
        b[at + 4],
        b[at + 5],
    ])
}

#[inline(always)]
fn u64_at(b: &[u8], at: usize) -> u64 {
    let mut a = [0u8; 8];
    a.copy_from_slice(&b[at..at + 8]);
    u64::from_be_bytes(a)
}

#[inline(always)]
fn arr8(b: &[u8], at: usize) -> &[u8; 8] {
    // The caller has checked the body length for its type.
    b[at..at + 8].try_into().expect("length checked")
}

#[inline(always)]
fn side_at(b: &[u8], at: usize, kind: u8) -> Result<ItchSide, ItchError> {
    match b[at] {
        b'B' => Ok(ItchSide::Buy),
        b'S' => Ok(ItchSide::Sell),
        _ => Err(ItchError::BadField(kind as char)),
    }
}

/// Parses one message body (without its length prefix).
#[inline]
pub fn parse(body: &[u8]) -> Result<Message<'_>, ItchError> {
    let kind = *body.first().ok_or(ItchError::Empty)?;
    let expected = message_len(kind).ok_or(ItchError::UnknownType(kind))?;
    if body.len() != expected {
        return Err(ItchError::BadLength {
            kind: kind as char,
            expected,
            got: body.len(),
        });
    }
    let b = &body[..11];
    let header = Header {
        locate: u16_at(b, 1),
        tracking: u16_at(b, 3),
        timestamp: u48_at(b, 5),
    };
    let b = body;
    // Each arm re-slices to its exact length: one bounds check, then the constant-offset
    // field reads need none.
    Ok(match kind {
        b'A' | b'F' => {
            let b = &b[..36];
            Message::AddOrder {
                header,
                order_ref: u64_at(b, 11),
                side: side_at(b, 19, kind)?,
                shares: u32_at(b, 20),
                stock: arr8(b, 24),
                price: u32_at(b, 32),
                mpid: if kind == b'F' {
                    Some(body[36..40].try_into().expect("length checked"))
                } else {
                    None
                },
            }
        }
        b'E' => {
            let b = &b[..31];
            Message::OrderExecuted {
                header,
                order_ref: u64_at(b, 11),
                shares: u32_at(b, 19),
                match_number: u64_at(b, 23),
            }
        }
        b'C' => {
            let b = &b[..36];
            Message::OrderExecutedWithPrice {
                header,
                order_ref: u64_at(b, 11),
                shares: u32_at(b, 19),
                match_number: u64_at(b, 23),
                printable: b[31] == b'Y',
                price: u32_at(b, 32),
            }
        }
        b'X' => {
            let b = &b[..23];
            Message::OrderCancel {
                header,
                order_ref: u64_at(b, 11),
                shares: u32_at(b, 19),
            }
        }
        b'D' => {
            let b = &b[..19];
            Message::OrderDelete {
                header,
                order_ref: u64_at(b, 11),
            }
        }
        b'U' => {
            let b = &b[..35];
            Message::OrderReplace {
                header,
                original_ref: u64_at(b, 11),
                new_ref: u64_at(b, 19),
                shares: u32_at(b, 27),
                price: u32_at(b, 31),
            }
        }
        b'P' => {
            let b = &b[..44];
            Message::Trade {
                header,
                side: side_at(b, 19, kind)?,
                shares: u32_at(b, 20),
                stock: arr8(b, 24),
                price: u32_at(b, 32),
                match_number: u64_at(b, 36),
            }
        }
        b'Q' => {
            let b = &b[..40];
            Message::CrossTrade {
                header,
                shares: u64_at(b, 11),
                stock: arr8(b, 19),
                price: u32_at(b, 27),
                match_number: u64_at(b, 31),
                cross_type: b[39],
            }
        }
        b'B' => {
            let b = &b[..19];
            Message::BrokenTrade {
                header,
                match_number: u64_at(b, 11),
            }
        }
        b'S' => {
            let b = &b[..12];
            Message::SystemEvent {
                header,
                code: b[11],
            }
        }
        b'R' => {
            let b = &b[..39];
            Message::StockDirectory {
                header,
                stock: arr8(b, 11),
                market_category: b[19],
                round_lot_size: u32_at(b, 21),
            }
        }
        _ => Message::Other { header, kind },
    })
}

/// A length-prefixed frame cut short by the end of the input.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("truncated frame at byte {offset}: needs {needed} bytes, {available} left")]
pub struct Truncated {
    pub offset: usize,
    pub needed: usize,
    pub available: usize,
}

/// One framed message: its byte offset (of the length prefix) and body.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Frame<'a> {
    pub offset: usize,
    pub body: &'a [u8],
}

/// Iterator over the frames of a length-prefixed ITCH stream. Ends after the last complete
/// frame; a truncated tail yields one `Err` and then ends.
#[derive(Debug, Clone)]
pub struct Frames<'a> {
    buf: &'a [u8],
    pos: usize,
}

impl<'a> Frames<'a> {
    /// Frames over `buf`.
    pub fn new(buf: &'a [u8]) -> Self {
        Frames { buf, pos: 0 }
    }
}

impl<'a> Iterator for Frames<'a> {
    type Item = Result<Frame<'a>, Truncated>;

    #[inline]
    fn next(&mut self) -> Option<Self::Item> {
        let rest = self.buf.get(self.pos..)?;
        if rest.is_empty() {
            return None;
        }
        let offset = self.pos;
        let truncated = |needed| {
            Some(Err(Truncated {
                offset,
                needed,
                available: rest.len(),
            }))
        };
        if rest.len() < 2 {
            self.pos = self.buf.len();
            return truncated(2);
        }
        let len = u16::from_be_bytes([rest[0], rest[1]]) as usize;
        let Some(body) = rest.get(2..2 + len) else {
            self.pos = self.buf.len();
            return truncated(2 + len);
        };
        self.pos += 2 + len;
        Some(Ok(Frame { offset, body }))
    }
}

/// A read-only memory map of an ITCH file: frame it with `Frames::new(&map)`.
pub fn map_file(path: impl AsRef<std::path::Path>) -> std::io::Result<memmap2::Mmap> {
    let file = std::fs::File::open(path)?;
    // SAFETY: the map is read-only; like any reader of a file, we assume nobody truncates it
    // while it is being read (that would raise SIGBUS, not undefined behaviour in Rust terms
    // beyond what memmap2 documents).
    unsafe { memmap2::Mmap::map(&file) }
}
