//! berth's entry point: everything happens in `berth::main`, which returns
//! the exit code; this file only hands it to the process.

use std::process::ExitCode;

fn main() -> ExitCode {
    ExitCode::from(berth::main())
}
