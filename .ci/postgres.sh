#!/usr/bin/env bash
# Sourced by .ci/run: makes sure MEMCHAT_TEST_DATABASE_URL names a PostgreSQL
# server for the PostgreSQL store's tests (tests/it/pg_store.rs).
#
# - Given already: used as is.
# - A server answering at 127.0.0.1:5432 as postgres, trust, database test
#   (the project's machines): used.
# - Otherwise: a throwaway cluster is started in a temp directory, as the
#   user `nobody` when run as root (initdb refuses root), on 127.0.0.1:54329,
#   trust auth; it is stopped and removed when .ci/run exits.
#
# In every case the server's programs (initdb, pg_ctl: Debian's postgresql,
# which also makes the `postgres` user), the openssl command and PgBouncer
# are installed if missing: tests/it/pg_cluster.rs starts clusters of its
# own (stopped and started, password auth, TLS with a CA made by openssl),
# tests/it/pg_pooler.rs a PgBouncer, and both fail under CI without them.

memchat_pg_install() {
    local want=""
    ls -d /usr/lib/postgresql/*/bin >/dev/null 2>&1 || want="postgresql"
    command -v openssl >/dev/null 2>&1 || want="$want openssl"
    [ -x /usr/sbin/pgbouncer ] || command -v pgbouncer >/dev/null 2>&1 || want="$want pgbouncer"
    [ -z "$want" ] && return 0
    if command -v apt-get >/dev/null 2>&1; then
        echo "== installing $want"
        local sudo=""
        if [ "$(id -u)" != 0 ] && command -v sudo >/dev/null 2>&1; then sudo="sudo"; fi
        $sudo apt-get update -qq >/dev/null 2>&1 || true
        # shellcheck disable=SC2086
        DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq $want >/dev/null 2>&1 \
            || echo "warning: could not install $want" >&2
    fi
}

memchat_pg_start() {
    memchat_pg_install
    if [ -n "${MEMCHAT_TEST_DATABASE_URL:-}" ]; then
        echo "== PostgreSQL: MEMCHAT_TEST_DATABASE_URL is given"
        return 0
    fi
    local local_url="postgres://postgres@127.0.0.1:5432/test"
    if command -v psql >/dev/null 2>&1 && psql "$local_url" -Atc 'select 1' >/dev/null 2>&1; then
        export MEMCHAT_TEST_DATABASE_URL="$local_url"
        echo "== PostgreSQL: the server at 127.0.0.1:5432"
        return 0
    fi
    local bin
    bin="$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -1)"
    if [ -z "$bin" ]; then
        echo "warning: no PostgreSQL: the PostgreSQL store's tests will say SKIPPED" >&2
        return 0
    fi
    MEMCHAT_PG_DIR="$(mktemp -d)"
    chmod 755 "$MEMCHAT_PG_DIR"
    local as=()
    if [ "$(id -u)" = 0 ]; then
        chown nobody "$MEMCHAT_PG_DIR"
        as=(runuser -u nobody --)
    fi
    "${as[@]}" "$bin/initdb" -D "$MEMCHAT_PG_DIR/data" -A trust -U postgres >/dev/null
    "${as[@]}" "$bin/pg_ctl" -D "$MEMCHAT_PG_DIR/data" -l "$MEMCHAT_PG_DIR/log" -w \
        -o "-p 54329 -k $MEMCHAT_PG_DIR -c listen_addresses=127.0.0.1 -c max_connections=200" \
        start >/dev/null
    MEMCHAT_PG_STOP=("${as[@]}" "$bin/pg_ctl" -D "$MEMCHAT_PG_DIR/data" -m immediate stop)
    trap 'memchat_pg_stop' EXIT
    "$bin/createdb" -h 127.0.0.1 -p 54329 -U postgres test
    export MEMCHAT_TEST_DATABASE_URL="postgres://postgres@127.0.0.1:54329/test"
    echo "== PostgreSQL: a throwaway cluster at 127.0.0.1:54329 ($bin)"
}

memchat_pg_stop() {
    if [ -n "${MEMCHAT_PG_DIR:-}" ]; then
        "${MEMCHAT_PG_STOP[@]}" >/dev/null 2>&1 || true
        rm -rf "$MEMCHAT_PG_DIR"
    fi
}
