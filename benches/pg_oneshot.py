#!/usr/bin/env python3
"""Whole-process one-shot turns, PostgreSQL store vs file store (issue 12).

The real client (not --mock) against a local OpenAI-compatible server
(benches/fake_openai.py, 12 tokens, no pause), release build. Four sessions
on each store: a fresh one (deleted before every run), one with 100,000
archived messages, one with none (the same active log: one turn), and a long
one with 1,000 active messages (what a one-shot `-c` loads whole); and
`--continue` right after the one with none (which it then continues). The
runs are interleaved round by round (the machine is shared: a load spike
hits every scenario alike) and the medians compared.

Needs python3, a built release binary and a PostgreSQL server:
MEMCHAT_TEST_DATABASE_URL (default postgres://postgres@127.0.0.1:5432/test);
memchat's tables go in a schema of their own (memchat_bench), dropped at the
end. Usage: python3 benches/pg_oneshot.py [ROUNDS]   (default 40);
MEMCHAT_BENCH_BIN=PATH measures another build.

MEMCHAT_BENCH_POOLER_URL=URL adds four scenarios through a connection pooler
(PgBouncer in session mode) in front of the same server and schema: that URL
must reach the schema memchat_bench without a search_path option (a role
whose default search_path it is). benches/pg_pooled.sh sets this up.

Then, when pgbench is installed, the floor: benches/pg_floor.sql replays a
new session's one-shot statements as memchat sends them (the same three
pipelined round trips) over a new connection each time, with a client that
costs next to nothing (pgbench, libpq). What the server (and the pooler)
take alone, against the whole file-store one-shot, bounds the ratio any
client could reach on this machine.
"""
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time

from bench_support import start_chat_server

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
BIN = os.environ.get("MEMCHAT_BENCH_BIN") or os.path.join(ROOT, "target", "release", "memchat")
ROUNDS = int(sys.argv[1]) if len(sys.argv) > 1 else 40
BASE = os.environ.get("MEMCHAT_TEST_DATABASE_URL", "postgres://postgres@127.0.0.1:5432/test")
SCHEMA = "memchat_bench"
SEP = "&" if "?" in BASE else "?"
URL = f"{BASE}{SEP}options=-csearch_path%3D{SCHEMA}&sslmode=disable"


