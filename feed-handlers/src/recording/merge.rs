//! Merging several recordings into one timestamp-ordered stream.
//!
//! Replaying several venues together means interleaving their recordings by receive time.
//! [`Merge`] holds one [`Cursor`] per input and, at each step, yields the head with the
//! smallest timestamp; ties go to the input listed first, and records of one input keep their
//! file order, so the merge is stable and deterministic. The number of inputs is small (one
//! per venue), so a linear scan of the heads beats a heap; each step only peeks, which costs
//! nothing for heads that are already decoded. A single input (the common replay of one
//! file) skips the comparison and takes the cursor's own per-record fast path.

use super::reader::{Cursor, RecordRef};
use super::RecordingError;

/// A record from a [`Merge`], tagged with the index of the input it came from.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct MergedRecord<'a> {
    /// Index of the input cursor (in the order given to [`Merge::new`]).
    pub source: usize,
    /// The record.
    pub record: RecordRef<'a>,
}

/// K-way merge of cursors by timestamp, stable on ties.
pub struct Merge {
    cursors: Vec<Cursor>,
    done: Vec<bool>,
    /// A damaged block met by [`Merge::peek_ts`], reported by the next `next_ref`.
    pending: Option<(usize, RecordingError)>,
}

impl Merge {
    /// Merges `cursors` (e.g. `readers.iter().map(|r| r.seek(from))`).
    pub fn new(cursors: Vec<Cursor>) -> Merge {
        let done = vec![false; cursors.len()];
        Merge {
            cursors,
            done,
            pending: None,
        }
    }

    /// The input cursors.
    pub fn cursors(&self) -> &[Cursor] {
        &self.cursors
    }

    /// The timestamp of the record [`Merge::next_ref`] returns next, without consuming it
    /// (`None` at the end). A damaged block shows as `Some` of the next readable record's
    /// time once `next_ref` has reported it.
    pub fn peek_ts(&mut self) -> Option<i64> {
        if self.pending.is_some() {
            return Some(i64::MIN);
        }
        let mut best: Option<i64> = None;
        for (i, c) in self.cursors.iter_mut().enumerate() {
            if self.done[i] {
                continue;
            }
            match c.peek_ts() {
                None => self.done[i] = true,
                // Kept for `next_ref`, and ordered first so that it surfaces now.
                Some(Err(e)) => {
                    self.pending = Some((i, e));
                    return Some(i64::MIN);
                }
                Some(Ok(ts)) => best = Some(best.map_or(ts, |b| b.min(ts))),
            }
        }
        best
    }

    /// The next record in timestamp order. An `Err` reports a damaged block of one input
    /// (tagged with that input's index); the merge continues on the next call.
    #[inline]
    pub fn next_ref(&mut self) -> Option<Result<MergedRecord<'_>, (usize, RecordingError)>> {
        if let Some(e) = self.pending.take() {
            return Some(Err(e));
        }
        if self.cursors.len() == 1 {
            return Some(match self.cursors[0].next_ref()? {
                Ok(record) => Ok(MergedRecord { source: 0, record }),
                Err(e) => Err((0, e)),
            });
        }
        let mut best: Option<(i64, usize)> = None;
        for (i, c) in self.cursors.iter_mut().enumerate() {
            if self.done[i] {
                continue;
            }
            match c.peek_ts() {
                None => self.done[i] = true,
                Some(Err(e)) => return Some(Err((i, e))),
                Some(Ok(ts)) => {
                    let better = match best {
                        None => true,
                        Some((b, _)) => ts < b,
                    };
                    if better {
                        best = Some((ts, i));
                    }
                }
            }
        }
        let (_, i) = best?;
        match self.cursors[i].next_ref()? {
            Ok(record) => Some(Ok(MergedRecord { source: i, record })),
            Err(e) => Some(Err((i, e))),
        }
    }
}
