//! The engine-free heart of a replay: recordings in, normalized events out, in time order.
//!
//! [`ReplaySource`] merges the records of one or more recordings by receive time
//! ([`Merge`]) and hands each file's raw messages to that file's decoder, chosen by the
//! adapter its header names (a venue decoder, or [`ItchDecoder`] for ITCH packets): the
//! very decoders a live session runs. The events come out with the replay's own symbol ids
//! (one table over all files, in file order), so several venues replay side by side.
//!
//! It is shaped for the full-speed path: one reusable scratch copy per record for the JSON
//! venues (simd-json parses in place; ITCH is decoded from the recording's bytes with no
//! copy), one reusable output vector, no allocation per message beyond what the decoders'
//! events themselves hold, and one pass over a record's outputs (replay ids, counts). A
//! recording of [`READ_AHEAD_MIN_BLOCKS`] blocks or more is read through [`Reader::read_ahead_cursor`] when there is a second core: its blocks are
//! decompressed on another thread while this one decodes (a served replay runs on its own
//! arbiter, so the core is there to use); small files, and one-core machines, stay on the
//! single thread.
//!
//! The instruments have to be known before a replay starts (the engine builds one book per
//! symbol up front), but venue decoders learn a symbol's decimal places from its first
//! message. [`learn_instruments`] therefore runs a fresh decoder over the start of a
//! recording until it has seen every symbol the header names; a server does this once per
//! dataset and passes the result to [`ReplaySource::with_instruments`].

use std::collections::HashMap;

use tickwire_engine::domain::{Instrument, Nanos, SymbolId};
use tickwire_engine::event::FeedEvent;

use crate::itch::ItchDecoder;
use crate::live::RawTap;
use crate::recording::{Merge, Reader, RecordKind, RecordingError};
use crate::venues::{decoder_for, DecodeError, Decoded, VenueDecoder, VENUES};

/// Why a replay cannot start.
#[derive(Debug, thiserror::Error)]
pub enum ReplayError {
    #[error("recording names adapter {0:?}, which this build does not know (known: itch, {known})", known = VENUES.join(", "))]
    UnknownAdapter(String),
    #[error("{0}")]
    Recording(#[from] RecordingError),
    #[error(
        "symbol {symbol:?} is in two recordings ({first} and {second}); replay them separately"
    )]
    DuplicateSymbol {
        symbol: String,
        first: usize,
        second: usize,
    },
    #[error("no recording given")]
    NoInput,
}

/// Metadata key of ITCH recordings: ns since the epoch of the midnight (US Eastern) that
/// ITCH timestamps count from.
pub const ITCH_MIDNIGHT_KEY: &str = "itch_midnight_ns";

/// Metadata key: ns since the epoch when continuous trading opens (a generated day starts
/// a few minutes earlier, building its books). The bundled day is served from there.
pub const SESSION_OPEN_KEY: &str = "session_open_ns";

/// The session open of a recording, if its header says.
pub fn session_open(reader: &Reader) -> Option<i64> {
    reader
        .header()
        .metadata
        .iter()
        .find(|(k, _)| k == SESSION_OPEN_KEY)
        .and_then(|(_, v)| v.parse().ok())
}

/// The decoder a recording's header asks for.
pub fn decoder_for_header(reader: &Reader) -> Result<Box<dyn VenueDecoder + Send>, ReplayError> {
    if let Some(midnight) = itch_midnight(reader) {
        return Ok(Box::new(ItchDecoder::new(midnight)));
    }
    let adapter = &reader.header().adapter;
    decoder_for(adapter).ok_or_else(|| ReplayError::UnknownAdapter(adapter.clone()))
}

/// For an ITCH recording, the midnight its timestamps count from (from the header, else the
/// UTC midnight before its start); `None` for other adapters.
fn itch_midnight(reader: &Reader) -> Option<i64> {
    let h = reader.header();
    if h.adapter != "itch" {
        return None;
    }
    let midnight = h
        .metadata
        .iter()
        .find(|(k, _)| k == ITCH_MIDNIGHT_KEY)
        .and_then(|(_, v)| v.parse().ok())
        .unwrap_or(h.start_ns - h.start_ns.rem_euclid(86_400_000_000_000));
    Some(midnight)
}

