//! Integration tests of the recording format: lossless round trip of every real feed file,
//! seek without scanning, SIGKILL crash safety, corruption and truncation, and merge order.

use std::fs;
use std::io::{BufReader, Write};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use tickwire_feeds::recording::convert::{self, parse_line};
use tickwire_feeds::recording::{
    Header, Merge, Reader, Record, RecordKind, RecordingError, StreamKind, Writer, WriterOptions,
};

const REAL_FEEDS: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../../shared/real-feeds");

/// A scratch directory unique to this process and test, removed on drop.
struct Scratch(PathBuf);

impl Scratch {
    fn new(name: &str) -> Scratch {
        let p = std::env::temp_dir().join(format!("tickwire-rec-{}-{name}", std::process::id()));
        let _ = fs::remove_dir_all(&p);
        fs::create_dir_all(&p).unwrap();
        Scratch(p)
    }
    fn path(&self, f: &str) -> PathBuf {
        self.0.join(f)
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        let _ = fs::remove_dir_all(&self.0);
    }
}

fn header(adapter: &str) -> Header {
    Header {
        adapter: adapter.into(),
        venue: format!("{adapter}-venue"),
        symbols: vec!["BTC-USD".into(), "ETH-USD".into()],
        start_ns: 1_600_000_000_000_000_000,
        metadata: vec![("url".into(), "wss://example.invalid/feed".into())],
    }
}

fn small_blocks() -> WriterOptions {
    WriterOptions {
        block_bytes: 4 << 10,
        ..WriterOptions::default()
    }
}

fn payload(i: u64) -> Vec<u8> {
    format!(
        r#"{{"type":"l2update","seq":{i},"changes":[["buy","{}.25","0.5"]]}}"#,
        100 + i % 50
    )
    .into_bytes()
}

/// Writes `n` records with timestamps `t0 + 1000 * i` on one stream and finishes the file.
fn write_sequence(path: &Path, n: u64, t0: i64, opts: WriterOptions) -> Vec<Record> {
    let mut w = Writer::create(path, &header("seq"), opts).unwrap();
    let s = w
        .add_stream(t0, StreamKind::WebSocket, "wss://example.invalid/feed")
        .unwrap();
    let mut out = Vec::new();
    for i in 0..n {
        let ts = t0 + 1000 * i as i64;
        let p = payload(i);
        w.append(ts, s, RecordKind::Received, &p).unwrap();
        out.push(Record {
            ts,
            stream: s,
            kind: RecordKind::Received,
            payload: p,
        });
    }
    w.finish().unwrap();
    out
}

/// End of the last data block (where the index block of a cleanly closed file starts), read
/// from the raw bytes: the block header's `stored_len` is at offset 8.
fn data_end(path: &Path) -> u64 {
    let last = *Reader::open(path).unwrap().blocks().last().unwrap();
    let bytes = fs::read(path).unwrap();
    let stored = u32::from_le_bytes(bytes[last.offset as usize + 8..][..4].try_into().unwrap());
    last.offset + 44 + u64::from(stored)
}

fn read_all(r: &Reader) -> Vec<Record> {
    r.cursor().map(|r| r.unwrap()).collect()
}

fn real_feed_files() -> Vec<PathBuf> {
    let dir = Path::new(REAL_FEEDS);
    assert!(
        dir.is_dir(),
        "real feeds directory {} is missing: these tests need ../shared/real-feeds",
        dir.display()
    );
    let mut files: Vec<PathBuf> = fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "raw"))
        .collect();
    files.sort();
    assert!(!files.is_empty(), "no .raw files in {}", dir.display());
    files
}

fn convert_file(src: &Path, dst: &Path, opts: WriterOptions) -> convert::ConvertSummary {
    let name = src.file_name().unwrap().to_string_lossy().into_owned();
    let adapter = name.split('-').next().unwrap().to_string();
    let h = Header {
        adapter: adapter.clone(),
        venue: adapter,
        symbols: vec![],
        start_ns: 0,
        metadata: vec![("source".into(), name)],
    };
    let input = BufReader::new(fs::File::open(src).unwrap());
    convert::raw_to_recording(input, dst, h, opts).unwrap()
}

