//! `tickwire inspect`: run a recorded feed through a venue decoder and L2 books, print what
//! comes out as JSON lines, and summarize.
//!
//! This is the tool for people writing or debugging adapters, so it never stops at a bad
//! line: every malformed line or undecodable message is printed as an `error` line with its
//! line number and counted, and the run carries on. The books here are plain
//! [`L2Book`]s fed exactly as the engine's book actors would be, so `--book-depth` shows what
//! clients would see after each update. [`replay`] is the same pipeline without printing,
//! for tests.

use std::io::{self, Write};
use std::path::Path;

use tickwire_engine::book::L2Book;
use tickwire_engine::domain::{Nanos, Price, Qty, Scale, Side, SymbolId};
use tickwire_engine::event::FeedEvent;

use crate::rawfile::{parse_line, MergedReader, RecordKind};
use crate::venues::{decoder_for, DecodeStats, Decoded, VenueDecoder, VENUES};

/// Why inspection could not run at all (bad lines never are).
#[derive(Debug, thiserror::Error)]
pub enum InspectError {
    #[error("unknown adapter {0:?} (known: itch, {known})", known = VENUES.join(", "))]
    UnknownAdapter(String),
    #[error("i/o error: {0}")]
    Io(#[from] io::Error),
}

/// A line that could not be used.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct LineError {
    /// Index of the file among those given.
    pub file: usize,
    /// 1-based line number in that file.
    pub line: usize,
    pub error: String,
}

/// What a run saw. Error details are kept for the first [`MAX_KEPT_ERRORS`]; all are counted.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize)]
pub struct Summary {
    pub adapter: String,
    /// Non-blank lines read.
    pub lines: u64,
    /// Messages received from the exchange (stream and HTTP).
    pub messages: u64,
    /// Messages the client had sent (subscriptions), shown for context.
    pub sent: u64,
    /// Normalized events (snapshots, deltas, trades).
    pub events: u64,
    /// Venue best bid/offer messages.
    pub quotes: u64,
    /// Distinct symbols.
    pub symbols: u64,
    pub checksums_verified: u64,
    pub checksums_failed: u64,
    pub sequence_gaps: u64,
    pub resyncs: u64,
    /// Malformed lines plus undecodable messages.
    pub parse_errors: u64,
    pub errors: Vec<LineError>,
    /// Deltas that left a book crossed (best bid >= best ask).
    pub crossed_after_update: u64,
}

/// Error details kept in a [`Summary`].
pub const MAX_KEPT_ERRORS: usize = 1000;

/// One output of [`replay`], with where it came from.
#[derive(Debug)]
pub enum ReplayItem<'a> {
    /// Something the decoder produced, and the symbol's book after applying it.
    Decoded {
        file: usize,
        line: usize,
        decoded: &'a Decoded,
        book: Option<&'a L2Book>,
    },
    /// A line or message that could not be used.
    Error(&'a LineError),
}

