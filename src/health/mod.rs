//! Health: target parsing ([`target`]), names to addresses through
//! /etc/hosts and DNS ([`resolve`]), one
//! bounded HTTP/TCP/gRPC probe ([`probe`], the gRPC call in [`grpc`] over
//! [`h2`] framing and [`hpack`] headers) shared by `berth probe` and the
//! supervised checks, and the supervised schedule and state ([`monitor`]).
//!
//! Everything here is std only and bounded by one overall deadline, so the
//! probe runs from a static binary in a distroless/scratch image.

#![cfg_attr(not(test), deny(clippy::unwrap_used, clippy::expect_used))]

pub mod child;
pub mod grpc;
pub mod h2;
pub mod hpack;
mod io;
pub mod monitor;
pub mod probe;
pub mod resolve;
pub mod target;
pub mod wait;
