#!/usr/bin/env bash
# End-to-end benchmarks of whole memchat invocations, release build:
#   - a one-shot --mock turn on a fresh session, on turn 201 of a saved
#     conversation, on a session whose active log is at the budget, and on a
#     session with 100,000 archived messages (ratios side by side);
#   - the same one-shot turn against a local OpenAI-compatible server;
#   - peak memory (/usr/bin/time -v) of those runs and of 100 vs 1,000 turns
#     held in one process;
#   - streaming latency: server write → memchat stdout, one token per 100 ms.
# Needs hyperfine and GNU time (installed with apt-get when missing) and
# python3. Usage: bash benches/e2e.sh   (results also in target/e2e/)
set -euo pipefail
cd "$(dirname "$0")/.."

need() { command -v "$1" >/dev/null 2>&1 || { apt-get update -qq && apt-get install -y -qq "$2"; }; }
need hyperfine hyperfine
[ -x /usr/bin/time ] || { apt-get update -qq && apt-get install -y -qq time; }
need python3 python3

cargo build --release --quiet
BIN="$PWD/target/release/memchat"
OUT="$PWD/target/e2e"
WORK="$(mktemp -d)"
trap 'kill "${SERVER:-0}" 2>/dev/null || true; rm -rf "$WORK"' EXIT
mkdir -p "$OUT"
export NO_COLOR=1 MEMCHAT_LOCK_WAIT=5
unset OPENAI_API_KEY OPENAI_BASE_URL

echo "== fixtures"
# 200 turns of a saved conversation.
for i in $(seq 1 200); do echo "Turn $i: remember that parcel $i goes to warehouse $((i % 7))."; done > "$WORK/200.txt"
"$BIN" --mock --memory-dir "$WORK/t200" < "$WORK/200.txt" > /dev/null
# An active log at the budget (about H = 97k tokens for gpt-4o-mini), and a
# session with 100,000 archived messages: built by import, then --new.
python3 - "$WORK" <<'PY'
import json, sys
work = sys.argv[1]
def msgs(n, words):
    out = []
    for i in range(n):
        role = "user" if i % 2 == 0 else "assistant"
        out.append({"role": role, "content": f"Message {i}: " + " ".join(f"w{(i*7+j)%97}" for j in range(words))})
    return out
json.dump(msgs(2600, 14), open(f"{work}/full.json", "w"))
json.dump(msgs(100000, 12), open(f"{work}/big.json", "w"))
PY
"$BIN" import "$WORK/full.json" --as full --memory-dir "$WORK/full" > /dev/null
"$BIN" --mock --memory-dir "$WORK/full" -s full "prime the token counts" > /dev/null
echo "/tokens" | "$BIN" --mock --memory-dir "$WORK/full" -s full | head -1
"$BIN" import "$WORK/big.json" --as big --memory-dir "$WORK/big" > /dev/null
"$BIN" --mock --memory-dir "$WORK/big" -s big --new "start afresh" > /dev/null 2>&1
echo "archived messages in big: $(grep -c '"type":"message"' "$WORK/big/big.archive.jsonl")"
for d in t200 full big; do cp -a "$WORK/$d" "$WORK/$d.template"; done

echo "== one-shot --mock turns (hyperfine, medians)"
hyperfine --warmup 5 --runs 60 --export-json "$OUT/mock.json" \
  --prepare "rm -rf $WORK/fresh" \
  -n fresh "$BIN --mock --memory-dir $WORK/fresh hello" \
  --prepare "rm -rf $WORK/t200 && cp -a $WORK/t200.template $WORK/t200" \
  -n turn-201 "$BIN --mock --memory-dir $WORK/t200 hello" \
  --prepare "rm -rf $WORK/full && cp -a $WORK/full.template $WORK/full" \
  -n at-budget "$BIN --mock --memory-dir $WORK/full -s full hello" \
  --prepare "rm -rf $WORK/big && cp -a $WORK/big.template $WORK/big" \
  -n archived-100k "$BIN --mock --memory-dir $WORK/big -s big hello"

echo "== against a local OpenAI-compatible server"
PORT=$((18500 + RANDOM % 400))
python3 benches/fake_openai.py "$PORT" 0 12 & SERVER=$!
sleep 0.5
export OPENAI_API_KEY=sk-bench
hyperfine --warmup 5 --runs 40 --export-json "$OUT/server.json" \
  --prepare "rm -rf $WORK/sfresh" \
  -n server-fresh "$BIN --base-url http://127.0.0.1:$PORT/v1 --memory-dir $WORK/sfresh hello" \
  --prepare "rm -rf $WORK/big && cp -a $WORK/big.template $WORK/big" \
  -n server-archived-100k "$BIN --base-url http://127.0.0.1:$PORT/v1 --memory-dir $WORK/big -s big hello"
unset OPENAI_API_KEY

echo "== peak memory (max RSS, /usr/bin/time -v)"
rss() { /usr/bin/time -v "$@" 2>&1 >/dev/null | awk -F': ' '/Maximum resident/ {print $2 " KB"}'; }
rm -rf "$WORK/m"; echo "fresh one-shot:        $(rss "$BIN" --mock --memory-dir "$WORK/m" hello)"
rm -rf "$WORK/t200" && cp -a "$WORK/t200.template" "$WORK/t200"
echo "turn 201:              $(rss "$BIN" --mock --memory-dir "$WORK/t200" hello)"
rm -rf "$WORK/full" && cp -a "$WORK/full.template" "$WORK/full"
echo "at budget:             $(rss "$BIN" --mock --memory-dir "$WORK/full" -s full hello)"
rm -rf "$WORK/big" && cp -a "$WORK/big.template" "$WORK/big"
echo "100k archived:         $(rss "$BIN" --mock --memory-dir "$WORK/big" -s big hello)"
PORT=$((18500 + RANDOM % 400))
python3 benches/fake_openai.py "$PORT" 0 12 & SERVER=$!
sleep 0.5
rm -rf "$WORK/sm"; echo "real client, one-shot:  $(OPENAI_API_KEY=sk-bench rss "$BIN" --base-url "http://127.0.0.1:$PORT/v1" --memory-dir "$WORK/sm" hello)"
kill "$SERVER"
for n in 100 1000; do
  for i in $(seq 1 "$n"); do echo "Turn $i: a line of conversation for the memory test."; done > "$WORK/s$n.txt"
  rm -rf "$WORK/s"; echo "$n turns, one process: $(rss sh -c "$BIN --mock --memory-dir $WORK/s --context-limit 8000 < $WORK/s$n.txt")"
done

echo "== streaming latency"
python3 benches/stream_latency.py "$BIN"

echo "== a REPL held open for 1,000 turns (pseudo-terminal)"
python3 benches/repl_memory.py "$BIN" 8000
