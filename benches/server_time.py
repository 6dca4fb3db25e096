#!/usr/bin/env python3
"""The server's own time to answer, to subtract from a client's wall time.

Sends the request a chat client sends (streamed chat completion, a new
connection each time, as a one-shot client does) with a conversation of
MESSAGES messages, reads the reply to its end, and prints the median time in
milliseconds over RUNS requests. No process start-up is included: what is left
of a tool's wall time after this is the tool's own.
Usage: server_time.py PORT RUNS MESSAGES
"""
import json
import socket
import statistics
import sys
import time

port, runs, count = int(sys.argv[1]), int(sys.argv[2]), int(sys.argv[3])
messages = [
    {"role": "user" if i % 2 == 0 else "assistant",
     "content": f"Turn {i // 2 + 1}: remember that parcel {i // 2 + 1} goes to warehouse {(i // 2 + 1) % 7}."}
    for i in range(count - 1)
] + [{"role": "user", "content": "hello"}]
body = json.dumps({"model": "bench", "messages": messages, "stream": True,
                   "stream_options": {"include_usage": True}}).encode()
head = (f"POST /v1/chat/completions HTTP/1.1\r\nhost: 127.0.0.1:{port}\r\n"
        f"content-type: application/json\r\nauthorization: Bearer sk-bench\r\n"
        f"content-length: {len(body)}\r\n\r\n").encode()

times = []
for _ in range(runs):
    start = time.perf_counter()
    with socket.create_connection(("127.0.0.1", port)) as s:
        s.sendall(head + body)
        while s.recv(65536):
            pass
    times.append((time.perf_counter() - start) * 1000)
print(f"{statistics.median(times):.2f}")
