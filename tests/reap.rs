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

/// utime + stime of `pid`, in clock ticks (/proc/PID/stat fields 14, 15).
fn cpu_ticks(pid: i32) -> u64 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap();
    let after_comm = &stat[stat.rfind(')').unwrap() + 2..];
    let fields: Vec<&str> = after_comm.split(' ').collect();
    // After the comm: state is field 3, so utime (14) is index 11.
    fields[11].parse::<u64>().unwrap() + fields[12].parse::<u64>().unwrap()
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

/// With 5,000 live children, one walk of the children list (waitpid(-1))
/// takes a hundred microseconds or more and berth paces the walks, while
/// 2,000 orphans die over 300 ms and SIGCHLDs merge. Every zombie must
/// still go while the app lingers and nothing else wakes berth (a delayed
/// walk runs on its own), and berth must not spin once they are gone.
#[test]
fn zombies_go_while_thousands_of_children_live() {
    let r = Berth::new()
        .app(
            "orphans",
            &["2000", "--live", "5000", "--spread", "300", "--linger", "8"],
        )
        .spawn();
    r.wait_for("released 2000");
    let berth = r.berth_pid();
    let deadline = Instant::now() + Duration::from_secs(5);
    let mut zombies;
    loop {
        zombies = zombies_under(berth);
        if zombies == 0 || Instant::now() > deadline {
            break;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    assert_eq!(zombies, 0, "zombies left while the app lingers");
    let live = descendants_of(berth).len();
    assert!(live > 5000, "the live orphans are still there: {live}");
    let busy = cpu_ticks(berth);
    std::thread::sleep(Duration::from_millis(1000));
    let spent = cpu_ticks(berth) - busy;
    assert!(
        spent <= 5,
        "berth used {spent} ticks of CPU in 1 s with nothing to do"
    );
    // When the app exits its 5,000 orphans follow; berth reaps them all.
    assert_eq!(r.wait().code, 0);
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
