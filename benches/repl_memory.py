#!/usr/bin/env python3
"""Memory of a REPL held open for many turns: drives `memchat --mock` in a
pseudo-terminal, one line per turn, and reads the process's resident memory
(/proc/PID/status) after 10, 100, 500 and 1,000 turns.

Usage: repl_memory.py MEMCHAT_BINARY [CONTEXT_LIMIT]
"""
import os
import pty
import select
import sys
import tempfile
import time

binary = sys.argv[1]
limit = sys.argv[2] if len(sys.argv) > 2 else "8000"
tmp = tempfile.mkdtemp()
env = dict(os.environ, MEMCHAT_MEMORY_DIR=os.path.join(tmp, "mem"), NO_COLOR="1", TERM="dumb")
pid, fd = pty.fork()
if pid == 0:
    os.execve(binary, [binary, "--mock", "--context-limit", limit], env)


def read_until(marker, timeout=10.0):
    buf = b""
    end = time.time() + timeout
    while marker not in buf:
        left = end - time.time()
        if left <= 0:
            raise TimeoutError(buf[-200:])
        ready, _, _ = select.select([fd], [], [], left)
        if ready:
            buf += os.read(fd, 65536)
    return buf


def memory():
    fields = {}
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            key, _, value = line.partition(":")
            fields[key] = value.strip()
    return fields["VmRSS"], fields["VmHWM"]


read_until(b"%> ")
checkpoints = {10, 100, 500, 1000}
for turn in range(1, 1001):
    os.write(fd, f"Turn {turn}: a line of conversation to remember, number {turn}.\r".encode())
    read_until(b"%> ")
    if turn in checkpoints:
        rss, hwm = memory()
        print(f"after {turn:>4} turns: resident {rss:>10}, peak {hwm:>10}")
os.write(fd, b"/exit\r")
os.waitpid(pid, 0)