#[test]
fn every_real_feed_file_round_trips_losslessly() {
    let tmp = Scratch::new("roundtrip");
    for src in real_feed_files() {
        let name = src.file_name().unwrap().to_string_lossy().into_owned();
        let source = fs::read(&src).unwrap();
        let dst = tmp.path(&format!("{name}.twr"));
        // Small blocks so every file spans several blocks.
        let summary = convert_file(&src, &dst, small_blocks());

        // Expected records straight from the text, parsed independently of the recording.
        let lines: Vec<&[u8]> = source
            .split(|&b| b == b'\n')
            .filter(|l| !l.is_empty())
            .collect();
        assert_eq!(summary.records, lines.len() as u64, "{name}");

        let reader = Reader::open(&dst).unwrap();
        assert!(reader.recovery().clean_close, "{name}");
        assert_eq!(reader.header().metadata[0].1, name);
        let got = read_all(&reader);
        assert_eq!(got.len(), lines.len(), "{name}: record count");
        for (i, (rec, line)) in got.iter().zip(&lines).enumerate() {
            let text = std::str::from_utf8(line).unwrap();
            // Independent oracle for the timestamp: the source's seconds field at µs precision.
            let ts_field = match rec.kind {
                RecordKind::Received => text.split(": ").next().unwrap(),
                RecordKind::Opened => text.rsplit(' ').next().unwrap(),
                _ => text.split(' ').nth(2).unwrap().trim_end_matches(':'),
            };
            let (secs, frac) = ts_field.split_once('.').unwrap();
            let us_src: i64 = secs.parse::<i64>().unwrap() * 1_000_000
                + format!("{:0<6}", &frac[..frac.len().min(6)])
                    .parse::<i64>()
                    .unwrap();
            assert_eq!(rec.ts / 1000, us_src, "{name} line {}: timestamp", i + 1);
            let expected_kind = if text.contains(" <-> ") {
                RecordKind::Opened
            } else if text.contains(" <- ") && !text.starts_with(|c: char| c.is_ascii_digit()) {
                RecordKind::Sent
            } else if text.contains(" -> ") && !text.starts_with(|c: char| c.is_ascii_digit()) {
                RecordKind::HttpResponse
            } else {
                RecordKind::Received
            };
            assert_eq!(rec.kind, expected_kind, "{name} line {}", i + 1);
            if rec.kind != RecordKind::Opened {
                let pay = &line[line.windows(2).position(|w| w == b": ").unwrap() + 2..];
                assert_eq!(rec.payload, pay, "{name} line {}: payload bytes", i + 1);
            }
            if let Some(url) = text
                .split(' ')
                .next()
                .filter(|_| rec.kind != RecordKind::Received)
            {
                assert_eq!(
                    reader.stream(rec.stream).unwrap().url,
                    url,
                    "{name} line {}",
                    i + 1
                );
            }
        }

        // And back: byte-identical to the source without its blank lines.
        let mut back = Vec::new();
        let n = convert::recording_to_raw(&reader, &mut back).unwrap();
        assert_eq!(n, lines.len() as u64);
        let mut expected = Vec::new();
        for l in &lines {
            expected.extend_from_slice(l);
            expected.push(b'\n');
        }
        assert!(
            back == expected,
            "{name}: converting back does not reproduce the source"
        );
        assert!(
            reader.blocks().len() > 1 || source.len() < 8 << 10,
            "{name}: expected several blocks"
        );
    }
}

#[test]
fn real_feed_streams_and_time_range_match_the_source() {
    let tmp = Scratch::new("streams");
    let src = Path::new(REAL_FEEDS).join("binance-2021-10-12-rest-snapshots.raw");
    let dst = tmp.path("rest.twr");
    convert_file(&src, &dst, WriterOptions::default());
    let reader = Reader::open(&dst).unwrap();
    let text = fs::read_to_string(&src).unwrap();
    let urls: Vec<&str> = text
        .lines()
        .filter(|l| !l.is_empty())
        .map(|l| l.split(' ').next().unwrap())
        .collect();
    assert_eq!(
        reader.streams().len(),
        urls.len(),
        "one HTTP stream per distinct snapshot URL"
    );
    for (s, u) in reader.streams().iter().zip(&urls) {
        assert_eq!((s.kind, s.url.as_str()), (StreamKind::Http, *u));
    }
    let first = parse_line(text.lines().next().unwrap().as_bytes())
        .unwrap()
        .unwrap()
        .ts;
    let last = parse_line(text.lines().rfind(|l| !l.is_empty()).unwrap().as_bytes())
        .unwrap()
        .unwrap()
        .ts;
    assert_eq!(reader.time_range(), Some((first, last)));
    assert_eq!(reader.header().start_ns, first);
}