/// The instruments of a recording, as its decoder defines them (see the module docs).
pub fn learn_instruments(reader: &Reader) -> Result<Vec<Instrument>, ReplayError> {
    let mut decoder = decoder_for_header(reader)?;
    let want: Vec<&str> = reader.header().symbols.iter().map(String::as_str).collect();
    let mut cursor = reader.cursor();
    let mut scratch = Vec::new();
    let mut out = Vec::new();
    let known = |d: &dyn VenueDecoder| {
        !want.is_empty() && want.iter().all(|s| d.registry().lookup(s).is_some())
    };
    while let Some(r) = cursor.next_ref() {
        let Ok(r) = r else { continue };
        scratch.clear();
        scratch.extend_from_slice(r.payload);
        out.clear();
        let url = reader.stream(r.stream).map_or("", |s| s.url.as_str());
        let _ = match r.kind {
            RecordKind::Received => decoder.decode(&mut scratch, Nanos(r.ts), &mut out),
            RecordKind::HttpResponse => {
                decoder.decode_http(url, &mut scratch, Nanos(r.ts), &mut out)
            }
            _ => continue,
        };
        if known(decoder.as_ref()) {
            break;
        }
    }
    Ok(decoder.registry().instruments().to_vec())
}

/// What went wrong with one record (never fatal).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StepError {
    /// The decoder refused the message (it is counted and skipped).
    Decode(String),
    /// A block of recording `source` failed its checksum or did not decode: its records are
    /// lost, so that file's books are unreliable until their next snapshot.
    Damaged { source: usize, error: String },
}

/// One record's worth of output.
pub struct Step<'a> {
    /// Receive time of the record, ns since the epoch (what pacing follows).
    pub ts: i64,
    /// Which recording it came from.
    pub source: usize,
    /// Normalized events (and venue quotes, resyncs), with the replay's symbol ids.
    pub decoded: &'a [Decoded],
    pub error: Option<StepError>,
}

/// Counters of a source.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct SourceStats {
    pub records: u64,
    pub events: u64,
    pub decode_errors: u64,
    pub damaged_blocks: u64,
}

struct FileState {
    decoder: FileDecoder,
    /// Decoder symbol id → replay symbol id (`None`: not replayed).
    map: Vec<Option<SymbolId>>,
}

/// A recording's decoder. ITCH is kept as its own type: it reads a record's bytes where
/// they lie, while the venue decoders parse JSON in place and need a writable copy.
enum FileDecoder {
    Itch(Box<ItchDecoder>),
    Venue(Box<dyn VenueDecoder + Send>),
}

impl FileDecoder {
    fn for_header(reader: &Reader) -> Result<FileDecoder, ReplayError> {
        Ok(match itch_midnight(reader) {
            Some(midnight) => FileDecoder::Itch(Box::new(ItchDecoder::new(midnight))),
            None => FileDecoder::Venue(decoder_for_header(reader)?),
        })
    }

    fn as_dyn(&self) -> &dyn VenueDecoder {
        match self {
            FileDecoder::Itch(d) => d.as_ref(),
            FileDecoder::Venue(d) => d.as_ref(),
        }
    }

    /// Decodes one record's payload into `out`; `scratch` is the reusable writable copy.
    #[inline]
    fn decode(
        &mut self,
        kind: RecordKind,
        url: &str,
        payload: &[u8],
        ts: Nanos,
        scratch: &mut Vec<u8>,
        out: &mut Vec<Decoded>,
    ) -> Result<(), DecodeError> {
        if let (FileDecoder::Itch(d), RecordKind::Received) = (&mut *self, kind) {
            return d.decode_packet(payload, ts, out);
        }
        let decoder: &mut dyn VenueDecoder = match self {
            FileDecoder::Itch(d) => d.as_mut(),
            FileDecoder::Venue(d) => d.as_mut(),
        };
        scratch.clear();
        scratch.extend_from_slice(payload);
        match kind {
            RecordKind::Received => decoder.decode(scratch, ts, out),
            RecordKind::HttpResponse => decoder.decode_http(url, scratch, ts, out),
            _ => Ok(()),
        }
    }
}

/// See the module documentation.
pub struct ReplaySource {
    readers: Vec<Reader>,
    files: Vec<FileState>,
    merge: Merge,
    instruments: Vec<Instrument>,
    by_name: HashMap<String, SymbolId>,
    /// Which file each instrument comes from.
    file_of: Vec<usize>,
    scratch: Vec<u8>,
    out: Vec<Decoded>,
    restamp: bool,
    stats: SourceStats,
}

