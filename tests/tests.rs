//! berth's integration tests: the real binary, as PID 1 of a fresh PID
//! namespace or as a subreaper, driving the example apps in examples/.
//! One module per concern; tests are named for the behaviour they prove.

mod util;

mod cli;
mod dns;
mod docker;
mod docker_prepare;
mod drill;
mod engines;
mod grpc;
mod health;
mod hostile;
mod http;
mod kubernetes;
mod logs;
mod reap;
mod rolling;
mod run;
mod runtimes;
mod secrets;
mod security;
mod shutdown;
mod signals;
mod templates;
mod user;
mod wait;
