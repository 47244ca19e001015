//! Reaping: every zombie, whoever its parent was, as PID 1 and as a subreaper.

use std::time::{Duration, Instant};

use crate::util::{descendants_of, state_of, Berth};

fn zombies_under(pid: i32) -> usize {
    descendants_of(pid)
        .into_iter()
        .filter(|&p| state_of(p) == Some('Z'))
        .count()
}

fn wait_no_zombies(berth: i32) -> usize {
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let z = zombies_under(berth);
        if z == 0 || Instant::now() > deadline {
            return z;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

#[test]
fn ten_thousand_orphans_leave_no_zombie_as_pid1() {
    let r = Berth::new()
        .app("orphans", &["10000", "--linger", "3"])
        .spawn();
    r.wait_for("released 10000");
    let berth = r.berth_pid();
    assert_eq!(wait_no_zombies(berth), 0, "zombies left under berth");
    let d = r.wait();
    assert_eq!(d.code, 0);
}

#[test]
fn orphans_are_reaped_by_a_subreaper_berth() {
    let r = Berth::new()
        .not_pid1()
        .app("orphans", &["200", "--linger", "3"])
        .spawn();
    r.wait_for("released 200");
    let berth = r.berth_pid();
    assert_eq!(wait_no_zombies(berth), 0);
    assert_eq!(r.wait().code, 0);
}