/// Runs recordings (merged by timestamp) through `decoder` and per-symbol [`L2Book`]s,
/// calling `each` for every output. Returns the summary.
pub fn replay(
    decoder: &mut dyn VenueDecoder,
    paths: &[impl AsRef<Path>],
    mut each: impl FnMut(&dyn VenueDecoder, ReplayItem<'_>) -> io::Result<()>,
) -> io::Result<Summary> {
    let mut reader = MergedReader::open(paths)?;
    let mut summary = Summary {
        adapter: decoder.venue().to_string(),
        ..Summary::default()
    };
    let mut books: Vec<L2Book> = Vec::new();
    let mut out = Vec::new();
    while let Some(mut line) = reader.next_line()? {
        let (file, line_no) = (line.source, line.line_no);
        let fail = |summary: &mut Summary,
                        error: String,
                        decoder: &dyn VenueDecoder,
                        each: &mut dyn FnMut(&dyn VenueDecoder, ReplayItem<'_>) -> io::Result<()>| {
            summary.parse_errors += 1;
            let e = LineError {
                file,
                line: line_no,
                error,
            };
            let r = each(decoder, ReplayItem::Error(&e));
            if summary.errors.len() < MAX_KEPT_ERRORS {
                summary.errors.push(e);
            }
            r
        };
        let record = match parse_line(&mut line.bytes) {
            Ok(None) => continue,
            Ok(Some(r)) => r,
            Err(e) => {
                summary.lines += 1;
                fail(&mut summary, e.to_string(), decoder, &mut each)?;
                continue;
            }
        };
        summary.lines += 1;
        out.clear();
        let result = match record.kind {
            RecordKind::Open => continue,
            RecordKind::Sent => {
                summary.sent += 1;
                continue;
            }
            RecordKind::Received => {
                summary.messages += 1;
                decoder.decode(record.payload, record.ts, &mut out)
            }
            RecordKind::Http => {
                summary.messages += 1;
                decoder.decode_http(record.url, record.payload, record.ts, &mut out)
            }
        };
        for d in &out {
            let book = match d {
                Decoded::Event(ev) => {
                    let i = ev.meta().symbol.index();
                    if books.len() <= i {
                        books.resize_with(i + 1, L2Book::new);
                    }
                    if apply(&mut books[i], ev) {
                        summary.crossed_after_update += 1;
                    }
                    Some(&books[i])
                }
                _ => None,
            };
            each(
                decoder,
                ReplayItem::Decoded {
                    file,
                    line: line_no,
                    decoded: d,
                    book,
                },
            )?;
        }
        if let Err(e) = result {
            fail(&mut summary, e.to_string(), decoder, &mut each)?;
        }
    }
    let stats: &DecodeStats = decoder.stats();
    summary.events = stats.events;
    summary.quotes = stats.quotes;
    summary.symbols = decoder.registry().len() as u64;
    summary.checksums_verified = stats.checksums_verified;
    summary.checksums_failed = stats.checksums_failed;
    summary.sequence_gaps = stats.sequence_gaps;
    summary.resyncs = stats.resyncs;
    Ok(summary)
}

/// Applies an event to a book as the engine's book actor does; returns whether a delta left
/// the book crossed.
fn apply(book: &mut L2Book, ev: &FeedEvent) -> bool {
    use tickwire_engine::book::Level;
    match ev {
        FeedEvent::Snapshot { bids, asks, .. } => {
            let lv = |&(price, qty): &(Price, Qty)| Level { price, qty };
            book.replace(bids.iter().map(lv), asks.iter().map(lv));
            false
        }
        FeedEvent::Delta { changes, .. } => {
            for c in changes {
                book.apply(c.side, c.price, c.qty);
            }
            book.is_crossed()
        }
        FeedEvent::Trade { .. } => false,
    }
}

fn is_recording(path: &Path) -> bool {
    use std::io::Read;
    let mut magic = [0u8; 8];
    std::fs::File::open(path)
        .and_then(|mut f| f.read_exact(&mut magic))
        .is_ok()
        && magic == crate::recording::format::MAGIC
}

fn invalid(path: &Path, e: impl std::fmt::Display) -> io::Error {
    io::Error::new(
        io::ErrorKind::InvalidData,
        format!("{}: {e}", path.display()),
    )
}

/// Runs Tickwire recordings through the replay pipeline ([`ReplaySource`]: the same decoders
/// and merge a served replay uses, at full speed) and prints what comes out. `line` in the
/// output is the record's position in the merged stream (1-based), `file` its recording.
fn run_recordings(
    adapter: &str,
    paths: &[&Path],
    book_depth: Option<usize>,
    out: &mut impl Write,
) -> Result<Summary, InspectError> {
    use crate::recording::Reader;
    use crate::replay::{LocalBooks, ReplaySource, StepError};
    use crate::venues::SymbolRegistry;
    let readers = paths
        .iter()
        .map(|p| Reader::open(p).map_err(|e| invalid(p, e)))
        .collect::<Result<Vec<_>, _>>()?;
    for (r, p) in readers.iter().zip(paths) {
        if r.header().adapter != adapter {
            return Err(invalid(
                p,
                format!(
                    "recorded by the {:?} adapter, not {adapter:?}",
                    r.header().adapter
                ),
            )
            .into());
        }
    }
    let mut source = ReplaySource::open(readers).map_err(|e| invalid(paths[0], e))?;
    let registry = SymbolRegistry::fixed(adapter, source.instruments().to_vec());
    let mut books = LocalBooks::new(source.instruments().len());
    let mut summary = Summary {
        adapter: adapter.to_string(),
        ..Summary::default()
    };
    let progress = crate::progress::Progress::new("inspect", source_records(&source));
    let mut line = Vec::with_capacity(4096);
    let mut record = 0usize;
    while let Some(step) = source.step(None) {
        record += 1;
        progress.tick(1);
        summary.lines += 1;
        let file = step.source;
        for d in step.decoded {
            let book = match d {
                Decoded::Event(ev) => {
                    books.apply(ev);
                    if let FeedEvent::Delta { meta, .. } = ev {
                        if books.book(meta.symbol).is_some_and(|b| b.is_crossed()) {
                            summary.crossed_after_update += 1;
                        }
                    }
                    books.book(ev.meta().symbol)
                }
                _ => None,
            };
            line.clear();
            write_item(
                &mut line,
                &registry,
                &ReplayItem::Decoded {
                    file,
                    line: record,
                    decoded: d,
                    book,
                },
                book_depth,
            );
            line.push(b'\n');
            out.write_all(&line)?;
        }
        if let Some(err) = &step.error {
            summary.parse_errors += 1;
            let error = match err {
                StepError::Decode(e) => e.clone(),
                StepError::Damaged { error, .. } => format!("damaged recording: {error}"),
            };
            let e = LineError {
                file,
                line: record,
                error,
            };
            line.clear();
            write_item(&mut line, &registry, &ReplayItem::Error(&e), book_depth);
            line.push(b'\n');
            out.write_all(&line)?;
            if summary.errors.len() < MAX_KEPT_ERRORS {
                summary.errors.push(e);
            }
        }
    }
    progress.finish();
    for i in 0..source.readers().len() {
        let st = source.decoder(i).stats();
        summary.messages += st.messages;
        summary.events += st.events;
        summary.quotes += st.quotes;
        summary.checksums_verified += st.checksums_verified;
        summary.checksums_failed += st.checksums_failed;
        summary.sequence_gaps += st.sequence_gaps;
        summary.resyncs += st.resyncs;
        // Decode errors are counted per message above; damaged blocks too.
        let _ = st.parse_errors;
    }
    summary.sent = 0;
    summary.symbols = source.instruments().len() as u64;
    write_summary(out, &summary)?;
    Ok(summary)
}

fn source_records(source: &crate::replay::ReplaySource) -> u64 {
    source
        .readers()
        .iter()
        .flat_map(|r| r.blocks().iter().map(|b| u64::from(b.record_count)))
        .sum()
}

fn write_summary(out: &mut impl Write, summary: &Summary) -> io::Result<()> {
    serde_json::to_writer(
        &mut *out,
        &serde_json::json!({ "type": "summary", "summary": summary }),
    )
    .map_err(io::Error::from)?;
    out.write_all(b"\n")
}

/// Inspects one recording; see [`run_files`].
pub fn run(
    adapter: &str,
    path: impl AsRef<Path>,
    book_depth: Option<usize>,
    out: &mut impl Write,
) -> Result<Summary, InspectError> {
    run_files(adapter, &[path], book_depth, out)
}

/// Inspects recordings merged by timestamp (e.g. a Binance stream plus its REST snapshots),
/// printing one JSON object per line and a final `{"type":"summary",...}` line.
pub fn run_files(
    adapter: &str,
    paths: &[impl AsRef<Path>],
    book_depth: Option<usize>,
    out: &mut impl Write,
) -> Result<Summary, InspectError> {
    let paths: Vec<&Path> = paths.iter().map(AsRef::as_ref).collect();
    if decoder_for(adapter).is_none() {
        return Err(InspectError::UnknownAdapter(adapter.to_string()));
    }
    let recordings = paths.iter().filter(|p| is_recording(p)).count();
    if recordings == paths.len() && !paths.is_empty() {
        return run_recordings(adapter, &paths, book_depth, out);
    }
    if recordings > 0 {
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            "give either Tickwire recordings or line-format files, not both",
        )
        .into());
    }
    if adapter == "itch" {
        let path = paths
            .first()
            .ok_or_else(|| io::Error::new(io::ErrorKind::InvalidInput, "no file"))?;
        return run_itch(path, book_depth, out);
    }
    let mut decoder =
        decoder_for(adapter).ok_or_else(|| InspectError::UnknownAdapter(adapter.to_string()))?;
    let mut line = Vec::with_capacity(4096);
    let summary = replay(decoder.as_mut(), &paths, |dec, item| {
        line.clear();
        write_item(&mut line, dec.registry(), &item, book_depth);
        line.push(b'\n');
        out.write_all(&line)
    })?;
    write_summary(out, &summary)?;
    Ok(summary)
}

