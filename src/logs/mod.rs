//! The app's output as JSON lines: line splitting (split.rs), encoding
//! (json.rs), berth's own events (events.rs) and the stdout buffer (out.rs).

pub mod events;
pub mod json;
pub mod out;
pub mod split;
