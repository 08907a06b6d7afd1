//! Replays in the server: the replay as the served feed (`serve --replay`, the bundled day),
//! per-client replays over the WebSocket, the dataset catalog and the HTTP replay.
//!
//! | file | owns |
//! |---|---|
//! | [`bundled`] | the bundled market day, embedded in the binary |
//! | [`feed`] | `FeedChoice::Replay` → a `ReplayAdapter` |
//! | [`record`] | `serve --record`: the served feed's raw upstream into a recording |

pub mod bundled;
pub mod feed;
pub mod record;
