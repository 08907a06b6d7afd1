//! Decoding a recording's next blocks on a second thread while the current one is consumed.
//!
//! Reading a block costs a positional read, a CRC and, above all, zstd decompression: for
//! a binary feed such as ITCH that is as much as a third of a full-speed replay. The codec
//! works per block, so nothing stops another core from decoding block N+1 while the
//! consumer walks the records of block N. [`ReadAhead`] is that thread: it decodes the
//! blocks of a reader in index order, from a given block on, into a bounded channel
//! ([`DEPTH`] blocks ahead, so memory stays a few blocks whatever the consumer's pace), and
//! takes spent buffers back so that no block allocates in the steady state.
//!
//! Each block's result, decoded bytes or the error, is produced by the very function the
//! single-threaded path uses (`reader::decode_block`), so a damaged block is
//! reported identically, at the same point of the stream.
//!
//! The thread ends when its [`ReadAhead`] is dropped: the consumer's end of the channel
//! goes first, so a thread blocked on a full channel wakes up with an error, and the drop
//! then joins it (at most one block's decoding away).

use std::sync::mpsc::{self, Receiver, Sender, SyncSender};
use std::thread::JoinHandle;

use super::reader::{decode_block, Reader};
use super::RecordingError;

/// Decoded blocks the thread may hold ready beyond the one the consumer is reading.
pub const DEPTH: usize = 2;

/// A block as the thread hands it over: its raw record bytes, or why it is unreadable.
type Block = Result<Vec<u8>, RecordingError>;

/// See the module documentation.
pub struct ReadAhead {
    blocks: Option<Receiver<Block>>,
    spent: Sender<Vec<u8>>,
    thread: Option<JoinHandle<()>>,
}

impl ReadAhead {
    /// Starts decoding the blocks of `reader` from index entry `first_block` on.
    pub fn start(reader: Reader, first_block: usize) -> std::io::Result<ReadAhead> {
        let (tx, blocks) = mpsc::sync_channel(DEPTH);
        let (spent, spare) = mpsc::channel();
        let thread = std::thread::Builder::new()
            .name("recording-read-ahead".into())
            .stack_size(256 << 10)
            .spawn(move || decode_blocks(&reader, first_block, &tx, &spare))?;
        Ok(ReadAhead {
            blocks: Some(blocks),
            spent,
            thread: Some(thread),
        })
    }

    /// The next block, in index order, swapped into `raw` (whose old buffer goes back to
    /// the thread for reuse). On an error `raw` is left empty.
    pub fn next_into(&mut self, raw: &mut Vec<u8>) -> Result<(), RecordingError> {
        let block = match self.blocks.as_ref().map(Receiver::recv) {
            Some(Ok(block)) => block,
            // The thread only stops early if it panicked.
            _ => Err(RecordingError::Io(std::io::Error::other(
                "the read-ahead thread stopped",
            ))),
        };
        match block {
            Ok(mut bytes) => {
                std::mem::swap(raw, &mut bytes);
                // The thread may be gone already (it ends after the last block).
                let _ = self.spent.send(bytes);
                Ok(())
            }
            Err(e) => {
                raw.clear();
                Err(e)
            }
        }
    }
}

