//! # Replay: recorded market days served again
//!
//! * [`source`]: [`ReplaySource`], recordings merged in time order through their venues'
//!   decoders into normalized events (no engine, no clock: what benchmarks, `inspect` and
//!   the HTTP replay use).
//! * [`adapter`]: [`ReplayAdapter`], a [`FeedAdapter`](tickwire_engine::FeedAdapter) that
//!   plays a source through the engine at a speed, over a time range, looping, with
//!   pause/resume/seek/speed commands and flow control.
//! * [`clock`]: [`Speed`] and [`ReplayClock`] (recorded time → wall-clock deadlines);
//!   [`timer`]: the sub-millisecond sleep that pacing uses.
//! * [`books`]: the replay's own books, for starting mid-day and seeking.
//! * [`time`]: times as RFC 3339 or integer nanoseconds.

pub mod adapter;
pub mod books;
pub mod clock;
pub mod source;
pub mod time;
pub mod timer;

pub use adapter::{
    Notice, NoticeSink, Progress, ReplayAdapter, ReplayCommand, ReplayControl, ReplayOptions,
};
pub use books::LocalBooks;
pub use clock::{ReplayClock, Speed};
pub use source::{learn_instruments, ReplayError, ReplaySource, Step, StepError};
pub use time::{format_rfc3339, parse_time};
