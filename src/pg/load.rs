//! Reading a session from PostgreSQL: its row and active records in one
//! round trip ([`load`]), or created if new, locked and loaded in one
//! round trip ([`create_lock_load`], the connection's first).

use tokio_postgres::types::Type;

use super::conn::{DbError, Failer, Link};
use super::rows::{self, COLUMNS};
use super::schema::LOCK_SPACE;
use super::session::Loaded;
use crate::memory::format::{self, SessionSettings};

/// Loads a session's row (by id, or by name) and its active records.
pub async fn load(link: &mut Link, id: Option<i64>, name: &str) -> Result<Option<Loaded>, DbError> {
    let (client, f) = link.client()?;
    load_on(client, &f, id, name).await
}

/// [`load`] on a client not yet in a [`Link`] (the connection's first
/// round trip, see [`super::conn`]).
pub async fn load_on(
    client: &tokio_postgres::Client,
    f: &Failer,
    id: Option<i64>,
    name: &str,
) -> Result<Option<Loaded>, DbError> {
    // The session's row and its records in one round trip (pipelined,
    // typed). The records are read after the row: if the session changed
    // in between, the revision read here is older than the records, and
    // the next turn's revision check reloads it.
    let (by, key): (&str, (&(dyn tokio_postgres::types::ToSql + Sync), Type)) = match &id {
        Some(id) => ("$1", (id, Type::INT8)),
        None => (
            "(SELECT id FROM memchat_sessions WHERE name = $1)",
            (&name, Type::TEXT),
        ),
    };
    let session_sql = format!(
        "SELECT id, name, created_at, last_seq, revision, settings::text, settings_at \
         FROM memchat_sessions WHERE {}",
        if id.is_some() { "id = $1" } else { "name = $1" }
    );
    let records_sql = format!(
        "SELECT {COLUMNS} FROM memchat_records WHERE session_id = {by} AND NOT archived \
         ORDER BY seq"
    );
    let params = [key];
    let (row, records) = futures::join!(
        client.query_typed_opt(&session_sql, &params),
        client.query_typed(&records_sql, &params),
    );
    let row = row.map_err(|e| f.fail(e))?;
    let rows = records.map_err(|e| f.fail(e))?;
    let Some(row) = row else {
        return Ok(None);
    };
    let id: i64 = row.try_get(0).map_err(|e| f.fail(e))?;
    let last_seq: i64 = row.try_get(3).map_err(|e| f.fail(e))?;
    let settings: Option<String> = row.try_get(5).map_err(|e| f.fail(e))?;
    let settings: SessionSettings = match settings {
        Some(json) => serde_json::from_str(&json).map_err(|e| {
            DbError::Failed(format!(
                "the settings of session {name:?} are not valid: {e}"
            ))
        })?,
        None => SessionSettings::default(),
    };
    let records = rows
        .iter()
        .map(rows::record_from_row)
        .collect::<Result<Vec<_>, _>>()?;
    Ok(Some(Loaded {
        id,
        name: row.try_get(1).map_err(|e| f.fail(e))?,
        created_at: row.try_get(2).map_err(|e| f.fail(e))?,
        last_seq: u64::try_from(last_seq).unwrap_or(0),
        revision: row.try_get(4).map_err(|e| f.fail(e))?,
        settings,
        settings_at: row.try_get(6).map_err(|e| f.fail(e))?,
        records,
    }))
}

/// What [`create_lock_load`] found.
pub struct Opened {
    /// Whether this client's insert created the session (another client
    /// may have been first); an error when it failed (no tables yet).
    pub created: Result<bool, tokio_postgres::Error>,
    /// Whether this connection now holds the session's turn lock.
    pub locked: bool,
    /// The session as [`load`] gives it.
    pub loaded: Result<Option<Loaded>, DbError>,
}

/// Creates session `name` unless it exists (with `create`), takes its turn
/// lock (with `lock`) and loads it: one round trip, in that order, so the
/// records are read under the lock. The creation and the lock happen only
/// on tables at this memchat's schema version, so the round trip may be
/// sent before the version is known (the connection's first, see
/// [`super::conn`]). The lock is found by the session's name and keyed as
/// [`lock_key`] keys it: `(id % 2147483647)::int4` is the same for the
/// positive ids a `bigserial` gives; NULL (not locked) when there is no
/// such session. The caller keeps or releases it ([`keep_lock`]).
pub async fn create_lock_load(
    client: &tokio_postgres::Client,
    f: &Failer,
    name: &str,
    create: bool,
    lock: bool,
) -> Opened {
    let created_at = format::now();
    let version = super::schema::SCHEMA_VERSION;
    let lock_sql = format!(
        "SELECT pg_try_advisory_lock({LOCK_SPACE}, \
         (SELECT (id % {})::int4 FROM memchat_sessions WHERE name = $1 \
         AND (SELECT version FROM memchat_schema) = $2))",
        i32::MAX
    );
    let row: [(&(dyn tokio_postgres::types::ToSql + Sync), Type); 3] = [
        (&name, Type::TEXT),
        (&created_at, Type::TEXT),
        (&version, Type::INT4),
    ];
    let (created, locked, loaded) = futures::join!(
        async {
            if !create {
                return Ok(false);
            }
            // Committed without waiting for the WAL flush: an empty
            // session needs no durability of its own, and whatever is
            // written to it later (the user's message) commits with a flush
            // that covers the creation too, written to the WAL before it.
            // A server crash can lose only a session nothing was ever
            // written to. Saves a flush (0.15-0.2 ms) on a new session.
            client
                .execute_typed(
                    "INSERT INTO memchat_sessions (name, created_at) \
                     SELECT $1, $2 WHERE (SELECT version FROM memchat_schema) = $3 \
                     AND set_config('synchronous_commit', 'off', true) IS NOT NULL \
                     ON CONFLICT (name) DO NOTHING",
                    &row,
                )
                .await
                .map(|inserted| inserted == 1)
        },
        async {
            lock && client
                .query_typed_one(&lock_sql, &[(&name, Type::TEXT), (&version, Type::INT4)])
                .await
                .ok()
                .and_then(|row| row.try_get::<_, Option<bool>>(0).ok().flatten())
                .unwrap_or(false)
        },
        load_on(client, f, None, name),
    );
    Opened {
        created,
        locked,
        loaded,
    }
}

/// Keeps the turn lock [`create_lock_load`] took only when `keep`, else
/// releases it at once, before any error is returned (the connection may go
/// back to a pooler). Returns whether the lock is held. For the
/// connection's first job only (a lock is asked for only then), where that
/// lock is the only one the connection holds.
pub async fn keep_lock(
    client: &tokio_postgres::Client,
    locked: bool,
    keep: bool,
) -> Result<bool, tokio_postgres::Error> {
    if locked && !keep {
        client
            .batch_execute("SELECT pg_advisory_unlock_all()")
            .await?;
    }
    Ok(locked && keep)
}
