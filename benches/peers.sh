#!/usr/bin/env bash
# memchat, aichat and llm side by side, each with its real HTTP client,
# against ONE local OpenAI-compatible server (benches/fake_openai.py, 12
# streamed tokens, no delay):
#   - a one-shot prompt on a fresh conversation;
#   - turn 201 of a saved 200-turn conversation (built by each tool itself
#     against the same server);
#   - peak RSS of both (GNU time);
#   - the server's own time to answer (benches/server_time.py), so that each
#     tool's own share is wall time minus that.
# Runs are interleaved: ROUNDS rounds, each timing every tool with hyperfine;
# the medians are over all rounds.
#
# Usage: bash benches/peers.sh [--install] [--rounds N]   (MEMCHAT_BIN=path: that binary, no build)
#   --install   installs the peers into $PEERS_DIR first (default target/peers):
#               `cargo install --locked aichat --version 0.30.0 --root $PEERS_DIR/aichat` and
#               `pip install llm==0.36` into the venv $PEERS_DIR/venv. Without it,
#               peers found there (or on PATH) are measured, missing ones skipped.
# The peers are measured, never copied: nothing of theirs enters this tree.
# Needs hyperfine, GNU time (apt-get install hyperfine time) and python3.
# Results: target/peers-results/ (hyperfine JSON and summary.txt).
set -euo pipefail
cd "$(dirname "$0")/.."

PEERS_DIR="${PEERS_DIR:-$PWD/target/peers}"
ROUNDS=5
INSTALL=0
while [ $# -gt 0 ]; do
  case "$1" in
    --install) INSTALL=1 ;;
    --rounds) ROUNDS="$2"; shift ;;
    *) echo "usage: bash benches/peers.sh [--install] [--rounds N]" >&2; exit 2 ;;
  esac
  shift
done

command -v hyperfine >/dev/null || { echo "needs hyperfine (apt-get install hyperfine)" >&2; exit 1; }
[ -x /usr/bin/time ] || { echo "needs GNU time (apt-get install time)" >&2; exit 1; }

if [ "$INSTALL" = 1 ]; then
  mkdir -p "$PEERS_DIR"
  nice -n 19 cargo install --locked aichat --version 0.30.0 --root "$PEERS_DIR/aichat"
  python3 -m venv "$PEERS_DIR/venv"
  "$PEERS_DIR/venv/bin/pip" install --quiet llm==0.36
fi
AICHAT="$PEERS_DIR/aichat/bin/aichat"; [ -x "$AICHAT" ] || AICHAT="$(command -v aichat || true)"
LLM="$PEERS_DIR/venv/bin/llm"; [ -x "$LLM" ] || LLM="$(command -v llm || true)"

# MEMCHAT_BIN=path measures that binary instead of building this tree.
if [ -z "${MEMCHAT_BIN:-}" ]; then cargo build --release --quiet; fi
MEMCHAT="${MEMCHAT_BIN:-$PWD/target/release/memchat}"
OUT="$PWD/target/peers-results"
WORK="$(mktemp -d)"
trap 'kill "${SERVER:-0}" 2>/dev/null || true; rm -rf "$WORK"' EXIT
rm -rf "$OUT"; mkdir -p "$OUT"

# The server, on a free port, answered before anything is timed.
PORT="$(python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')"
python3 benches/fake_openai.py "$PORT" 0 12 & SERVER=$!
python3 - "$PORT" <<'PY'
import socket, sys, time
for _ in range(200):
    try:
        socket.create_connection(("127.0.0.1", int(sys.argv[1]))).close(); break
    except OSError:
        time.sleep(0.05)
else:
    sys.exit("the fake server did not start")
PY
URL="http://127.0.0.1:$PORT/v1"
export NO_COLOR=1 OPENAI_API_KEY=sk-bench MEMCHAT_LOCK_WAIT=5
unset OPENAI_BASE_URL