impl Drop for ReadAhead {
    fn drop(&mut self) {
        self.blocks = None;
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// The thread's body: every block from `first_block` on, until the consumer hangs up.
fn decode_blocks(
    reader: &Reader,
    first_block: usize,
    tx: &SyncSender<Block>,
    spare: &Receiver<Vec<u8>>,
) {
    let mut stored = Vec::new();
    let mut dec = None;
    for entry in reader.blocks().iter().skip(first_block) {
        let mut raw = spare.try_recv().unwrap_or_default();
        let block =
            decode_block(reader, entry.offset, &mut stored, &mut raw, &mut dec).map(|()| raw);
        if tx.send(block).is_err() {
            return;
        }
    }
}

#[cfg(test)]
mod tests {
    use std::path::PathBuf;

    use crate::recording::{Header, Reader, RecordKind, StreamKind, Writer, WriterOptions};

    /// A finished recording of `n` records in blocks of ~4 KiB (dozens of blocks).
    fn recording(name: &str, n: u64) -> PathBuf {
        let path = std::env::temp_dir().join(format!(
            "tickwire-read-ahead-{}-{name}.twrec",
            std::process::id()
        ));
        let opts = WriterOptions {
            block_bytes: 4 << 10,
            ..WriterOptions::default()
        };
        let mut w = Writer::create(&path, &Header::default(), opts).unwrap();
        let s = w.add_stream(0, StreamKind::Socket, "test://").unwrap();
        for i in 0..n {
            let payload = format!("record {i} {}", "x".repeat((i % 40) as usize));
            w.append(i as i64 * 1000, s, RecordKind::Received, payload.as_bytes())
                .unwrap();
        }
        w.finish().unwrap();
        path
    }

    /// Every record and error of a cursor, as text.
    fn transcript(cursor: crate::recording::Cursor) -> Vec<String> {
        cursor
            .map(|r| match r {
                Ok(r) => format!("{} {:?}", r.ts, String::from_utf8_lossy(&r.payload)),
                Err(e) => format!("error: {e}"),
            })
            .collect()
    }

    #[test]
    fn same_records_and_errors_as_a_plain_cursor() {
        let path = recording("damaged", 5_000);
        let reader = Reader::open(&path).unwrap();
        assert!(
            reader.blocks().len() > 10,
            "{} blocks",
            reader.blocks().len()
        );
        // A flipped payload byte (a CRC error) in one block, the next block's header wrecked.
        let mut bytes = std::fs::read(&path).unwrap();
        bytes[reader.blocks()[3].offset as usize + 44 + 17] ^= 0x5a;
        bytes[reader.blocks()[6].offset as usize + 4] = 9;
        std::fs::write(&path, &bytes).unwrap();

        let reader = Reader::open(&path).unwrap();
        let plain = transcript(reader.cursor());
        let blocks_plain = reader.blocks_read();
        let ahead = transcript(reader.read_ahead_cursor());
        assert_eq!(plain.iter().filter(|l| l.starts_with("error")).count(), 2);
        assert_eq!(plain, ahead);
        assert_eq!(
            reader.blocks_read(),
            2 * blocks_plain,
            "decoded blocks counted alike"
        );
        let _ = std::fs::remove_file(path);
    }

    #[test]
    fn dropping_the_cursor_mid_file_ends_the_thread() {
        let path = recording("drop", 20_000);
        let reader = Reader::open(&path).unwrap();
        let mut c = reader.read_ahead_cursor();
        for _ in 0..10 {
            c.next_ref().unwrap().unwrap();
        }
        // The thread is blocked on its full channel; dropping wakes and joins it.
        drop(c);
        let mut only_first = reader.read_ahead_cursor();
        let first = only_first.next_ref().unwrap().map(|r| r.ts);
        assert!(matches!(first, Ok(0)), "{first:?}");
        let _ = std::fs::remove_file(path);
    }

    #[test]
    fn a_block_that_does_not_decompress_is_reported_alike() {
        let path = recording("zstd", 3_000);
        let reader = Reader::open(&path).unwrap();
        let block = reader.blocks()[2].offset as usize;
        drop(reader);
        // Garble the zstd frame, then fix both checksums so that only decompression fails.
        let mut bytes = std::fs::read(&path).unwrap();
        let stored = u32::from_le_bytes(bytes[block + 8..block + 12].try_into().unwrap());
        let payload = block + 44..block + 44 + stored as usize;
        bytes[payload.start + 4..payload.end].fill(0xff);
        let crc = crc32fast::hash(&bytes[payload]);
        bytes[block + 36..block + 40].copy_from_slice(&crc.to_le_bytes());
        let crc = crc32fast::hash(&bytes[block..block + 40]);
        bytes[block + 40..block + 44].copy_from_slice(&crc.to_le_bytes());
        std::fs::write(&path, &bytes).unwrap();

        let reader = Reader::open(&path).unwrap();
        let plain = transcript(reader.cursor());
        let errors: Vec<_> = plain.iter().filter(|l| l.starts_with("error")).collect();
        assert_eq!(errors.len(), 1, "{errors:?}");
        assert!(errors[0].contains("zstd"), "{errors:?}");
        assert_eq!(plain, transcript(reader.read_ahead_cursor()));
        let _ = std::fs::remove_file(path);
    }
}