/// Writes one output of inspection as the JSON line `tickwire inspect` prints (without
/// the newline); `GET /replay` streams the same lines.
pub fn write_item(
    o: &mut Vec<u8>,
    reg: &crate::venues::SymbolRegistry,
    item: &ReplayItem<'_>,
    depth: Option<usize>,
) {
    let (file, line, decoded, book) = match item {
        ReplayItem::Error(e) => {
            o.extend_from_slice(br#"{"type":"error","file":"#);
            num(o, e.file as i64);
            o.extend_from_slice(br#","line":"#);
            num(o, e.line as i64);
            o.extend_from_slice(br#","error":"#);
            json_str(o, &e.error);
            o.push(b'}');
            return;
        }
        ReplayItem::Decoded {
            file,
            line,
            decoded,
            book,
        } => (*file, *line, *decoded, *book),
    };
    let (symbol, kind, ts, recv_ts) = match decoded {
        Decoded::Event(ev) => {
            let kind = match ev {
                FeedEvent::Snapshot { .. } => "snapshot",
                FeedEvent::Delta { .. } => "delta",
                FeedEvent::Trade { .. } => "trade",
            };
            (ev.meta().symbol, kind, ev.meta().ts, ev.meta().recv_ts)
        }
        Decoded::Quote(q) => (q.meta.symbol, "quote", q.meta.ts, q.meta.recv_ts),
        Decoded::Resync { symbol, .. } => (*symbol, "resync", Nanos(0), Nanos(0)),
    };
    let (ps, ss) = reg.scales(symbol);
    o.extend_from_slice(br#"{"type":""#);
    o.extend_from_slice(kind.as_bytes());
    o.extend_from_slice(br#"","file":"#);
    num(o, file as i64);
    o.extend_from_slice(br#","line":"#);
    num(o, line as i64);
    o.extend_from_slice(br#","symbol":"#);
    json_str(o, reg.get(symbol).map_or("?", |i| i.symbol.as_str()));
    if kind != "resync" {
        o.extend_from_slice(br#","ts":"#);
        num(o, ts.0);
        o.extend_from_slice(br#","recv_ts":"#);
        num(o, recv_ts.0);
    }
    match decoded {
        Decoded::Event(FeedEvent::Snapshot { bids, asks, .. }) => {
            o.extend_from_slice(br#","bids":"#);
            pairs(o, bids.iter().map(|(p, q)| (*p, *q)), ps, ss);
            o.extend_from_slice(br#","asks":"#);
            pairs(o, asks.iter().map(|(p, q)| (*p, *q)), ps, ss);
        }
        Decoded::Event(FeedEvent::Delta { changes, .. }) => {
            o.extend_from_slice(br#","changes":["#);
            for (i, c) in changes.iter().enumerate() {
                if i > 0 {
                    o.push(b',');
                }
                o.extend_from_slice(b"[\"");
                o.extend_from_slice(c.side.as_str().as_bytes());
                o.extend_from_slice(b"\",");
                decimal(o, c.price.0, ps);
                o.push(b',');
                decimal(o, c.qty.0, ss);
                o.push(b']');
            }
            o.push(b']');
        }
        Decoded::Event(FeedEvent::Trade {
            price,
            qty,
            aggressor,
            ..
        }) => {
            o.extend_from_slice(br#","price":"#);
            decimal(o, price.0, ps);
            o.extend_from_slice(br#","qty":"#);
            decimal(o, qty.0, ss);
            o.extend_from_slice(br#","aggressor":"#);
            match aggressor {
                Some(s) => json_str(o, s.as_str()),
                None => o.extend_from_slice(b"null"),
            }
        }
        Decoded::Quote(q) => {
            for (key, side) in [(&br#","bid":"#[..], q.bid), (&br#","ask":"#[..], q.ask)] {
                o.extend_from_slice(key);
                match side {
                    None => o.extend_from_slice(b"null"),
                    Some(s) => {
                        o.push(b'[');
                        decimal(o, s.price.0, ps);
                        o.push(b',');
                        match s.qty {
                            Some(q) => decimal(o, q.0, ss),
                            None => o.extend_from_slice(b"null"),
                        }
                        o.push(b']');
                    }
                }
            }
        }
        Decoded::Resync { reason, .. } => {
            o.extend_from_slice(br#","reason":"#);
            json_str(o, &reason.to_string());
        }
    }
    if let (Some(n), Some(book)) = (depth, book) {
        if !matches!(decoded, Decoded::Event(FeedEvent::Trade { .. })) {
            o.extend_from_slice(br#","book":{"bids":"#);
            let lv = |side| book.levels(side).take(n).map(|l| (l.price, l.qty));
            pairs(o, lv(Side::Buy), ps, ss);
            o.extend_from_slice(br#","asks":"#);
            pairs(o, lv(Side::Sell), ps, ss);
            o.push(b'}');
        }
    }
    o.push(b'}');
}

fn pairs(o: &mut Vec<u8>, levels: impl Iterator<Item = (Price, Qty)>, ps: Scale, ss: Scale) {
    o.push(b'[');
    for (i, (p, q)) in levels.enumerate() {
        if i > 0 {
            o.push(b',');
        }
        o.push(b'[');
        decimal(o, p.0, ps);
        o.push(b',');
        decimal(o, q.0, ss);
        o.push(b']');
    }
    o.push(b']');
}

/// A fixed-point value as a JSON string, so no client parses it into a float by accident.
fn decimal(o: &mut Vec<u8>, mantissa: i64, scale: Scale) {
    o.push(b'"');
    tickwire_engine::domain::decimal::write_mantissa(o, mantissa, scale);
    o.push(b'"');
}

fn num(o: &mut Vec<u8>, v: i64) {
    o.extend_from_slice(itoa::Buffer::new().format(v).as_bytes());
}

fn json_str(o: &mut Vec<u8>, s: &str) {
    // serde_json escapes correctly; writing to a Vec cannot fail.
    let _ = serde_json::to_writer(&mut *o, s);
}

/// Symbol name for an id in a decoder's registry (for tests and tools).
pub fn symbol_name(dec: &dyn VenueDecoder, id: SymbolId) -> Option<&str> {
    dec.registry().get(id).map(|i| i.symbol.as_str())
}

/// Inspects a binary ITCH 5.0 file (length-prefixed, memory-mapped): one JSON line per
/// message that touched a book or printed a trade, with the stock's top of book (or top N
/// levels), and a summary. `line` in errors is the message's index in the file.
pub fn run_itch(
    path: impl AsRef<Path>,
    book_depth: Option<usize>,
    out: &mut impl Write,
) -> Result<Summary, InspectError> {
    use crate::itch::{map_file, replay as itch_replay, ItchSide, Level, Message, PRICE_SCALE};

    let map = map_file(path)?;
    let mut book = crate::itch::L3Book::with_capacity(1 << 20);
    let mut summary = Summary {
        adapter: "itch".into(),
        ..Summary::default()
    };
    let mut line = Vec::with_capacity(512);
    let mut io_result = Ok(());
    let mut errors = Vec::new();
    let stats = itch_replay(
        &map,
        &mut book,
        |index, msg, effect, book| {
            if let Message::StockDirectory { .. } = msg {
                summary.symbols += 1;
            }
            let Some(locate) = effect.book.or(effect.print.map(|p| p.locate)) else {
                return;
            };
            let stock = book.stock(locate);
            let name = stock
                .and_then(|s| s.symbol)
                .map(|s| String::from_utf8_lossy(&s).trim_end().to_string())
                .unwrap_or_default();
            line.clear();
            line.extend_from_slice(br#"{"type":"#);
            json_str(
                &mut line,
                if effect.print.is_some() {
                    "trade"
                } else {
                    "book"
                },
            );
            line.extend_from_slice(br#","index":"#);
            num(&mut line, index as i64);
            line.extend_from_slice(br#","symbol":"#);
            json_str(&mut line, &name);
            line.extend_from_slice(br#","ts":"#);
            num(&mut line, msg.header().timestamp as i64);
            if let Some(p) = effect.print {
                line.extend_from_slice(br#","price":"#);
                decimal(&mut line, p.price as i64, PRICE_SCALE);
                line.extend_from_slice(br#","qty":"#);
                num(&mut line, p.shares as i64);
            }
            if effect.book.is_some() {
                let depth = book_depth.unwrap_or(1);
                let side = |o: &mut Vec<u8>, s: ItchSide| {
                    o.push(b'[');
                    let levels = stock.into_iter().flat_map(|st| st.levels(s)).take(depth);
                    for (i, l) in levels.enumerate() {
                        let Level { price, shares } = *l;
                        if i > 0 {
                            o.push(b',');
                        }
                        o.push(b'[');
                        decimal(o, price as i64, PRICE_SCALE);
                        o.push(b',');
                        num(o, shares as i64);
                        o.push(b']');
                    }
                    o.push(b']');
                };
                line.extend_from_slice(br#","book":{"bids":"#);
                side(&mut line, ItchSide::Buy);
                line.extend_from_slice(br#","asks":"#);
                side(&mut line, ItchSide::Sell);
                line.push(b'}');
            }
            line.extend_from_slice(b"}\n");
            if io_result.is_ok() {
                io_result = out.write_all(&line);
            }
        },
        |index, error| {
            errors.push(LineError {
                file: 0,
                line: index,
                error: error.to_string(),
            })
        },
    );
    io_result?;
    for e in &errors {
        line.clear();
        line.extend_from_slice(br#"{"type":"error","index":"#);
        num(&mut line, e.line as i64);
        line.extend_from_slice(br#","error":"#);
        json_str(&mut line, &e.error);
        line.extend_from_slice(b"}\n");
        out.write_all(&line)?;
    }
    summary.messages = stats.messages;
    summary.lines = stats.messages;
    summary.events = stats.applied;
    summary.parse_errors = stats.errors;
    errors.truncate(MAX_KEPT_ERRORS);
    summary.errors = errors;
    serde_json::to_writer(
        &mut *out,
        &serde_json::json!({ "type": "summary", "summary": &summary }),
    )
    .map_err(io::Error::from)?;
    out.write_all(b"\n")?;
    Ok(summary)
}
