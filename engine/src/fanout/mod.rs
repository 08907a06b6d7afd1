//! The publish path from book actors to client sessions.
//!
//! ```text
//!  book actor ──publish──▶ Hub ──(one lock-free queue per server worker)──▶ Router
//!  (any thread)            │ last values in ArcSwap                          │ (worker thread)
//!                          └──────────── read on subscribe ─────────────────┤
//!                                                                            ▼
//!                                                       Outbox per session (conflation,
//!                                                       throttle, slow-consumer bound)
//!                                                                            │
//!                                                                 transport pulls frames
//! ```
//!
//! * [`hub`]: cross-thread part, one queue push per interested worker per tick.
//! * [`router`]: per-worker part, one outbox offer per local subscriber.
//! * [`outbox`]: per-session bounded buffer.
//! * [`streams`]: compression windows shared by the sessions that receive the same stream.

pub mod hub;
pub mod outbox;
pub mod router;
pub mod streams;

pub use hub::{Hub, LastValues};
pub use outbox::{CloseReason, Offer, Outbox, OutboxLimits, OutboxStats};
pub use router::{Router, SessionId, SharedOutbox, SubscribeSpec, MAX_DEPTH};
pub use streams::{StreamConfig, StreamSpec, StreamStats};