impl ReplaySource {
    /// Opens recordings, learning their instruments.
    pub fn open(readers: Vec<Reader>) -> Result<ReplaySource, ReplayError> {
        let instruments = readers
            .iter()
            .map(learn_instruments)
            .collect::<Result<Vec<_>, _>>()?;
        ReplaySource::with_instruments(readers, instruments)
    }

    /// Opens recordings whose instruments are already known (one list per reader, from
    /// [`learn_instruments`]).
    pub fn with_instruments(
        readers: Vec<Reader>,
        instruments: Vec<Vec<Instrument>>,
    ) -> Result<ReplaySource, ReplayError> {
        if readers.is_empty() {
            return Err(ReplayError::NoInput);
        }
        let mut all = Vec::new();
        let mut by_name: HashMap<String, SymbolId> = HashMap::new();
        let mut file_of = Vec::new();
        for (file, list) in instruments.into_iter().enumerate() {
            for ins in list {
                if let Some(prev) = by_name.get(&ins.symbol) {
                    return Err(ReplayError::DuplicateSymbol {
                        symbol: ins.symbol,
                        first: file_of[prev.index()],
                        second: file,
                    });
                }
                by_name.insert(ins.symbol.clone(), SymbolId(all.len() as u32));
                file_of.push(file);
                all.push(ins);
            }
        }
        let files = readers
            .iter()
            .map(|r| {
                Ok(FileState {
                    decoder: FileDecoder::for_header(r)?,
                    map: Vec::new(),
                })
            })
            .collect::<Result<Vec<_>, ReplayError>>()?;
        let merge = merge_from_start(&readers);
        Ok(ReplaySource {
            readers,
            files,
            merge,
            instruments: all,
            by_name,
            file_of,
            scratch: Vec::with_capacity(1 << 16),
            out: Vec::with_capacity(64),
            restamp: false,
            stats: SourceStats::default(),
        })
    }

    /// Every instrument of every recording, indexed by the replay's symbol ids.
    pub fn instruments(&self) -> &[Instrument] {
        &self.instruments
    }

    /// The replay's id of a symbol.
    pub fn lookup(&self, name: &str) -> Option<SymbolId> {
        self.by_name.get(name).copied()
    }

    /// The recordings.
    pub fn readers(&self) -> &[Reader] {
        &self.readers
    }

    /// Which recording a symbol comes from.
    pub fn file_of(&self, symbol: SymbolId) -> usize {
        self.file_of[symbol.index()]
    }

    /// Counters.
    pub fn stats(&self) -> SourceStats {
        self.stats
    }

    /// The decoder of recording `i` (its counters: checksums verified, gaps, ...).
    pub fn decoder(&self, i: usize) -> &dyn VenueDecoder {
        self.files[i].decoder.as_dyn()
    }

    /// When set, every event's `recv_ts` becomes the moment it was decoded (a served
    /// replay: `recv_ts` is when the server emitted it); otherwise it is the recorded
    /// receive time. `ts` is always the recorded event time.
    pub fn set_restamp(&mut self, on: bool) {
        self.restamp = on;
    }

    /// Smallest and largest receive time over all recordings.
    pub fn time_range(&self) -> Option<(i64, i64)> {
        let ranges: Vec<_> = self.readers.iter().filter_map(Reader::time_range).collect();
        Some((
            ranges.iter().map(|r| r.0).min()?,
            ranges.iter().map(|r| r.1).max()?,
        ))
    }

    /// Back to the first record, with fresh decoders (as a new live session would start).
    pub fn reset(&mut self) -> Result<(), ReplayError> {
        for (f, r) in self.files.iter_mut().zip(&self.readers) {
            f.decoder = FileDecoder::for_header(r)?;
            f.map.clear();
        }
        self.merge = merge_from_start(&self.readers);
        Ok(())
    }

    /// The receive time of the next record; `None` at the end.
    #[inline]
    pub fn peek_ts(&mut self) -> Option<i64> {
        self.merge.peek_ts()
    }