{
  echo "date:    $(date -u '+%Y-%m-%d %H:%M UTC')"
  echo "machine: $(nproc) cores, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ //'), $(free -g | awk '/Mem:/ {print $2}') GiB, $(uname -sr)"
  echo "memchat: $("$MEMCHAT" --version)"
  [ -n "$AICHAT" ] && echo "aichat:  $("$AICHAT" --version)"
  [ -n "$LLM" ] && echo "llm:     $("$LLM" --version)"
  echo "load before: $(cut -d' ' -f1-3 /proc/loadavg)"
} | tee "$OUT/machine.txt"

echo "== fixtures: a 200-turn conversation per tool, through the server"
for i in $(seq 1 200); do echo "Turn $i: remember that parcel $i goes to warehouse $((i % 7))."; done > "$WORK/200.txt"
# memchat: script mode, one process, 200 real turns.
"$MEMCHAT" --base-url "$URL" --memory-dir "$WORK/mc-t200" < "$WORK/200.txt" > /dev/null 2>&1
cp -a "$WORK/mc-t200" "$WORK/mc-t200.template"
if [ -n "$AICHAT" ]; then
  # aichat: an openai-compatible client on the same server; a session per
  # conversation (it has no script mode: one process per turn).
  export AICHAT_CONFIG_DIR="$WORK/aichat"
  mkdir -p "$AICHAT_CONFIG_DIR"
  cat > "$AICHAT_CONFIG_DIR/config.yaml" <<EOF
model: local:bench
stream: true
save: true
save_session: true
# Keep all 200 turns (by default aichat summarizes a session past 4,000
# tokens, which would leave turn 201 with 2 messages).
compress_threshold: 100000000
clients:
  - type: openai-compatible
    name: local
    api_base: $URL
    api_key: sk-bench
    models:
      - name: bench
        max_input_tokens: 128000
EOF
  # (stdin from /dev/null: aichat reads a piped stdin as more input)
  while IFS= read -r line; do "$AICHAT" -s t200 "$line" < /dev/null > /dev/null; done < "$WORK/200.txt"
  cp "$AICHAT_CONFIG_DIR/sessions/t200.yaml" "$WORK/ai-t200.yaml"
fi
if [ -n "$LLM" ]; then
  # llm: an extra OpenAI model on the same server; `llm chat` reads the 200
  # lines from stdin (it ends with "Aborted!" at end of input).
  export LLM_USER_PATH="$WORK/llm"
  mkdir -p "$LLM_USER_PATH"
  printf -- '- model_id: bench\n  model_name: bench\n  api_base: "%s"\n' "$URL" > "$LLM_USER_PATH/extra-openai-models.yaml"
  "$LLM" chat -m bench -d "$WORK/llm-t200.db" < "$WORK/200.txt" > /dev/null 2>&1 || true
  "$LLM" -m bench -d "$WORK/llm-fresh.db" "prime the log database" > /dev/null
  cp "$WORK/llm-t200.db" "$WORK/llm-t200.template.db"
  cp "$WORK/llm-fresh.db" "$WORK/llm-fresh.template.db"
fi
echo "memchat t200: $(grep -c '"type":"message"' "$WORK/mc-t200.template/default.jsonl") messages"
[ -n "$AICHAT" ] && echo "aichat t200:  $(grep -c '^- role:' "$WORK/ai-t200.yaml") messages"
[ -n "$LLM" ] && echo "llm t200:     $(python3 -c "import sqlite3,sys; print(sqlite3.connect(sys.argv[1]).execute('select count(*) from turns').fetchone()[0])" "$WORK/llm-t200.db") turns"

# The commands, with how to restore their state before each run.
names=(); cmds=(); preps=()
add() { names+=("$1"); preps+=("$2"); cmds+=("$3"); }
add memchat-fresh "rm -rf $WORK/mc-fresh" "$MEMCHAT --base-url $URL --memory-dir $WORK/mc-fresh hello"
add memchat-t201 "rm -rf $WORK/mc-t200 && cp -a $WORK/mc-t200.template $WORK/mc-t200" \
  "$MEMCHAT --base-url $URL --memory-dir $WORK/mc-t200 hello"
if [ -n "$AICHAT" ]; then
  add aichat-fresh "rm -f $AICHAT_CONFIG_DIR/sessions/fresh.yaml" "$AICHAT -s fresh hello"
  add aichat-t201 "cp $WORK/ai-t200.yaml $AICHAT_CONFIG_DIR/sessions/t200.yaml" "$AICHAT -s t200 hello"
