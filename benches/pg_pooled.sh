#!/usr/bin/env bash
# One-shot turns on PostgreSQL through a connection pooler (issue 12):
# runs benches/pg_oneshot.py with PgBouncer (session mode) in front of the
# same server, so a memchat process gets a warm server connection instead of
# a new backend (the fork, the authentication and the cold catalog caches
# that make a direct one-shot 2.8x the file store's time).
#
# Usage: bash benches/pg_pooled.sh [ROUNDS]
# Needs the release binary, python3, psql, and a server at
# MEMCHAT_TEST_DATABASE_URL (default postgres://postgres@127.0.0.1:5432/test)
# that the bench may create a role on. Installs pgbouncer with apt-get when
# missing.
#
# Session mode is the mode memchat needs behind a pooler: its turn lock is a
# session-level advisory lock, which PgBouncer's server_reset_query
# (DISCARD ALL, the default) releases when the client disconnects;
# transaction mode would hand the lock's connection to another client.
set -euo pipefail
cd "$(dirname "$0")/.."
ROUNDS="${1:-30}"
BASE="${MEMCHAT_TEST_DATABASE_URL:-postgres://postgres@127.0.0.1:5432/test}"

if ! command -v pgbouncer >/dev/null && [ ! -x /usr/sbin/pgbouncer ]; then
  sudo=""; [ "$(id -u)" != 0 ] && sudo="sudo"
  $sudo apt-get install -y -qq pgbouncer >/dev/null
fi
PGBOUNCER="$(command -v pgbouncer || echo /usr/sbin/pgbouncer)"

# Where memchat's tables go without a search_path option: the default
# search_path of the role the pooler logs in as.
psql "$BASE" -qc "DO \$\$ BEGIN
  IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = 'memchat_bench') THEN
    CREATE ROLE memchat_bench LOGIN SUPERUSER;
  END IF; END \$\$;" >/dev/null
psql "$BASE" -qc "ALTER ROLE memchat_bench SET search_path = memchat_bench" >/dev/null

# Host, port and database of the server, from its URL.
read -r HOST PORT DB < <(python3 -c "
import sys, urllib.parse as u
p = u.urlparse(sys.argv[1]); print(p.hostname or '127.0.0.1', p.port or 5432, p.path.lstrip('/') or 'postgres')" "$BASE")
LISTEN="$(python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')"
WORK="$(mktemp -d)"
cat > "$WORK/pgbouncer.ini" <<INI
[databases]
$DB = host=$HOST port=$PORT dbname=$DB user=memchat_bench

[pgbouncer]
listen_addr = 127.0.0.1
listen_port = $LISTEN
unix_socket_dir =
auth_type = any
pool_mode = session
server_reset_query = DISCARD ALL
logfile = $WORK/pgbouncer.log
pidfile = $WORK/pgbouncer.pid
INI
# PgBouncer will not run as root.
USER_OPT=(); [ "$(id -u)" = 0 ] && { chown -R postgres "$WORK"; USER_OPT=(-u postgres); }
"$PGBOUNCER" -d "${USER_OPT[@]}" "$WORK/pgbouncer.ini"
# The role is a superuser of the bench's own: it goes when the bench ends.
trap 'kill "$(cat "$WORK/pgbouncer.pid" 2>/dev/null)" 2>/dev/null || true; rm -rf "$WORK";
      psql "$BASE" -qc "DROP ROLE IF EXISTS memchat_bench" >/dev/null 2>&1 || true' EXIT
sleep 0.5

MEMCHAT_BENCH_POOLER_URL="postgres://memchat_bench@127.0.0.1:$LISTEN/$DB?sslmode=disable" \
  python3 benches/pg_oneshot.py "$ROUNDS"