def memchat(args, env, check=True):
    # stdin is /dev/null, as for a one-shot typed at a terminal.
    out = subprocess.run([BIN, *args], env=env, stdin=subprocess.DEVNULL,
                         stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    if check and out.returncode != 0:
        sys.exit(f"memchat {' '.join(args)}: exit {out.returncode}: {out.stderr}")
    return out


def admin(sql):
    # memchat has no SQL command: psql (each statement on its own, as
    # VACUUM must be outside a transaction).
    for statement in sql.split(";"):
        subprocess.run(["psql", BASE, "-qAtc", statement], check=True,
                       stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


def main():
    if not os.path.exists(BIN):
        sys.exit("build first: cargo build --release")
    work = tempfile.mkdtemp()
    server, env = start_chat_server(work)
    file_env = dict(env, MEMCHAT_MEMORY_DIR=os.path.join(work, "mem"))
    pg_env = dict(env, MEMCHAT_STORE=URL)
    pooler = os.environ.get("MEMCHAT_BENCH_POOLER_URL")
    pooled_env = dict(env, MEMCHAT_STORE=pooler) if pooler else None
    try:
        admin(f"DROP SCHEMA IF EXISTS {SCHEMA} CASCADE; CREATE SCHEMA {SCHEMA}")
        time.sleep(0.3)
        print("== fixtures (100,000 archived messages; 1,000 active ones) on each store", flush=True)
        big = os.path.join(work, "big.json")
        with open(big, "w") as f:
            json.dump([{"role": "user" if i % 2 == 0 else "assistant",
                        "content": f"Message {i}: " + " ".join(f"w{(i * 7 + j) % 97}" for j in range(12))}
                       for i in range(100000)], f)
        # A long conversation still inside the window (about 20,000 tokens
        # of a 128k model's): a one-shot `-c` on it loads all of it.
        long = os.path.join(work, "long.json")
        with open(long, "w") as f:
            json.dump([{"role": "user" if i % 2 == 0 else "assistant",
                        "content": f"Message {i}: " + " ".join(f"w{(i * 7 + j) % 97}" for j in range(12))}
                       for i in range(1000)], f)
        for store_env in (file_env, pg_env):
            started = time.monotonic()
            memchat(["import", big, "--as", "big"], store_env)
            memchat(["import", long, "--as", "long"], store_env)
            memchat(["--mock", "-s", "big", "--new", "start afresh"], store_env)
            memchat(["--mock", "-s", "none", "start afresh"], store_env)
            print(f"   {'PostgreSQL' if store_env is pg_env else 'file store'}: "
                  f"{time.monotonic() - started:.1f} s", flush=True)
        # The steady state of a server with autovacuum on (the default): the
        # rows `--new` moved to the archive leave dead entries in the
        # active-records index until a vacuum. The test server runs with
        # autovacuum off, so the bench vacuums (MEMCHAT_BENCH_NO_VACUUM=1 to
        # measure without).
        if not os.environ.get("MEMCHAT_BENCH_NO_VACUUM"):
            admin(f"VACUUM ANALYZE {SCHEMA}.memchat_records; VACUUM ANALYZE {SCHEMA}.memchat_sessions")
        scenarios = {
            "file fresh": (file_env, ["-s", "fresh", "hello"], "fresh"),
            "pg fresh": (pg_env, ["-s", "fresh", "hello"], "fresh"),
            "file none": (file_env, ["-s", "none", "hello"], None),
            "pg none": (pg_env, ["-s", "none", "hello"], None),
            # Right after "none": the most recent session is that one.
            "file continue": (file_env, ["-c", "hello"], None),
            "pg continue": (pg_env, ["-c", "hello"], None),
            "file 100k": (file_env, ["-s", "big", "hello"], None),
            "pg 100k": (pg_env, ["-s", "big", "hello"], None),
            "file long": (file_env, ["-s", "long", "hello"], None),
            "pg long": (pg_env, ["-s", "long", "hello"], None),
        }
        if pooled_env:
            scenarios.update({
                "pooled fresh": (pooled_env, ["-s", "fresh", "hello"], "fresh"),
                "pooled none": (pooled_env, ["-s", "none", "hello"], None),
                "pooled continue": (pooled_env, ["-c", "hello"], None),
                "pooled 100k": (pooled_env, ["-s", "big", "hello"], None),
                "pooled long": (pooled_env, ["-s", "long", "hello"], None),
            })
        times = {name: [] for name in scenarios}
        # Warm-up: the page cache, the server's buffers.
        for _ in range(3):
            for name, (store_env, args, fresh) in scenarios.items():
                if fresh:
                    memchat(["delete", fresh, "--yes"], store_env, check=False)
                memchat(args, store_env)
        print(f"== {ROUNDS} rounds, interleaved", flush=True)
        for _ in range(ROUNDS):
            for name, (store_env, args, fresh) in scenarios.items():
                if fresh:
                    memchat(["delete", fresh, "--yes"], store_env, check=False)
                started = time.perf_counter()
                memchat(args, store_env)
                times[name].append((time.perf_counter() - started) * 1000)
        med = {name: statistics.median(t) for name, t in times.items()}
        print(f"{'scenario':<16} {'median':>9} {'p25':>8} {'p75':>8}")
        for name, t in times.items():
            q = statistics.quantiles(t, n=4)
            print(f"{name:<16} {med[name]:>7.2f}ms {q[0]:>6.2f}ms {q[2]:>6.2f}ms")
        print(f"PostgreSQL / file store, fresh:     {med['pg fresh'] / med['file fresh']:.2f}x (goal <= 1.5x)")
        print(f"PostgreSQL / file store, 1 turn:    {med['pg none'] / med['file none']:.2f}x")
        print(f"PostgreSQL, 100k archived / none:   {med['pg 100k'] / med['pg none']:.2f}x (goal <= 1.1x)")
        print(f"file store, 100k archived / none:   {med['file 100k'] / med['file none']:.2f}x")
        print(f"PostgreSQL / file store, 1,000 active: {med['pg long'] / med['file long']:.2f}x")
        print(f"PostgreSQL / file store, --continue: {med['pg continue'] / med['file continue']:.2f}x")
        print(f"PostgreSQL, --continue / -s:        {med['pg continue'] / med['pg none']:.2f}x")
        if pooled_env:
            print(f"pooled / file store, fresh:         {med['pooled fresh'] / med['file fresh']:.2f}x (goal <= 1.5x)")
            print(f"pooled / file store, 1 turn:        {med['pooled none'] / med['file none']:.2f}x")
            print(f"pooled, 100k archived / none:       {med['pooled 100k'] / med['pooled none']:.2f}x (goal <= 1.1x)")
            print(f"pooled / file store, 1,000 active:  {med['pooled long'] / med['file long']:.2f}x")
            print(f"pooled / file store, --continue:    {med['pooled continue'] / med['file continue']:.2f}x")
        floors(med["file fresh"], pooled_env)
    finally:
        server.kill()
        try:
            admin(f"DROP SCHEMA IF EXISTS {SCHEMA} CASCADE")
        finally:
            shutil.rmtree(work, ignore_errors=True)


def floors(file_fresh, pooled_env):
    """The server's own time for a one-shot's statements (pgbench, see the
    module doc), direct and through the pooler, against `file_fresh`."""
    if not shutil.which("pgbench"):
        print("floor: skipped (pgbench is not installed)")
        return
    script = os.path.join(ROOT, "benches", "pg_floor.sql")
    targets = [("direct", URL)]
    if pooled_env:
        targets.append(("pooled", pooled_env["MEMCHAT_STORE"]))
    targets.append(("direct, bare connection + SELECT 1", URL))
    for name, url in targets:
        if "SELECT 1" in name:
            with tempfile.NamedTemporaryFile("w", suffix=".sql", delete=False) as f:
                f.write("SELECT 1;\n")
            use = f.name
        else:
            use = script
        out = subprocess.run(["pgbench", "-n", "-C", "-M", "extended", "-T", "5", "-f", use, url],
                             capture_output=True, text=True)
        if use != script:
            os.unlink(use)
        latency = [line for line in out.stdout.splitlines() if line.startswith("latency average")]
        failed = [line for line in out.stdout.splitlines() if "failed transactions" in line]
        if out.returncode != 0 or not latency or (failed and not failed[0].split(":")[1].strip().startswith("0 ")):
            sys.exit(f"pgbench {name}: exit {out.returncode}: {out.stdout[-500:]} {out.stderr[-500:]}")
        ms = float(latency[0].split("=")[1].split()[0])
        print(f"floor, {name + ':':<36} {ms:.2f} ms = {ms / file_fresh:.2f}x the whole file-store one-shot")
    # The statements must have done their work (a missing version row, say,
    # would make every one match nothing and the floor look cheap).
    written = subprocess.run(["psql", BASE, "-qAtc",
                              f"SELECT count(*) FROM {SCHEMA}.memchat_records r JOIN "
                              f"{SCHEMA}.memchat_sessions s ON s.id = r.session_id "
                              f"WHERE s.name LIKE 'floor%'"],
                             capture_output=True, text=True, check=True).stdout.strip()
    if int(written or 0) == 0:
        sys.exit("floor: pgbench's statements wrote nothing: benches/pg_floor.sql no longer fits the schema")
    print(f"floor: {written} records written by pgbench, as memchat writes them")


if __name__ == "__main__":
    main()
