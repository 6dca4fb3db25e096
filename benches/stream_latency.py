#!/usr/bin/env python3
"""Does streaming add buffering? A local server sends one token every 100 ms;
this script runs memchat against it and timestamps each token as it appears
on memchat's stdout (read unbuffered from a pipe), then compares with the
moment the server wrote it. Both clocks are this machine's monotonic clock.

Usage: stream_latency.py MEMCHAT_BINARY
"""
import os
import subprocess
import sys
import tempfile
import time

binary = sys.argv[1]
here = os.path.dirname(os.path.abspath(__file__))
port = 18000 + os.getpid() % 1000
tmp = tempfile.mkdtemp()
sent_log = os.path.join(tmp, "sent.log")
server = subprocess.Popen([sys.executable, os.path.join(here, "fake_openai.py"), str(port), "100", "20", sent_log])
time.sleep(0.5)
try:
    env = dict(os.environ, OPENAI_API_KEY="sk-bench", MEMCHAT_MEMORY_DIR=os.path.join(tmp, "mem"), NO_COLOR="1")
    proc = subprocess.Popen([binary, "--base-url", f"http://127.0.0.1:{port}/v1", "stream please"],
                            stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, env=env, bufsize=0)
    seen = {}
    buffer = b""
    while True:
        byte = proc.stdout.read(1)
        if not byte:
            break
        buffer += byte
        if byte == b" ":
            token = buffer.strip().decode()
            seen[token] = time.monotonic()
            buffer = b""
    proc.wait()
finally:
    server.kill()
sent = {}
with open(sent_log) as f:
    for line in f:
        token, at = line.split()
        sent[token] = float(at)
delays = sorted((seen[t] - sent[t]) * 1000 for t in sent if t in seen)
print(f"tokens: {len(delays)} of {len(sent)} seen on stdout")
print(f"delay from server write to memchat stdout: median {delays[len(delays)//2]:.2f} ms, "
      f"max {delays[-1]:.2f} ms")
