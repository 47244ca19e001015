//! The app's output as JSON lines: line splitting (split.rs), encoding
//! (json.rs), berth's own events (events.rs), the stdout buffer (out.rs)
//! and what a flood grows and gives back (flood.rs).

pub mod events;
pub mod flood;
pub mod json;
pub mod out;
pub mod split;
