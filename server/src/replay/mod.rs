//! Replays in the server: the replay as the served feed (`serve --replay`, the bundled day),
//! per-client replays over the WebSocket, the dataset catalog and the HTTP replay.
//!
//! | file | owns |
//! |---|---|
//! | [`bundled`] | the bundled market day, embedded in the binary |
//! | [`feed`] | `FeedChoice::Replay` → a `ReplayAdapter` |
//! | [`catalog`] | the datasets (`GET /datasets`) |
//! | [`limits`] | concurrent replays per user and in total |
//! | [`protocol`] | `replay` requests and replay messages |
//! | [`service`] | catalog, limits and the replay thread pool, shared by all replays |
//! | [`session`] | per-client private replays on the WebSocket |
//! | [`http`] | `GET /datasets`, `GET /replay` (NDJSON) |
//! | [`record`] | `serve --record`: the served feed's raw upstream into a recording |

pub mod bundled;
pub mod catalog;
pub mod feed;
pub mod http;
pub mod limits;
pub mod protocol;
pub mod record;
pub mod service;
pub mod session;
