//! Lossless conversion between the `real-feeds` text line format and recordings.
//!
//! The line format (see `../shared/real-feeds/README.md`) is one message per line:
//!
//! ```text
//! <url> <-> <unix_seconds>                 connection opened      -> RecordKind::Opened
//! <url> <- <unix_seconds>: <payload>       message the client sent -> RecordKind::Sent
//! <unix_seconds>: <payload>                message received        -> RecordKind::Received
//! <url> -> <unix_seconds>: <payload>       an HTTP response        -> RecordKind::HttpResponse
//! <url> >-< <unix_seconds>                 connection closed       -> RecordKind::Closed (extension)
//! ```
//!
//! Each distinct URL becomes a stream (WebSocket for `<->`/`<-`, HTTP for `->`); a received
//! line belongs to the most recently opened connection (or to an unnamed stream when no
//! connection was opened yet). Timestamps are parsed as exact decimals into ns (no float on
//! the way), and written back as seconds with the fraction's trailing zeros trimmed, which is
//! how the source files spell them, so [`recording_to_raw`] reproduces the source byte for
//! byte except for blank lines, which carry nothing and are dropped. Fractions longer than
//! nine digits are rejected rather than silently rounded.

use std::collections::HashMap;
use std::io::{BufRead, Write};
use std::path::Path;

use super::{
    Header, Reader, RecordKind, RecordingError, StreamId, StreamKind, Writer, WriterOptions,
    WriterSummary,
};

/// One parsed line of the text format.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RawLine<'a> {
    /// The URL, for every kind but `Received`.
    pub url: Option<&'a str>,
    /// Direction.
    pub kind: RecordKind,
    /// Timestamp, ns since the epoch.
    pub ts: i64,
    /// Payload bytes (usually empty for `Opened` and `Closed`).
    pub payload: &'a [u8],
}

/// Parses `unix_seconds` (`"1618677816.8434298"`) exactly into ns.
pub fn parse_seconds(s: &str) -> Result<i64, String> {
    let (int, frac) = match s.split_once('.') {
        Some((i, f)) => (i, f),
        None => (s, ""),
    };
    let digits = |d: &str| !d.is_empty() && d.bytes().all(|b| b.is_ascii_digit());
    if !digits(int) || !(frac.is_empty() && !s.contains('.') || digits(frac)) {
        return Err(format!("bad timestamp {s:?}"));
    }
    if frac.len() > 9 {
        return Err(format!("timestamp {s:?} is more precise than 1 ns"));
    }
    let secs: i64 = int
        .parse()
        .map_err(|_| format!("timestamp {s:?} out of range"))?;
    let mut ns: i64 = 0;
    for b in frac.bytes().chain(std::iter::repeat(b'0')).take(9) {
        ns = ns * 10 + i64::from(b - b'0');
    }
    secs.checked_mul(1_000_000_000)
        .and_then(|v| v.checked_add(ns))
        .ok_or_else(|| format!("timestamp {s:?} out of range"))
}

/// Formats ns as `unix_seconds` the way the source files do: fraction with trailing zeros
/// trimmed, at least one digit.
pub fn format_seconds(ts: i64, out: &mut Vec<u8>) {
    let secs = ts.div_euclid(1_000_000_000);
    let frac = ts.rem_euclid(1_000_000_000);
    let _ = write!(out, "{secs}.");
    let mut digits = format!("{frac:09}");
    while digits.len() > 1 && digits.ends_with('0') {
        digits.pop();
    }
    out.extend_from_slice(digits.as_bytes());
}

/// Parses one line (without its `\n`). `Ok(None)` for a blank line.
pub fn parse_line(line: &[u8]) -> Result<Option<RawLine<'_>>, String> {
    if line.iter().all(|b| b.is_ascii_whitespace()) {
        return Ok(None);
    }
    // Received: "<ts>: <payload>" (the line starts with a digit; URLs never do).
    if line[0].is_ascii_digit() {
        let colon = find(line, b": ").ok_or("received line without ': '")?;
        let ts = parse_seconds(utf8(&line[..colon])?)?;
        return Ok(Some(RawLine {
            url: None,
            kind: RecordKind::Received,
            ts,
            payload: &line[colon + 2..],
        }));
    }
    let sp = find(line, b" ").ok_or("line has no URL separator")?;
    let url = utf8(&line[..sp])?;
    let rest = &line[sp + 1..];
    let (kind, rest) = if let Some(r) = rest.strip_prefix(b"<-> ") {
        (RecordKind::Opened, r)
    } else if let Some(r) = rest.strip_prefix(b"<- ") {
        (RecordKind::Sent, r)
    } else if let Some(r) = rest.strip_prefix(b"-> ") {
        (RecordKind::HttpResponse, r)
    } else if let Some(r) = rest.strip_prefix(b">-< ") {
        (RecordKind::Closed, r)
    } else {
        return Err("unknown direction (expected <->, <-, -> or >-<)".into());
    };
    let bare = matches!(kind, RecordKind::Opened | RecordKind::Closed);
    if bare && find(rest, b": ").is_none() {
        let ts = parse_seconds(utf8(rest)?)?;
        return Ok(Some(RawLine {
            url: Some(url),
            kind,
            ts,
            payload: &[],
        }));
    }
    let colon = find(rest, b": ").ok_or("line without ': ' after the timestamp")?;
    let ts = parse_seconds(utf8(&rest[..colon])?)?;
    Ok(Some(RawLine {
        url: Some(url),
        kind,
        ts,
        payload: &rest[colon + 2..],
    }))
}

