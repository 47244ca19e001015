#!/usr/bin/env python3
"""How often a process caught right after execve holds an fd of its own
start-up: the cause of issue 22's stray fd 4 (util::fds_once_started).

Starts `sleep 30` N times, polls /proc/PID/comm until the exec is done
(comm is "sleep"), then lists /proc/PID/fd at once, as the
socket-activation test did. Any fd the parent did not hand down is the
dynamic loader or libc opening ld.so.cache, libc.so.6 or locale files at
the lowest free number. Run it beside two busy loops (the load of a
qemu-aarch64 test run) to see it often:

    for i in 1 2; do timeout 60 sh -c 'while :; do :; done' & done
    python3 tests/exec_fd_race.py 2000
"""
import collections
import os
import sys

runs = int(sys.argv[1]) if len(sys.argv) > 1 else 2000


def is_open(fd):
    try:
        os.fstat(fd)
        return True
    except OSError:
        return False


# What the parent hands down (not the fd that listed the directory).
inherited = {int(f) for f in os.listdir("/proc/self/fd") if is_open(int(f))}
seen = collections.Counter()
for _ in range(runs):
    pid = os.fork()
    if pid == 0:
        os.execvp("sleep", ["sleep", "30"])
    while True:
        try:
            if open(f"/proc/{pid}/comm").read() == "sleep\n":
                break
        except FileNotFoundError:
            pass
    for f in os.listdir(f"/proc/{pid}/fd"):
        if int(f) in inherited:
            continue
        try:
            seen[(int(f), os.readlink(f"/proc/{pid}/fd/{f}"))] += 1
        except OSError:
            pass
    os.kill(pid, 9)
    os.waitpid(pid, 0)
caught = sum(seen.values())
print(f"{runs} fresh sleeps, {caught} caught holding a start-up fd:")
for (fd, target), n in seen.most_common():
    print(f"  fd {fd} -> {target}: {n}")
