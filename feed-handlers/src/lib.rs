//! placeholder
pub mod inspect;
pub mod itch;
pub mod live;
pub mod rawfile;
pub mod venues;
