#!/usr/bin/env python3
"""Time from start to the first prompt of the REPL (in a pseudo-terminal),
with a session whose active log fills a 128k window: builds the session by
import (2,600 messages, about 95k tokens, just under the compaction trigger of
gpt-4o-mini), primes its token counts with one turn, then starts the REPL RUNS
times and prints the median and the spread, and the resident memory at the
prompt (before and after the tokenizer's tables arrive).

Usage: repl_start.py MEMCHAT_BINARY [RUNS]
"""
import json
import os
import pty
import select
import statistics
import subprocess
import sys
import tempfile
import time

binary = sys.argv[1]
runs = int(sys.argv[2]) if len(sys.argv) > 2 else 20
tmp = tempfile.mkdtemp()
mem = os.path.join(tmp, "mem")
env = dict(os.environ, MEMCHAT_MEMORY_DIR=mem, NO_COLOR="1", TERM="dumb")
messages = [{"role": "user" if i % 2 == 0 else "assistant",
             "content": f"Message {i}: " + " ".join(f"w{(i * 7 + j) % 97}" for j in range(14))}
            for i in range(2600)]
with open(os.path.join(tmp, "full.json"), "w") as f:
    json.dump(messages, f)
subprocess.run([binary, "import", os.path.join(tmp, "full.json"), "--as", "full"], env=env,
               check=True, stdout=subprocess.DEVNULL)
subprocess.run([binary, "--mock", "-s", "full", "prime the token counts"], env=env, check=True,
               stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


def status(pid):
    with open(f"/proc/{pid}/status") as f:
        return dict(line.split(":", 1) for line in f)


times, rss_at_prompt, rss_later = [], [], []
for _ in range(runs):
    start = time.perf_counter()
    pid, fd = pty.fork()
    if pid == 0:
        os.execve(binary, [binary, "--mock", "-s", "full"], env)
    buf = b""
    while b"%> " not in buf:
        ready, _, _ = select.select([fd], [], [], 30)
        if not ready:
            raise TimeoutError(buf[-300:])
        buf += os.read(fd, 65536)
    times.append((time.perf_counter() - start) * 1000)
    rss_at_prompt.append(status(pid)["VmRSS"].strip())
    time.sleep(1.0)  # long enough for the background tokenizer load
    rss_later.append(status(pid)["VmRSS"].strip())
    os.write(fd, b"/exit\r")
    deadline = time.monotonic() + 10
    try:
        while time.monotonic() < deadline:
            ready, _, _ = select.select([fd], [], [], 1)
            if ready and not os.read(fd, 65536):
                break
        else:
            # A memchat before the TERM=dumb fix never ends on /exit.
            os.kill(pid, 9)
    except OSError:
        pass
    os.waitpid(pid, 0)

times.sort()
print(f"start to first prompt, 2,600 messages (~95k tokens) active, {runs} runs: "
      f"median {statistics.median(times):.1f} ms, min {times[0]:.1f}, max {times[-1]:.1f}")
print(f"resident at the prompt: {rss_at_prompt[len(rss_at_prompt) // 2]}; "
      f"one second later (tokenizer loaded): {rss_later[len(rss_later) // 2]}")