#[test]
fn seek_returns_first_record_at_or_after_t_without_reading_earlier_blocks() {
    let tmp = Scratch::new("seek");
    let path = tmp.path("seq.twr");
    let t0 = 1_700_000_000_000_000_000;
    let recs = write_sequence(&path, 20_000, t0, small_blocks());
    for clean in [true, false] {
        if !clean {
            // Cut off the index and trailer: the reader must rebuild the index by walking.
            let end = data_end(&path);
            assert!(end < fs::metadata(&path).unwrap().len());
            fs::OpenOptions::new()
                .write(true)
                .open(&path)
                .unwrap()
                .set_len(end)
                .unwrap();
        }
        let reader = Reader::open(&path).unwrap();
        assert_eq!(reader.recovery().clean_close, clean);
        assert_eq!(reader.recovery().torn_tail, None);
        assert_eq!(
            reader.streams().len(),
            1,
            "stream table survives (clean={clean})"
        );
        let nblocks = reader.blocks().len();
        assert!(nblocks > 50, "want many blocks, got {nblocks}");
        assert_eq!(reader.time_range(), Some((t0, recs.last().unwrap().ts)));

        for (target, want) in [
            (recs[12_345].ts, 12_345usize), // exact hit
            (recs[15_000].ts - 1, 15_000),  // between two records
            (recs[19_999].ts, 19_999),      // the last record
            (t0 - 5, 0),                    // before the start
        ] {
            let before = reader.blocks_read();
            let mut c = reader.seek(target);
            let first = c.next().unwrap().unwrap();
            assert_eq!(first, recs[want], "seek({target}) clean={clean}");
            assert_eq!(c.blocks_read(), 1, "seek must decode only the target block");
            assert_eq!(reader.blocks_read() - before, 1);
            let rest: Vec<Record> = c.map(|r| r.unwrap()).collect();
            assert_eq!(rest.as_slice(), &recs[want + 1..]);
        }
        let mut past = reader.seek(recs.last().unwrap().ts + 1);
        assert!(past.next().is_none());
        assert_eq!(past.blocks_read(), 0);
    }
}

const CHILD_ENV: &str = "TICKWIRE_REC_CRASH_CHILD";

fn now_ns() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_nanos() as i64
}

/// Child role of the crash test: records a record every ~millisecond with the wall clock as
/// timestamp, forever, reporting "seq ts" of its latest append to a side-channel file every
/// 20 ms. Only the parent role below sets the environment that selects this. Exits after
/// 60 s in case the parent died without killing it.
fn crash_child(dir: &Path) -> ! {
    let mut w = Writer::create(
        dir.join("crash.twr"),
        &header("crash"),
        WriterOptions::default(),
    )
    .unwrap();
    let s = w
        .add_stream(
            now_ns(),
            StreamKind::WebSocket,
            "wss://example.invalid/feed",
        )
        .unwrap();
    let mut side = fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(dir.join("progress"))
        .unwrap();
    let mut last_report = Instant::now();
    let started = Instant::now();
    for seq in 0u64.. {
        // Safety net: never outlive a parent that died without killing us.
        if started.elapsed() > Duration::from_secs(60) {
            std::process::exit(3);
        }
        let ts = now_ns();
        w.append(ts, s, RecordKind::Received, &payload(seq))
            .unwrap();
        w.poll().unwrap();
        if last_report.elapsed() >= Duration::from_millis(20) {
            writeln!(side, "{seq} {ts}").unwrap();
            last_report = Instant::now();
        }
        std::thread::sleep(Duration::from_millis(1));
    }
    unreachable!()
}

struct KillOnDrop(std::process::Child);

