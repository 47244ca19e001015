//! Test app for the "why 137?" answer: allocates memory 1 MiB at a time and
//! touches every page, so a container with `--memory` has its OOM killer
//! kill it. Prints `ready`, then `allocated N MiB` every 16 MiB; stops at
//! `MAX_MIB` (default 512: bounded even with no limit), prints `survived`
//! and exits 0.
//! Usage: memhog [MAX_MIB]

use std::io::Write;

const PAGE: usize = 4096;
const MIB: usize = 1 << 20;

fn main() {
    let max_mib: usize = std::env::args()
        .nth(1)
        .map(|a| a.parse().expect("memhog: MAX_MIB must be a number"))
        .unwrap_or(512);
    let mut out = std::io::stdout();
    writeln!(out, "ready").unwrap();
    out.flush().unwrap();
    let mut kept: Vec<Vec<u8>> = Vec::with_capacity(max_mib);
    for n in 1..=max_mib {
        let mut chunk = vec![0u8; MIB];
        // Touch every page: untouched pages of a zeroed allocation are not
        // resident and would never count against the limit.
        for i in (0..MIB).step_by(PAGE) {
            chunk[i] = n as u8 | 1;
        }
        kept.push(std::hint::black_box(chunk));
        if n % 16 == 0 {
            writeln!(out, "allocated {n} MiB").unwrap();
            out.flush().unwrap();
        }
    }
    writeln!(out, "survived").unwrap();
}
