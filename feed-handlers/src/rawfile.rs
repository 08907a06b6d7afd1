//! Reader of the recorded-feed line format (`shared/real-feeds/README.md`):
//!
//! ```text
//! <url> <-> <unix_seconds>                 connection opened
//! <url> <- <unix_seconds>: <payload>       message the client sent
//! <unix_seconds>: <payload>                message received from the exchange
//! <url> -> <unix_seconds>: <payload>       an HTTP response (REST snapshot)
//! ```
//!
//! Parsing is separate from reading so that a malformed line is an error *for that line*
//! ([`RawLineError`]) and the reader carries on. Payloads are handed out as `&mut [u8]`
//! because the JSON decoders parse in place. [`MergedReader`] interleaves several recordings
//! by timestamp, e.g. Binance's stream with the REST snapshots recorded beside it.

use std::fs::File;
use std::io::{self, BufRead, BufReader};
use std::path::Path;

use tickwire_engine::domain::decimal::parse_mantissa;
use tickwire_engine::domain::{Nanos, Scale};

/// What a line records.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RecordKind {
    /// A connection was opened (no payload).
    Open,
    /// The client sent the payload.
    Sent,
    /// The exchange sent the payload.
    Received,
    /// An HTTP response body.
    Http,
}

/// One parsed line. `url` is empty for [`RecordKind::Received`].
#[derive(Debug, PartialEq, Eq)]
pub struct Record<'a> {
    pub kind: RecordKind,
    pub url: &'a str,
    pub ts: Nanos,
    pub payload: &'a mut [u8],
}

/// Why a line is not in the recorded format.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RawLineError {
    #[error("line is not in the recording format")]
    Format,
    #[error("bad timestamp {0:?}")]
    Timestamp(String),
    #[error("URL is not UTF-8")]
    Url,
}

/// Parses one line (without its newline). Blank lines give `Ok(None)`.
pub fn parse_line(line: &mut [u8]) -> Result<Option<Record<'_>>, RawLineError> {
    let trimmed_len = line
        .iter()
        .rposition(|c| !c.is_ascii_whitespace())
        .map_or(0, |p| p + 1);
    let line = &mut line[..trimmed_len];
    if line.is_empty() {
        return Ok(None);
    }
    let first_space = line.iter().position(|&c| c == b' ');
    let first = &line[..first_space.unwrap_or(line.len())];
    if first.last() == Some(&b':') && first[0].is_ascii_digit() {
        // "<ts>: <payload>"
        let ts = parse_ts(&first[..first.len() - 1])?;
        let start = (first.len() + 1).min(line.len());
        return Ok(Some(Record {
            kind: RecordKind::Received,
            url: "",
            ts,
            payload: &mut line[start..],
        }));
    }
    let sp = first_space.ok_or(RawLineError::Format)?;
    let rest = &line[sp + 1..];
    let (kind, arrow_len) = if rest.starts_with(b"<-> ") {
        (RecordKind::Open, 4)
    } else if rest.starts_with(b"<- ") {
        (RecordKind::Sent, 3)
    } else if rest.starts_with(b"-> ") {
        (RecordKind::Http, 3)
    } else {
        return Err(RawLineError::Format);
    };
    let ts_start = sp + 1 + arrow_len;
    let (head, tail) = line.split_at_mut(ts_start);
    let url = std::str::from_utf8(&head[..sp]).map_err(|_| RawLineError::Url)?;
    if kind == RecordKind::Open {
        let ts = parse_ts(tail)?;
        return Ok(Some(Record {
            kind,
            url,
            ts,
            payload: &mut [],
        }));
    }
    let colon = tail
        .windows(2)
        .position(|w| w == b": ")
        .ok_or(RawLineError::Format)?;
    let ts = parse_ts(&tail[..colon])?;
    Ok(Some(Record {
        kind,
        url,
        ts,
        payload: &mut tail[colon + 2..],
    }))
}

fn parse_ts(s: &[u8]) -> Result<Nanos, RawLineError> {
    parse_mantissa(s, Scale::new(9))
        .map(Nanos)
        .map_err(|_| RawLineError::Timestamp(String::from_utf8_lossy(s).chars().take(40).collect()))
}

/// Reads lines of a recording, reusing one buffer, counting line numbers from 1.
pub struct RawReader<R> {
    inner: R,
    line_no: usize,
    buf: Vec<u8>,
}

impl RawReader<BufReader<File>> {
    /// Opens a recording.
    pub fn open(path: impl AsRef<Path>) -> io::Result<Self> {
        Ok(Self::new(BufReader::with_capacity(
            1 << 16,
            File::open(path)?,
        )))
    }
}

impl<R: BufRead> RawReader<R> {
    /// Reads from any buffered source.
    pub fn new(inner: R) -> Self {
        RawReader {
            inner,
            line_no: 0,
            buf: Vec::with_capacity(4096),
        }
    }

