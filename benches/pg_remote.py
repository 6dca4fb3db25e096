#!/usr/bin/env python3
"""One-shot turns on a PostgreSQL server some distance away (issue 12).

A local server answers in tens of microseconds, so the number of round trips
a one-shot makes hardly shows on it. This bench puts a TCP proxy in front of
the server that holds every chunk for DELAY ms in each direction (a round
trip of 2 x DELAY, as to a server in the same region), and times one-shots
with the real client against benches/fake_openai.py (not delayed): a fresh
session (deleted before each run) and a session with one earlier turn,
interleaved with the file store, medians.

Needs python3, a built release binary and a PostgreSQL server:
MEMCHAT_TEST_DATABASE_URL (default postgres://postgres@127.0.0.1:5432/test,
reached over TCP); memchat's tables go in a schema of their own
(memchat_remote), dropped at the end.
Usage: python3 benches/pg_remote.py [ROUNDS] [DELAY_MS]   (default 15, 1.0);
MEMCHAT_BENCH_BIN=PATH measures another build.
"""
import asyncio
import os
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import urllib.parse

from bench_support import free_port, start_chat_server

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
BIN = os.environ.get("MEMCHAT_BENCH_BIN") or os.path.join(ROOT, "target", "release", "memchat")
ROUNDS = int(sys.argv[1]) if len(sys.argv) > 1 else 15
DELAY = (float(sys.argv[2]) if len(sys.argv) > 2 else 1.0) / 1000
BASE = os.environ.get("MEMCHAT_TEST_DATABASE_URL", "postgres://postgres@127.0.0.1:5432/test")
SCHEMA = "memchat_remote"


async def pipe(reader, writer):
    # Each chunk is held DELAY, in order, without holding up the next read.
    queue = asyncio.Queue()

    async def deliver():
        while True:
            due, data = await queue.get()
            if data is None:
                writer.close()
                return
            await asyncio.sleep(max(0.0, due - time.monotonic()))
            writer.write(data)
            await writer.drain()

    task = asyncio.create_task(deliver())
    while True:
        data = await reader.read(65536)
        queue.put_nowait((time.monotonic() + DELAY, data or None))
        if not data:
            break
    await task


def proxy(listen_port, host, port):
    async def handle(client_reader, client_writer):
        server_reader, server_writer = await asyncio.open_connection(host, port)
        for sock in (client_writer, server_writer):
            sock.get_extra_info("socket").setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        await asyncio.gather(pipe(client_reader, server_writer), pipe(server_reader, client_writer),
                             return_exceptions=True)

    async def main():
        server = await asyncio.start_server(handle, "127.0.0.1", listen_port)
        async with server:
            await server.serve_forever()

    asyncio.run(main())


def main():
    if not os.path.exists(BIN):
        sys.exit("build first: cargo build --release")
    parsed = urllib.parse.urlparse(BASE)
    listen = free_port()
    threading.Thread(target=proxy, args=(listen, parsed.hostname or "127.0.0.1", parsed.port or 5432),
                     daemon=True).start()
    netloc = parsed.netloc.rsplit("@", 1)
    userinfo = netloc[0] + "@" if len(netloc) == 2 else ""
    remote = (f"postgres://{userinfo}127.0.0.1:{listen}{parsed.path or '/postgres'}"
              f"?options=-csearch_path%3D{SCHEMA}&sslmode=disable")
    work = tempfile.mkdtemp()
    server, env = start_chat_server(work)
    stores = {"file": dict(env, MEMCHAT_MEMORY_DIR=os.path.join(work, "mem")),
              "remote": dict(env, MEMCHAT_STORE=remote)}

    def run(store_env, args, check=True):
        started = time.perf_counter()
        out = subprocess.run([BIN, *args], env=store_env, stdin=subprocess.DEVNULL,
                             stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
        if check and out.returncode != 0:
            sys.exit(f"memchat {' '.join(args)}: exit {out.returncode}: {out.stderr}")
        return (time.perf_counter() - started) * 1000

    try:
        subprocess.run(["psql", BASE, "-qAtc", f"DROP SCHEMA IF EXISTS {SCHEMA} CASCADE"],
                       check=True, capture_output=True)
        subprocess.run(["psql", BASE, "-qAtc", f"CREATE SCHEMA {SCHEMA}"], check=True,
                       capture_output=True)
        time.sleep(0.5)
        times = {}
        for r in range(ROUNDS + 2):
            for name, store_env in stores.items():
                run(store_env, ["delete", "fresh", "--yes"], check=False)
                fresh = run(store_env, ["-s", "fresh", "hello"])
                turn = run(store_env, ["-s", "fresh", "again"])
                if r >= 2:  # warm-up
                    times.setdefault((name, "fresh"), []).append(fresh)
                    times.setdefault((name, "turn"), []).append(turn)
        print(f"{ROUNDS} rounds, round trip to the server {2 * DELAY * 1000:.1f} ms + the proxy's own")
        for (name, kind), values in times.items():
            print(f"{name:<7} {kind:<6} {statistics.median(values):8.2f} ms")
        for kind in ("fresh", "turn"):
            ratio = statistics.median(times[("remote", kind)]) / statistics.median(times[("file", kind)])
            print(f"remote / file store, {kind}: {ratio:.2f}x")
    finally:
        server.terminate()
        shutil.rmtree(work, ignore_errors=True)
        subprocess.run(["psql", BASE, "-qAtc", f"DROP SCHEMA IF EXISTS {SCHEMA} CASCADE"],
                       capture_output=True)


if __name__ == "__main__":
    main()