fi
fast=${#names[@]}
if [ -n "$LLM" ]; then
  add llm-fresh "cp $WORK/llm-fresh.template.db $WORK/llm-fresh.db" "$LLM -m bench -d $WORK/llm-fresh.db hello"
  add llm-t201 "cp $WORK/llm-t200.template.db $WORK/llm-t200.db" "$LLM -m bench -c -d $WORK/llm-t200.db hello"
fi

# -N: no shell around the timed commands (so none of its start-up is
# counted); the restores then need their own `sh -c`.
hyper() { # RUNS FIRST LAST JSON: one hyperfine over commands FIRST..LAST-1
  local runs=$1 first=$2 last=$3 json=$4 args=()
  for ((i = first; i < last; i++)); do args+=(--prepare "sh -c '${preps[$i]}'" -n "${names[$i]}" "${cmds[$i]}"); done
  hyperfine -N --warmup 1 --runs "$runs" --style basic --export-json "$json" "${args[@]}" > /dev/null
}

echo "== timing: $ROUNDS interleaved rounds"
for ((r = 1; r <= ROUNDS; r++)); do
  hyper 10 0 "$fast" "$OUT/round$r-rust.json"
  [ -n "$LLM" ] && hyper 2 "$fast" "${#names[@]}" "$OUT/round$r-llm.json"
  echo "round $r done (load $(cut -d' ' -f1 /proc/loadavg))"
done

echo "== the server's own time to answer (median of 50, no process start-up)"
echo "fresh $(python3 benches/server_time.py "$PORT" 50 1)" > "$OUT/server.txt"
echo "t201 $(python3 benches/server_time.py "$PORT" 50 401)" >> "$OUT/server.txt"
cat "$OUT/server.txt"

echo "== peak RSS (GNU time, median of 5)"
: > "$OUT/rss.txt"
for ((i = 0; i < ${#names[@]}; i++)); do
  kbs=()
  for _ in 1 2 3 4 5; do
    sh -c "${preps[$i]}"
    # shellcheck disable=SC2086 # the command is a word list
    kbs+=("$(/usr/bin/time -f %M ${cmds[$i]} 2>&1 >/dev/null | tail -1)")
  done
  echo "${names[$i]} $(printf '%s\n' "${kbs[@]}" | sort -n | sed -n 3p)" >> "$OUT/rss.txt"
done

echo "load after: $(cut -d' ' -f1-3 /proc/loadavg)" | tee -a "$OUT/machine.txt"
python3 - "$OUT" <<'PY' | tee "$OUT/summary.txt"
import glob, json, statistics, sys
out = sys.argv[1]
times = {}
for path in sorted(glob.glob(f"{out}/round*.json")):
    for result in json.load(open(path))["results"]:
        times.setdefault(result["command"], []).extend(t * 1000 for t in result["times"])
server = dict(line.split() for line in open(f"{out}/server.txt"))
rss = dict(line.split() for line in open(f"{out}/rss.txt"))
med = {name: statistics.median(ts) for name, ts in times.items()}
print(f"{'command':15} {'runs':>5} {'median ms':>10} {'min ms':>8} {'own ms':>8} {'peak RSS':>10}")
for name, ts in times.items():
    own = med[name] - float(server["fresh" if name.endswith("fresh") else "t201"])
    print(f"{name:15} {len(ts):5} {med[name]:10.2f} {min(ts):8.2f} {own:8.2f} {int(rss[name]) / 1024:8.1f} MB")
print(f"server's own time to answer: fresh {server['fresh']} ms, turn 201 {server['t201']} ms")
for case in ("fresh", "t201"):
    for peer in ("aichat", "llm"):
        if f"{peer}-{case}" in med:
            m, p = med[f"memchat-{case}"], med[f"{peer}-{case}"]
            s = float(server["fresh" if case == "fresh" else "t201"])
            print(f"memchat / {peer}, {case}: wall {m / p:.2f}x, own share {(m - s) / (p - s):.2f}x")
PY