/// Formats one record as a line (with its `\n`). `url` is ignored for `Received`.
/// `Closed` has no line form in the source format and is written as `<url> >-< <ts>`; an
/// `Opened` or `Closed` record with a payload gets `: <payload>` appended (also an extension),
/// so every record survives a trip through text and back.
pub fn format_line(url: &str, kind: RecordKind, ts: i64, payload: &[u8], out: &mut Vec<u8>) {
    let arrow: &[u8] = match kind {
        RecordKind::Received => b"",
        RecordKind::Sent => b" <- ",
        RecordKind::HttpResponse => b" -> ",
        RecordKind::Opened => b" <-> ",
        RecordKind::Closed => b" >-< ",
    };
    if kind != RecordKind::Received {
        out.extend_from_slice(url.as_bytes());
        out.extend_from_slice(arrow);
    }
    format_seconds(ts, out);
    if !matches!(kind, RecordKind::Opened | RecordKind::Closed) || !payload.is_empty() {
        out.extend_from_slice(b": ");
        out.extend_from_slice(payload);
    }
    out.push(b'\n');
}

fn utf8(b: &[u8]) -> Result<&str, String> {
    std::str::from_utf8(b).map_err(|_| "non-UTF-8 URL or timestamp".to_string())
}

fn find(h: &[u8], n: &[u8]) -> Option<usize> {
    h.windows(n.len()).position(|w| w == n)
}

/// What [`raw_to_recording`] converted.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ConvertSummary {
    /// Lines turned into records.
    pub records: u64,
    /// Blank lines skipped.
    pub blank_lines: u64,
    /// The writer's summary.
    pub writer: WriterSummary,
}

/// Converts text lines from `input` into a recording at `out`. `header.start_ns` is replaced
/// by the first line's timestamp when it is 0.
pub fn raw_to_recording<R: BufRead>(
    mut input: R,
    out: impl AsRef<Path>,
    mut header: Header,
    opts: WriterOptions,
) -> Result<ConvertSummary, RecordingError> {
    let mut line = Vec::new();
    let mut lineno = 0u64;
    let mut writer: Option<Writer> = None;
    let mut streams: HashMap<(String, StreamKind), StreamId> = HashMap::new();
    let mut current: Option<StreamId> = None;
    let mut records = 0;
    let mut blank_lines = 0;
    let out = out.as_ref();
    loop {
        line.clear();
        if input.read_until(b'\n', &mut line)? == 0 {
            break;
        }
        lineno += 1;
        if line.last() == Some(&b'\n') {
            line.pop();
        }
        let parsed = parse_line(&line).map_err(|reason| RecordingError::Parse {
            line: lineno,
            reason,
        })?;
        let Some(l) = parsed else {
            blank_lines += 1;
            continue;
        };
        let w = match &mut writer {
            Some(w) => w,
            None => {
                if header.start_ns == 0 {
                    header.start_ns = l.ts;
                }
                writer.insert(Writer::create(out, &header, opts.clone())?)
            }
        };
        let (url, skind) = match (l.kind, l.url) {
            (RecordKind::HttpResponse, Some(u)) => (u, StreamKind::Http),
            (_, Some(u)) => (u, StreamKind::WebSocket),
            (_, None) => ("", StreamKind::Other),
        };
        let stream = if l.kind == RecordKind::Received {
            match current {
                Some(s) => s,
                None => stream_for(w, &mut streams, l.ts, url, skind)?,
            }
        } else {
            stream_for(w, &mut streams, l.ts, url, skind)?
        };
        if l.kind == RecordKind::Opened {
            current = Some(stream);
        }
        w.append(l.ts, stream, l.kind, l.payload)?;
        records += 1;
    }
    let writer = match writer {
        Some(w) => w,
        None => Writer::create(out, &header, opts)?,
    };
    Ok(ConvertSummary {
        records,
        blank_lines,
        writer: writer.finish()?,
    })
}

fn stream_for(
    w: &mut Writer,
    streams: &mut HashMap<(String, StreamKind), StreamId>,
    ts: i64,
    url: &str,
    kind: StreamKind,
) -> Result<StreamId, RecordingError> {
    if let Some(&id) = streams.get(&(url.to_string(), kind)) {
        return Ok(id);
    }
    let id = w.add_stream(ts, kind, url)?;
    streams.insert((url.to_string(), kind), id);
    Ok(id)
}

/// Writes every record of `reader` as text lines to `out`; returns the number of lines.
/// Damaged blocks are reported as errors (conversion stops at the first).
pub fn recording_to_raw<W: Write>(reader: &Reader, mut out: W) -> Result<u64, RecordingError> {
    let urls: HashMap<StreamId, &str> = reader
        .streams()
        .iter()
        .map(|s| (s.id, s.url.as_str()))
        .collect();
    let mut cursor = reader.cursor();
    let mut buf = Vec::with_capacity(1 << 16);
    let mut n = 0;
    while let Some(r) = cursor.next_ref() {
        let r = r?;
        let url = urls.get(&r.stream).copied().unwrap_or("");
        format_line(url, r.kind, r.ts, r.payload, &mut buf);
        n += 1;
        if buf.len() >= 1 << 16 {
            out.write_all(&buf)?;
            buf.clear();
        }
    }
    out.write_all(&buf)?;
    out.flush()?;
    Ok(n)
}