impl Drop for KillOnDrop {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn last_report(path: &Path) -> Option<(u64, i64)> {
    let text = fs::read_to_string(path).ok()?;
    let (a, b) = text.lines().next_back()?.split_once(' ')?;
    Some((a.parse().ok()?, b.parse().ok()?))
}

fn first_report(path: &Path) -> Option<(u64, i64)> {
    let text = fs::read_to_string(path).ok()?;
    let (a, b) = text.lines().next()?.split_once(' ')?;
    Some((a.parse().ok()?, b.parse().ok()?))
}

#[test]
fn sigkilled_recorder_loses_at_most_the_last_second() {
    if let Ok(dir) = std::env::var(CHILD_ENV) {
        crash_child(Path::new(&dir));
    }
    let tmp = Scratch::new("crash");
    let child = Command::new(std::env::current_exe().unwrap())
        .args([
            "--exact",
            "sigkilled_recorder_loses_at_most_the_last_second",
            "--nocapture",
            "--test-threads=1",
        ])
        .env(CHILD_ENV, &tmp.0)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    // Kills the child even if an assertion below fails first, so no writer is left behind.
    let mut child = KillOnDrop(child);
    // While the child records, probe repeatedly what a SIGKILL at that moment would leave:
    // the file as the OS has it. It must hold every record the child had appended one second
    // before its latest progress report (read before the probe, so the comparison is fair
    // even if this machine stalls the child).
    let started = Instant::now();
    let mut probes = 0;
    let progress_path = tmp.path("progress");
    while started.elapsed() < Duration::from_millis(3000) {
        std::thread::sleep(Duration::from_millis(25));
        let Some((_, reported_ts)) = last_report(&progress_path) else {
            continue;
        };
        let reader = match Reader::open(tmp.path("crash.twr")) {
            Ok(r) => r,
            Err(RecordingError::TruncatedHeader) => continue,
            Err(e) => panic!("probe open: {e}"),
        };
        let on_disk = reader.time_range().map_or(i64::MIN, |(_, max)| max);
        let first = first_report(&progress_path).expect("first report").1;
        if reported_ts - first > 1_000_000_000 {
            assert!(
                reported_ts.saturating_sub(on_disk) <= 1_000_000_000,
                "a kill now would lose {} ms",
                reported_ts.saturating_sub(on_disk) / 1_000_000
            );
            probes += 1;
        }
    }
    assert!(probes > 20, "only {probes} probes after the first second");
    child.0.kill().unwrap(); // SIGKILL on Unix: no destructor, no flush, no finish.
    let kill_ns = now_ns();
    child.0.wait().unwrap();

    let progress = fs::read_to_string(tmp.path("progress")).unwrap();
    let reports: Vec<(u64, i64)> = progress
        .lines()
        .filter_map(|l| {
            let (a, b) = l.split_once(' ')?;
            Some((a.parse().ok()?, b.parse().ok()?))
        })
        .collect();
    let &(_, last_report_ts) = reports.last().expect("child reported progress");
    assert!(
        kill_ns - last_report_ts < 300_000_000,
        "child was still recording when killed"
    );
    // Everything the child had appended one second before the kill must be in the file.
    let must_have = reports
        .iter()
        .filter(|(_, ts)| *ts <= kill_ns - 1_000_000_000)
        .map(|(seq, _)| *seq)
        .max()
        .expect("child ran for more than a second");

    let reader = Reader::open(tmp.path("crash.twr")).unwrap();
    assert!(!reader.recovery().clean_close);
    assert_eq!(reader.streams().len(), 1);
    let recs = read_all(&reader);
    for (i, r) in recs.iter().enumerate() {
        assert_eq!(
            r.payload,
            payload(i as u64),
            "records are complete and in order"
        );
    }
    let last = recs.last().expect("records survived");
    assert!(
        recs.len() as u64 > must_have,
        "file holds {} records, but seq {must_have} was appended over a second before the kill",
        recs.len()
    );
    assert!(
        kill_ns - last.ts <= 1_000_000_000,
        "lost {} ms",
        (kill_ns - last.ts) / 1_000_000
    );
}

/// Writes a recording with several blocks and returns it with its records.
fn corruptible(tmp: &Scratch, name: &str) -> (PathBuf, Vec<Record>) {
    let path = tmp.path(name);
    let recs = write_sequence(&path, 2_000, 1_000_000_000, small_blocks());
    (path, recs)
}

fn records_per_block(reader: &Reader) -> Vec<usize> {
    // One stream definition lives in the first block.
    reader
        .blocks()
        .iter()
        .enumerate()
        .map(|(i, b)| b.record_count as usize - usize::from(i == 0))
        .collect()
}

#[test]
fn flipped_byte_in_a_block_is_a_crc_error_and_other_blocks_still_read() {
    let tmp = Scratch::new("flip");
    let (path, recs) = corruptible(&tmp, "flip.twr");
    let reader = Reader::open(&path).unwrap();
    let per_block = records_per_block(&reader);
    let k = 3;
    let target = reader.blocks()[k].offset + 44 + 17;
    drop(reader);
    let mut bytes = fs::read(&path).unwrap();
    bytes[target as usize] ^= 0x5a;
    fs::write(&path, &bytes).unwrap();

    let reader = Reader::open(&path).unwrap();
    let mut good = Vec::new();
    let mut errors = Vec::new();
    for r in reader.cursor() {
        match r {
            Ok(r) => good.push(r),
            Err(e) => errors.push(e),
        }
    }
    assert_eq!(errors.len(), 1, "{errors:?}");
    match &errors[0] {
        RecordingError::BlockCrc { offset, .. } => assert_eq!(*offset, reader.blocks()[k].offset),
        e => panic!("expected a CRC error, got {e}"),
    }
    let before: usize = per_block[..k].iter().sum();
    let lost = per_block[k];
    assert_eq!(
        &good[..before],
        &recs[..before],
        "earlier blocks read intact"
    );
    assert_eq!(
        &good[before..],
        &recs[before + lost..],
        "later blocks read intact"
    );
}

#[test]
fn damaged_block_header_without_index_is_skipped_by_resync() {
    let tmp = Scratch::new("hdr");
    let (path, recs) = corruptible(&tmp, "hdr.twr");
    let reader = Reader::open(&path).unwrap();
    let per_block = records_per_block(&reader);
    let k = 5;
    let hdr = reader.blocks()[k].offset as usize;
    drop(reader);
    let end = data_end(&path) as usize;
    let mut bytes = fs::read(&path).unwrap();
    bytes.truncate(end); // no index: force the walk
    bytes[hdr + 9] ^= 0xff; // stored_len of block k
    fs::write(&path, &bytes).unwrap();

    let reader = Reader::open(&path).unwrap();
    assert!(!reader.recovery().clean_close);
    assert_eq!(
        reader.recovery().skipped.len(),
        1,
        "{:?}",
        reader.recovery()
    );
    assert_eq!(reader.recovery().skipped[0].0, hdr as u64);
    let got = read_all(&reader);
    let before: usize = per_block[..k].iter().sum();
    assert_eq!(&got[..before], &recs[..before]);
    assert_eq!(&got[before..], &recs[before + per_block[k]..]);
}

#[test]
fn truncated_tail_reads_up_to_the_last_complete_block() {
    let tmp = Scratch::new("trunc");
    let (path, recs) = corruptible(&tmp, "trunc.twr");
    let reader = Reader::open(&path).unwrap();
    let per_block = records_per_block(&reader);
    let blocks = reader.blocks().to_vec();
    drop(reader);
    let full = fs::read(&path).unwrap();
    // Cut in the middle of every one of the last three blocks, and inside a block header.
    for (k, extra) in [
        (blocks.len() - 1, 100),
        (blocks.len() - 2, 44 + 10),
        (blocks.len() - 3, 20),
    ] {
        let cut = blocks[k].offset as usize + extra;
        fs::write(&path, &full[..cut]).unwrap();
        let reader = Reader::open(&path).unwrap();
        let rec = reader.recovery();
        assert!(!rec.clean_close);
        assert_eq!(
            rec.torn_tail,
            Some((blocks[k].offset, extra as u64)),
            "cut {cut}"
        );
        let got = read_all(&reader);
        let want: usize = per_block[..k].iter().sum();
        assert_eq!(got.as_slice(), &recs[..want]);
    }
    // Truncated inside the file header, and not a recording at all.
    fs::write(&path, &full[..20]).unwrap();
    assert!(matches!(
        Reader::open(&path),
        Err(RecordingError::TruncatedHeader)
    ));
    fs::write(&path, b"1618677816.8434298: {\"type\":\"heartbeat\"}\n").unwrap();
    assert!(matches!(
        Reader::open(&path),
        Err(RecordingError::NotARecording)
    ));
    let mut bad_version = full.clone();
    bad_version[8] = 99;
    fs::write(&path, &bad_version).unwrap();
    assert!(matches!(
        Reader::open(&path),
        Err(RecordingError::UnsupportedVersion(99))
    ));
    let mut bad_header = full;
    bad_header[20] ^= 1;
    fs::write(&path, &bad_header).unwrap();
    assert!(matches!(
        Reader::open(&path),
        Err(RecordingError::CorruptHeader(_))
    ));
}

#[test]
fn every_truncation_point_opens_or_errors_without_panicking() {
    let tmp = Scratch::new("everycut");
    let path = tmp.path("small.twr");
    let recs = write_sequence(
        &path,
        300,
        5,
        WriterOptions {
            block_bytes: 1 << 10,
            ..WriterOptions::default()
        },
    );
    let full = fs::read(&path).unwrap();
    // magic(8) version(2) reserved(2) body_len(4) body crc(4)
    let data_start = 20 + u32::from_le_bytes(full[12..16].try_into().unwrap()) as usize;
    let mut prev_count = 0;
    for cut in 0..full.len() {
        fs::write(&path, &full[..cut]).unwrap();
        match Reader::open(&path) {
            Ok(r) => {
                let got = read_all(&r);
                assert_eq!(
                    got.as_slice(),
                    &recs[..got.len()],
                    "cut {cut}: a prefix of the records"
                );
                assert!(
                    got.len() >= prev_count,
                    "cut {cut}: longer files never read fewer records"
                );
                prev_count = got.len();
            }
            Err(e) => assert!(cut < data_start, "cut {cut}: {e}"),
        }
    }
    assert_eq!(prev_count, recs.len());
}

#[test]
fn merge_is_in_timestamp_order_and_stable_on_ties() {
    let tmp = Scratch::new("merge");
    let a = tmp.path("a.twr");
    let b = tmp.path("b.twr");
    // a: 0, 10, 20, ..., b: 5, 10, 15, 20, ... ; equal stamps every 10 ns, and a within-file
    // tie (two records at 1000 in b).
    let mk = |path: &Path, stamps: &[i64], tag: &str| {
        let mut w = Writer::create(path, &header(tag), small_blocks()).unwrap();
        let s = w.add_stream(0, StreamKind::WebSocket, tag).unwrap();
        for (i, ts) in stamps.iter().enumerate() {
            w.append(*ts, s, RecordKind::Received, format!("{tag}{i}").as_bytes())
                .unwrap();
        }
        w.finish().unwrap();
    };
    let sa: Vec<i64> = (0..500).map(|i| i * 10).collect();
    let mut sb: Vec<i64> = (1..1000).map(|i| i * 5).collect();
    sb.insert(200, 1000);
    mk(&a, &sa, "a");
    mk(&b, &sb, "b");
    let ra = Reader::open(&a).unwrap();
    let rb = Reader::open(&b).unwrap();

    let mut merge = Merge::new(vec![ra.cursor(), rb.cursor()]);
    let mut got: Vec<(i64, usize, String)> = Vec::new();
    while let Some(m) = merge.next_ref() {
        let m = m.unwrap();
        got.push((
            m.record.ts,
            m.source,
            String::from_utf8(m.record.payload.to_vec()).unwrap(),
        ));
    }
    // Oracle: a stable sort by timestamp of a's records followed by b's.
    let mut want: Vec<(i64, usize, String)> = sa
        .iter()
        .enumerate()
        .map(|(i, t)| (*t, 0, format!("a{i}")))
        .chain(sb.iter().enumerate().map(|(i, t)| (*t, 1, format!("b{i}"))))
        .collect();
    want.sort_by_key(|w| w.0);
    assert_eq!(got, want);

    // Merging from a time skips the earlier part of both inputs.
    let mut merge = Merge::new(vec![ra.seek(2_000), rb.seek(2_000)]);
    let first = merge.next_ref().unwrap().unwrap();
    assert_eq!((first.record.ts, first.source), (2_000, 0));
}

#[test]
fn merge_of_real_venues_interleaves_every_record_in_order() {
    let tmp = Scratch::new("merge-real");
    let files = real_feed_files();
    let mut readers = Vec::new();
    let mut total = 0;
    for src in files.iter().filter(|p| {
        let n = p.file_name().unwrap().to_string_lossy();
        n.starts_with("kraken-2021-04-17-book") || n.starts_with("coinbase")
    }) {
        let dst = tmp.path(&format!(
            "{}.twr",
            src.file_name().unwrap().to_string_lossy()
        ));
        total += convert_file(src, &dst, small_blocks()).records;
        readers.push(Reader::open(&dst).unwrap());
    }
    assert_eq!(readers.len(), 2);
    let mut merge = Merge::new(readers.iter().map(|r| r.cursor()).collect());
    let mut n = 0u64;
    let mut last = i64::MIN;
    let mut per_source = [0u64; 2];
    while let Some(m) = merge.next_ref() {
        let m = m.unwrap();
        assert!(m.record.ts >= last, "out of order at record {n}");
        last = m.record.ts;
        per_source[m.source] += 1;
        n += 1;
    }
    assert_eq!(n, total);
    assert!(per_source.iter().all(|&c| c > 0));
}

#[test]
fn writer_rejects_undeclared_streams_and_flushes_on_poll() {
    let tmp = Scratch::new("poll");
    let path = tmp.path("poll.twr");
    let mut w = Writer::create(
        &path,
        &header("poll"),
        WriterOptions {
            max_delay: Duration::from_millis(50),
            ..WriterOptions::default()
        },
    )
    .unwrap();
    assert!(matches!(
        w.append(1, 0, RecordKind::Received, b"x"),
        Err(RecordingError::UnknownStream(0))
    ));
    let s = w
        .add_stream(1, StreamKind::Socket, "itch://127.0.0.1:9000")
        .unwrap();
    w.append(2, s, RecordKind::Received, b"\x00\x0bA\x01\x02binary")
        .unwrap();
    assert!(!w.poll().unwrap(), "not due yet");
    assert_eq!(Reader::open(&path).unwrap().blocks().len(), 0);
    std::thread::sleep(Duration::from_millis(60));
    assert!(w.poll().unwrap(), "due after max_delay");
    // Readable while the writer is still open (no index yet).
    let r = Reader::open(&path).unwrap();
    assert_eq!(read_all(&r)[0].payload, b"\x00\x0bA\x01\x02binary");
    assert_eq!(r.streams()[0].kind, StreamKind::Socket);
    let summary = w.finish().unwrap();
    assert_eq!((summary.records, summary.blocks), (1, 1));
    assert_eq!(summary.file_bytes, fs::metadata(&path).unwrap().len());
}

#[test]
fn converter_reports_bad_lines_with_their_number() {
    let tmp = Scratch::new("badline");
    let input = b"wss://x <-> 1.5\n1.25: {}\nwss://x <~ 2.0: {}\n";
    let err = convert::raw_to_recording(
        &input[..],
        tmp.path("x.twr"),
        header("x"),
        WriterOptions::default(),
    )
    .unwrap_err();
    assert!(
        matches!(err, RecordingError::Parse { line: 3, .. }),
        "{err}"
    );
    assert!(
        parse_line(b"1.1234567891: {}").is_err(),
        "sub-ns precision is refused"
    );
    assert!(parse_line(b"12a.5: {}").is_err());
    assert_eq!(parse_line(b"  ").unwrap(), None);
}

#[test]
fn handles_can_move_into_actors() {
    // The server gives each replay its own cursor inside an actor and records from an actor:
    // these types must be Send (and the shared reader Sync). A compile-time check.
    fn send<T: Send + 'static>() {}
    fn sync<T: Sync>() {}
    send::<Writer>();
    send::<Reader>();
    sync::<Reader>();
    send::<tickwire_feeds::recording::Cursor>();
    send::<Merge>();
    send::<RecordingError>();
    sync::<RecordingError>();
}

#[test]
fn any_single_corrupted_byte_is_reported_or_harmless_never_a_panic() {
    let tmp = Scratch::new("everyflip");
    let path = tmp.path("small.twr");
    let recs = write_sequence(
        &path,
        200,
        5,
        WriterOptions {
            block_bytes: 1 << 10,
            ..WriterOptions::default()
        },
    );
    let full = fs::read(&path).unwrap();
    let mut detected = 0;
    for i in 0..full.len() {
        let mut bytes = full.clone();
        bytes[i] ^= 0xff;
        fs::write(&path, &bytes).unwrap();
        let Ok(reader) = Reader::open(&path) else {
            detected += 1;
            continue;
        };
        let mut got = Vec::new();
        let mut errors = 0;
        for r in reader.cursor() {
            match r {
                Ok(r) => got.push(r),
                Err(_) => errors += 1,
            }
        }
        // Whatever is returned is genuine: the surviving records in their original order.
        let mut it = recs.iter();
        for g in &got {
            assert!(
                it.any(|r| r == g),
                "byte {i}: record {g:?} was never written"
            );
        }
        if errors > 0 || got.len() < recs.len() || !reader.recovery().clean_close {
            detected += 1;
        }
    }
    // Every byte is covered by a magic, a length checked against its neighbours or a CRC, except
    // the reserved bytes the format tells readers to ignore.
    assert!(
        detected + 8 >= full.len(),
        "only {detected} of {} corruptions noticed",
        full.len()
    );
}

#[test]
fn streams_declared_late_are_recovered_by_the_walk_and_text_round_trip_keeps_every_kind() {
    let tmp = Scratch::new("late-streams");
    let path = tmp.path("late.twr");
    let mut w = Writer::create(&path, &header("late"), small_blocks()).unwrap();
    let ws = w
        .add_stream(0, StreamKind::WebSocket, "wss://a.invalid/ws")
        .unwrap();
    let mut written = Vec::new();
    let mut push = |w: &mut Writer, ts: i64, s: u32, kind: RecordKind, p: &[u8]| {
        w.append(ts, s, kind, p).unwrap();
        written.push(Record {
            ts,
            stream: s,
            kind,
            payload: p.to_vec(),
        });
    };
    push(&mut w, 1_000, ws, RecordKind::Opened, b"");
    for i in 0..400 {
        push(
            &mut w,
            2_000 + i,
            ws,
            RecordKind::Received,
            &payload(i as u64),
        );
    }
    // A REST snapshot and a reconnect to a new URL, several blocks into the file.
    let rest = w
        .add_stream(5_000, StreamKind::Http, "https://a.invalid/depth?symbol=X")
        .unwrap();
    push(
        &mut w,
        5_001,
        rest,
        RecordKind::HttpResponse,
        br#"{"lastUpdateId":1}"#,
    );
    push(
        &mut w,
        5_002,
        ws,
        RecordKind::Closed,
        b"1006 abnormal closure",
    );
    let ws2 = w
        .add_stream(5_003, StreamKind::WebSocket, "wss://b.invalid/ws")
        .unwrap();
    push(&mut w, 5_003, ws2, RecordKind::Opened, b"");
    push(
        &mut w,
        5_004,
        ws2,
        RecordKind::Sent,
        br#"{"op":"subscribe"}"#,
    );
    for i in 0..400 {
        push(
            &mut w,
            6_000 + i,
            ws2,
            RecordKind::Received,
            &payload(i as u64),
        );
    }
    let streams = w.streams().to_vec();
    w.flush().unwrap();
    drop(w); // no finish: no index, the reader must walk

    let reader = Reader::open(&path).unwrap();
    assert!(!reader.recovery().clean_close);
    assert!(reader.blocks().len() > 5);
    assert_eq!(reader.streams(), streams.as_slice());
    // Seeking past the definitions still knows every stream.
    let after = reader.seek(6_100).next().unwrap().unwrap();
    assert_eq!(
        reader.stream(after.stream).unwrap().url,
        "wss://b.invalid/ws"
    );
    assert_eq!(read_all(&reader), written);

    // Recording -> text -> recording keeps every record, Closed and its reason included.
    let mut text = Vec::new();
    convert::recording_to_raw(&reader, &mut text).unwrap();
    let again = tmp.path("again.twr");
    convert::raw_to_recording(&text[..], &again, header("late"), small_blocks()).unwrap();
    let back = read_all(&Reader::open(&again).unwrap());
    let strip = |v: &[Record]| -> Vec<(i64, RecordKind, Vec<u8>)> {
        v.iter()
            .map(|r| (r.ts, r.kind, r.payload.clone()))
            .collect()
    };
    assert_eq!(strip(&back), strip(&written));
}