    /// Decodes the next record. `tap` sees its raw bytes first (recording a replay).
    #[inline]
    pub fn step(&mut self, tap: Option<&dyn RawTap>) -> Option<Step<'_>> {
        self.out.clear();
        let rec = match self.merge.next_ref()? {
            Ok(r) => r,
            Err((source, e)) => {
                self.stats.damaged_blocks += 1;
                return Some(Step {
                    ts: i64::MIN,
                    source,
                    decoded: &[],
                    error: Some(StepError::Damaged {
                        source,
                        error: e.to_string(),
                    }),
                });
            }
        };
        self.stats.records += 1;
        let (source, r) = (rec.source, rec.record);
        // The stream's URL is for HTTP responses' decoding and for a tap; received
        // messages decode without it, so the full-speed path skips the lookup.
        let needs_url =
            r.kind == RecordKind::HttpResponse || (tap.is_some() && r.kind == RecordKind::Received);
        let url = match needs_url {
            true => self.readers[source]
                .stream(r.stream)
                .map_or("", |s| s.url.as_str()),
            false => "",
        };
        if let Some(t) = tap {
            t.raw(r.kind, url, Nanos::now(), r.payload);
        }
        let ts = r.ts;
        let file = &mut self.files[source];
        let result = file.decoder.decode(
            r.kind,
            url,
            r.payload,
            Nanos(ts),
            &mut self.scratch,
            &mut self.out,
        );
        let error = result.err().map(|e| {
            self.stats.decode_errors += 1;
            StepError::Decode(e.to_string())
        });
        if !self.out.is_empty() {
            self.stats.events += to_replay_ids(
                &mut self.out,
                file,
                &self.by_name,
                &self.instruments,
                self.restamp,
            );
        }
        Some(Step {
            ts,
            source,
            decoded: &self.out,
            error,
        })
    }
}

/// Recordings of at least this many blocks (128 KiB of records each by default) are read
/// with a read-ahead thread; smaller ones are over before a thread would pay for itself.
pub const READ_AHEAD_MIN_BLOCKS: usize = 16;

/// Whether `reader` is worth a read-ahead thread (see the module documentation).
fn read_ahead_pays(reader: &Reader) -> bool {
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
    cores > 1 && reader.blocks().len() >= READ_AHEAD_MIN_BLOCKS
}

/// A merge of every recording from its first record.
fn merge_from_start(readers: &[Reader]) -> Merge {
    let cursor = |r: &Reader| {
        if read_ahead_pays(r) {
            r.read_ahead_cursor()
        } else {
            r.cursor()
        }
    };
    Merge::new(readers.iter().map(cursor).collect())
}

/// Gives `out`'s outputs the replay's symbol ids (and, when restamping, the current time as
/// `recv_ts`), dropping those of symbols not replayed. Returns how many events remain.
#[inline]
fn to_replay_ids(
    out: &mut Vec<Decoded>,
    file: &mut FileState,
    by_name: &HashMap<String, SymbolId>,
    instruments: &[Instrument],
    restamp: bool,
) -> u64 {
    let now = restamp.then(Nanos::now);
    let decoder = file.decoder.as_dyn();
    let map = &mut file.map;
    let mut events = 0;
    out.retain_mut(|d| {
        let id = symbol_of(d);
        let i = id.index();
        if map.len() <= i {
            map.resize(i + 1, None);
        }
        let global = match map[i] {
            Some(g) => g,
            None => {
                let Some(ins) = decoder.registry().get(id) else {
                    return false;
                };
                let Some(&g) = by_name.get(&ins.symbol) else {
                    return false;
                };
                // Scales come from the same first message, so they agree; a symbol whose
                // scales do not is not replayed rather than garbled.
                let known = &instruments[g.index()];
                if (known.price_scale, known.size_scale) != (ins.price_scale, ins.size_scale) {
                    return false;
                }
                map[i] = Some(g);
                g
            }
        };
        set_symbol(d, global, now);
        events += matches!(d, Decoded::Event(_)) as u64;
        true
    });
    events
}

fn symbol_of(d: &Decoded) -> SymbolId {
    match d {
        Decoded::Event(e) => e.meta().symbol,
        Decoded::Quote(q) => q.meta.symbol,
        Decoded::Resync { symbol, .. } => *symbol,
    }
}

#[inline]
fn set_symbol(d: &mut Decoded, id: SymbolId, recv_ts: Option<Nanos>) {
    let meta = match d {
        Decoded::Event(
            FeedEvent::Snapshot { meta, .. }
            | FeedEvent::Delta { meta, .. }
            | FeedEvent::Trade { meta, .. },
        ) => meta,
        Decoded::Quote(q) => &mut q.meta,
        Decoded::Resync { symbol, .. } => {
            *symbol = id;
            return;
        }
    };
    meta.symbol = id;
    if let Some(t) = recv_ts {
        meta.recv_ts = t;
    }
}