    /// The next raw line (without newline) and its number, or `None` at the end.
    pub fn next_line(&mut self) -> io::Result<Option<(usize, &mut Vec<u8>)>> {
        self.buf.clear();
        if self.inner.read_until(b'\n', &mut self.buf)? == 0 {
            return Ok(None);
        }
        if self.buf.last() == Some(&b'\n') {
            self.buf.pop();
        }
        self.line_no += 1;
        Ok(Some((self.line_no, &mut self.buf)))
    }
}

/// A line taken from one of several merged recordings.
#[derive(Debug)]
pub struct MergedLine {
    /// Index of the source in the list given to [`MergedReader::new`].
    pub source: usize,
    pub line_no: usize,
    pub bytes: Vec<u8>,
}

/// A source's next line with its timestamp, read ahead for the merge.
type Pending = Option<(Nanos, MergedLine)>;

/// Interleaves several recordings by line timestamp (stable: ties keep source order).
/// Lines without a readable timestamp are emitted as soon as they are reached, so that
/// [`parse_line`] reports them in place.
pub struct MergedReader<R> {
    sources: Vec<(RawReader<R>, Pending)>,
}

impl MergedReader<BufReader<File>> {
    /// Opens every path.
    pub fn open(paths: &[impl AsRef<Path>]) -> io::Result<Self> {
        let readers = paths
            .iter()
            .map(RawReader::open)
            .collect::<io::Result<Vec<_>>>()?;
        Self::new(readers)
    }
}

impl<R: BufRead> MergedReader<R> {
    /// Merges `readers`.
    pub fn new(readers: Vec<RawReader<R>>) -> io::Result<Self> {
        let mut m = MergedReader {
            sources: readers.into_iter().map(|r| (r, None)).collect(),
        };
        for i in 0..m.sources.len() {
            m.refill(i)?;
        }
        Ok(m)
    }

    fn refill(&mut self, i: usize) -> io::Result<()> {
        let (reader, slot) = &mut self.sources[i];
        *slot = match reader.next_line()? {
            None => None,
            Some((line_no, bytes)) => {
                let mut copy = bytes.clone();
                let ts = parse_line(&mut copy)
                    .ok()
                    .flatten()
                    .map_or(Nanos(i64::MIN), |r| r.ts);
                Some((
                    ts,
                    MergedLine {
                        source: i,
                        line_no,
                        bytes: std::mem::take(bytes),
                    },
                ))
            }
        };
        Ok(())
    }

    /// The earliest pending line of all sources.
    pub fn next_line(&mut self) -> io::Result<Option<MergedLine>> {
        let best = self
            .sources
            .iter()
            .enumerate()
            .filter_map(|(i, (_, slot))| slot.as_ref().map(|(ts, _)| (*ts, i)))
            .min();
        let Some((_, i)) = best else {
            return Ok(None);
        };
        let line = self.sources[i].1.take().map(|(_, l)| l);
        self.refill(i)?;
        Ok(line)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_every_line_kind() {
        let mut l = b"1633998512.0633569: {\"a\":1}".to_vec();
        let r = parse_line(&mut l).unwrap().unwrap();
        assert_eq!(r.kind, RecordKind::Received);
        assert_eq!(r.ts, Nanos(1_633_998_512_063_356_900));
        assert_eq!(r.payload, b"{\"a\":1}");

        let mut l = b"wss://x/y <-> 1618677816.8434298".to_vec();
        let r = parse_line(&mut l).unwrap().unwrap();
        assert_eq!((r.kind, r.url), (RecordKind::Open, "wss://x/y"));

        let mut l = b"wss://x <- 1618677817.020616: {\"type\":\"subscribe\"}".to_vec();
        let r = parse_line(&mut l).unwrap().unwrap();
        assert_eq!(
            (r.kind, &*r.payload),
            (RecordKind::Sent, &b"{\"type\":\"subscribe\"}"[..])
        );

        let mut l = b"https://h/d?symbol=A&limit=5 -> 1633998512.320639: {}".to_vec();
        let r = parse_line(&mut l).unwrap().unwrap();
        assert_eq!(
            (r.kind, r.url),
            (RecordKind::Http, "https://h/d?symbol=A&limit=5")
        );

        assert_eq!(parse_line(&mut b"  ".to_vec()), Ok(None));
        assert_eq!(
            parse_line(&mut b"garbage".to_vec()),
            Err(RawLineError::Format)
        );
        assert!(matches!(
            parse_line(&mut b"12x: {}".to_vec()),
            Err(RawLineError::Timestamp(_))
        ));
    }

    #[test]
    fn merges_by_timestamp() {
        let a = RawReader::new(&b"1.0: a\n3.0: c\n"[..]);
        let b = RawReader::new(&b"u -> 2.0: b\n"[..]);
        let mut m = MergedReader::new(vec![a, b]).unwrap();
        let mut order = Vec::new();
        while let Some(l) = m.next_line().unwrap() {
            order.push((l.source, l.line_no));
        }
        assert_eq!(order, vec![(0, 1), (1, 1), (0, 2)]);
    }
}
