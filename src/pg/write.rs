//! How one change to a session is stored, all or nothing: as one
//! transaction whose statements are pipelined in one round trip
//! ([`apply`]), or, for a message written during this client's turn, as
//! one statement in its own implicit transaction ([`apply_in_turn`]). Both
//! check that the session's `revision` is the one the change was made on,
//! and a lost race fails the whole write ([`RACED`]).

use futures::FutureExt;
use tokio_postgres::types::Type;

use super::conn::{DbError, Link};
use super::rows::{self, Columns};
use super::schema::{LOCK_SPACE, UNLOCK};
use super::session::lock_key;
use crate::memory::format::Record;

/// What one write changes; applied in one transaction by [`apply`].
#[derive(Debug, Default, Clone)]
pub struct Change {
    pub id: i64,
    pub revision: i64,
    pub last_seq: u64,
    pub wait_ms: u64,
    /// Records moved from the active set to the archive.
    pub archive: Vec<u64>,
    /// New active records.
    pub insert: Vec<Record>,
    /// Counts made after their records were stored: (seq, encoding, count).
    pub counts: Vec<(u64, String, u32)>,
    /// New settings in force (JSON) and when they were set.
    pub settings: Option<(String, Option<String>)>,
}

/// Applies `change` in one transaction, in one round trip: BEGIN, the lock,
/// the statements and COMMIT are pipelined (sent together, answered in
/// order) and typed (no prepare round trip each). The server runs them in
/// order, so nothing runs before the lock is held. A lost race must undo
/// the rest, so the revision check fails with an error, not merely by
/// matching no row ([`RACED`]): after any error the transaction is aborted,
/// every later statement fails, and the pipelined COMMIT rolls it back.
pub async fn apply(link: &mut Link, change: Change) -> Result<(), DbError> {
    let (client, f) = link.client()?;
    let begin = format!(
        "BEGIN; SET LOCAL lock_timeout = {}; SELECT pg_advisory_xact_lock({LOCK_SPACE}, {})",
        change.wait_ms,
        lock_key(change.id)
    );
    let last_seq = rows::seq_param(change.last_seq);
    let count_seqs: Vec<i64> = change.counts.iter().map(|c| rows::seq_param(c.0)).collect();
    let encodings: Vec<&str> = change.counts.iter().map(|c| c.1.as_str()).collect();
    let counts: Vec<i64> = change.counts.iter().map(|c| i64::from(c.2)).collect();
    let archive: Vec<i64> = change.archive.iter().map(|&s| rows::seq_param(s)).collect();
    let columns = Columns::new(&change.insert);
    let mut insert: Vec<(&(dyn tokio_postgres::types::ToSql + Sync), Type)> =
        vec![(&change.id, Type::INT8), (&false, Type::BOOL)];
    insert.extend(columns.typed_params());
    let revision_check: [(&(dyn tokio_postgres::types::ToSql + Sync), Type); 3] = [
        (&change.id, Type::INT8),
        (&change.revision, Type::INT8),
        (&last_seq, Type::INT8),
    ];
    let client = &*client;
    let inserted_seqs: Vec<i64> = change
        .insert
        .iter()
        .filter_map(Record::seq)
        .map(rows::seq_param)
        .collect();
    let inserted_count = i64::try_from(inserted_seqs.len()).unwrap_or(i64::MAX);
    let tidy = tidy_moved(change.id, &archive);
    let (begun, updated, settings, counted, archived, inserted, verified, committed) = futures::join!(
        client.batch_execute(&begin),
        client.execute_typed(
            // The CASE tests the id first: a scan of other sessions' rows
            // never reaches the failing branch, whatever order the planner
            // evaluates conditions in.
            "UPDATE memchat_sessions SET revision = revision + 1, last_seq = $3, \
             updated_at = now() WHERE id = $1 AND CASE WHEN id <> $1 THEN false \
             WHEN revision = $2 THEN true \
             ELSE ('memchat-raced: revision ' || revision)::int = 0 END",
            &revision_check,
        ),
        async {
            match &change.settings {
                Some((json, at)) => Some(
                    client
                        .execute_typed(
                            "UPDATE memchat_sessions SET settings = $2::text::jsonb, \
                             settings_at = $3 WHERE id = $1",
                            &[
                                (&change.id, Type::INT8),
                                (json, Type::TEXT),
                                (at, Type::TEXT),
                            ],
                        )
                        .await,
                ),
                None => None,
            }
        },
        async {
            if count_seqs.is_empty() {
                return None;
            }
            Some(
                client
                    .execute_typed(
                        "UPDATE memchat_records r SET tokens_encoding = u.encoding, \
                         tokens_count = u.count \
                         FROM unnest($2::bigint[], $3::text[], $4::bigint[]) AS u(seq, encoding, count) \
                         WHERE r.session_id = $1 AND r.seq = u.seq",
                        &[
                            (&change.id, Type::INT8),
                            (&count_seqs, Type::INT8_ARRAY),
                            (&encodings, Type::TEXT_ARRAY),
                            (&counts, Type::INT8_ARRAY),
                        ],
                    )
                    .await,
            )
        },
        async {
            if archive.is_empty() {
                return None;
            }
            Some(
                client
                    .execute_typed(
                        "UPDATE memchat_records SET archived = true \
                         WHERE session_id = $1 AND seq = ANY($2) AND NOT archived",
                        &[(&change.id, Type::INT8), (&archive, Type::INT8_ARRAY)],
                    )
                    .await,
            )
        },
        async {
            if columns.is_empty() {
                return None;
            }
            Some(client.execute_typed(rows::INSERT, &insert).await)
        },
        async {
            // A statement that fails on the client (its parameters cannot
            // be encoded) is never sent, so the server would commit the
            // rest: the inserted rows are counted inside the transaction,
            // and their absence fails it.
            if inserted_seqs.is_empty() {
                return None;
            }
            Some(
                client
                    .execute_typed(
                        "SELECT CASE WHEN count(*) = $2 THEN 0 \
                         ELSE ('memchat-incomplete: ' || count(*))::int END \
                         FROM memchat_records WHERE session_id = $1 AND seq = ANY($3)",
                        &[
                            (&change.id, Type::INT8),
                            (&inserted_count, Type::INT8),
                            (&inserted_seqs, Type::INT8_ARRAY),
                        ],
                    )
                    .await,
            )
        },
        client.batch_execute("COMMIT"),
    );
    if let Some(tidy) = &tidy {
        // Sent once the move is committed, and not waited for (like a
        // release): it changes nothing stored, and whatever comes next on
        // the connection queues behind it. The first poll hands it to the
        // connection task, which drops its answer.
        let _ = client.batch_execute(tidy).now_or_never();
    }
    let outcome = (|| {
        if let Err(e) = begun {
            return Err(match f.fail(e) {
                DbError::Locked { .. } => DbError::Locked {
                    waited_secs: change.wait_ms / 1000,
                },
                other => other,
            });
        }
        match updated {
            Ok(1) => {}
            // The session is gone (deleted elsewhere): nothing matched, and
            // nothing else could be stored for it (its records' foreign key).
            Ok(_) => return Err(DbError::Raced),
            Err(e)
                if e.as_db_error()
                    .is_some_and(|db| db.message().contains(RACED)) =>
            {
                return Err(DbError::Raced);
            }
            Err(e) => return Err(f.fail(e)),
        }
        for result in [settings, counted, archived, inserted, verified]
            .into_iter()
            .flatten()
        {
            result.map_err(|e| f.fail(e))?;
        }
        Ok(())
    })();
    match outcome {
        // Every statement succeeded, so the COMMIT committed them.
        Ok(()) => committed.map_err(|e| f.fail(e)),
        // The transaction was aborted, so the COMMIT rolled it back (or the
        // connection is lost, and the server rolls it back).
        Err(e) => Err(e),
    }
}

/// After records of session `id` moved to the archive (their `seq`s in
/// `moved`), a read of them through the active-records index as a plain
/// index scan, in a query of its own: the rows' old versions stay in
/// that index until a vacuum, and every load of the session would visit each
/// of them in the heap (a bitmap scan does not mark them). A plain index
/// scan marks the entries whose rows are dead to everyone, and later scans
/// of any kind skip them: after `--new` on 100,000 messages a load took
/// 5.4 ms until a vacuum, and 0.6 ms once they were marked. The range of the
/// moved `seq`s bounds the scan to them (and the few active records among
/// them). `None` when nothing moved.
fn tidy_moved(id: i64, moved: &[i64]) -> Option<String> {
    let (lo, hi) = (moved.iter().min()?, moved.iter().max()?);
    // No BEGIN and COMMIT: the statements of one query are a transaction
    // of their own, which `SET LOCAL` lasts for, and which an error (a
    // `statement_timeout`) ends, where a failed explicit block would stay
    // open and fail every later statement on the connection.
    Some(format!(
        "SET LOCAL enable_bitmapscan = off; SET LOCAL enable_seqscan = off; \
         SELECT count(kind) FROM memchat_records \
         WHERE session_id = {id} AND NOT archived AND seq BETWEEN {lo} AND {hi}"
    ))
}

/// Whether [`apply_in_turn`] can store `change`: new records (and maybe the
/// settings) and nothing else, written while this client holds the turn lock.
pub fn is_plain_append(change: &Change) -> bool {
    !change.insert.is_empty() && change.archive.is_empty() && change.counts.is_empty()
}

/// Stores a plain append ([`is_plain_append`]) made during this client's
/// turn as one statement: the session row's revision check and bump, the
/// settings and the new records, in the implicit transaction of a single
/// statement (committed when the server answers, one round trip, no BEGIN
/// or COMMIT). It is all or nothing without further checks: one statement
/// is sent whole or not at all, and any error in it undoes all of it.
///
/// The turn lock is held already (so no `pg_advisory_xact_lock`: every
/// other writer must take the lock this client holds). The lock wait still
/// bounds a wait for the session's row (a row lock held by something that
/// is not memchat): `set_config(..., true)` sets it for this transaction,
/// and it is evaluated with the row's conditions, before the row is locked.
/// The records are inserted from the updated row (`FROM rev`), so a
/// session deleted elsewhere inserts nothing and a lost race none either.
///
/// With `release` (the turn lock's second key), the lock's release follows
/// the statement in the same round trip, as a statement of its own: it runs
/// once the write is committed, or failed.
pub async fn apply_in_turn(
    link: &mut Link,
    change: Change,
    release: Option<i32>,
) -> Result<(), DbError> {
    if let Some(key) = release {
        // Sent with the write, whatever becomes of it (a lost connection
        // has released the lock too): the turn ends here.
        link.ended_turn(key);
    }
    let (client, f) = link.client()?;
    let last_seq = rows::seq_param(change.last_seq);
    let wait = format!("{}ms", change.wait_ms);
    let (has_settings, settings, settings_at) = match &change.settings {
        Some((json, at)) => (true, Some(json.as_str()), at.as_deref()),
        None => (false, None, None),
    };
    let columns = Columns::new(&change.insert);
    let mut params: Vec<(&(dyn tokio_postgres::types::ToSql + Sync), Type)> =
        vec![(&change.id, Type::INT8), (&false, Type::BOOL)];
    let statement = match columns.typed_one() {
        Some(one) => {
            params.extend(one);
            &*IN_TURN_APPEND_ONE
        }
        None => {
            params.extend(columns.typed_params());
            &*IN_TURN_APPEND
        }
    };
    params.extend([
        (&change.revision as _, Type::INT8),
        (&last_seq as _, Type::INT8),
        (&wait as _, Type::TEXT),
        (&has_settings as _, Type::BOOL),
        (&settings as _, Type::TEXT),
        (&settings_at as _, Type::TEXT),
    ]);
    // `join!` polls the write first, and a statement is queued on the
    // connection at its first poll: the write, then the unlock, each with
    // its own Sync, so the server commits the write before it releases.
    let (written, ()) = futures::join!(client.execute_typed(statement, &params), async {
        if let Some(key) = &release {
            // Its answer tells nothing the write's does not: it fails
            // only with the connection, which releases the lock too.
            let _ = client.execute_typed(UNLOCK, &[(key, Type::INT4)]).await;
        }
    });
    let inserted = written.map_err(|e| {
        if e.as_db_error()
            .is_some_and(|db| db.message().contains(RACED))
        {
            DbError::Raced
        } else {
            f.fail(e)
        }
    })?;
    if usize::try_from(inserted).is_ok_and(|n| n == change.insert.len()) {
        Ok(())
    } else {
        // The session is gone (deleted elsewhere): its row matched nothing,
        // so nothing was inserted.
        Err(DbError::Raced)
    }
}

/// The statement of [`apply_in_turn`]: [`rows::INSERT`]'s `$1`..`$18`
/// (the session's id from the updated row), then `$19` the revision this
/// copy was loaded at, `$20` the new `last_seq`, `$21` the lock wait,
/// `$22` whether to set the settings, `$23` their JSON, `$24` when.
static IN_TURN_APPEND: std::sync::LazyLock<String> = std::sync::LazyLock::new(|| {
    let insert = rows::INSERT.replacen(
        "SELECT $1, $2, * FROM",
        "SELECT rev.id, $2, u.* FROM rev,",
        1,
    );
    in_turn_append(&format!("{insert} AS u"))
});

/// The session row's revision check and bump, then `insert`, which takes
/// the session's id from the updated row (`rev`).
fn in_turn_append(insert: &str) -> String {
    format!(
        "WITH rev AS (UPDATE memchat_sessions SET revision = revision + 1, last_seq = $20, \
         updated_at = now(), \
         settings = CASE WHEN $22 THEN $23::text::jsonb ELSE settings END, \
         settings_at = CASE WHEN $22 THEN $24 ELSE settings_at END \
         WHERE id = $1 AND set_config('lock_timeout', $21, true) IS NOT NULL \
         AND CASE WHEN id <> $1 THEN false WHEN revision = $19 THEN true \
         ELSE ('{RACED}: revision ' || revision)::int = 0 END \
         RETURNING id) {insert}"
    )
}

/// [`IN_TURN_APPEND`] for one record ([`rows::INSERT_ONE`], scalar
/// parameters).
static IN_TURN_APPEND_ONE: std::sync::LazyLock<String> = std::sync::LazyLock::new(|| {
    let insert = rows::INSERT_ONE.replacen("SELECT $1, $2,", "SELECT rev.id, $2,", 1);
    in_turn_append(&format!("{insert} FROM rev"))
});

/// What the revision check's error says when another client changed the
/// session since it was loaded.
pub const RACED: &str = "memchat-raced";

#[cfg(test)]
mod tests {
    use super::{IN_TURN_APPEND, IN_TURN_APPEND_ONE};

    /// The records must come from the updated session row (`FROM rev`): a
    /// session deleted elsewhere then inserts nothing (a race), instead of
    /// failing on the foreign key. The statement is made from
    /// `rows::INSERT` by a replacement that would silently do nothing if
    /// that text changed.
    #[test]
    fn the_in_turn_append_inserts_from_the_updated_row() {
        assert!(IN_TURN_APPEND.contains("SELECT rev.id, $2, u.* FROM rev, unnest("));
        assert!(!IN_TURN_APPEND.contains("SELECT $1, $2, *"));
        assert!(IN_TURN_APPEND_ONE.ends_with("SELECT rev.id, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16, $17, $18 FROM rev"));
        assert!(!IN_TURN_APPEND_ONE.contains("$1, $2, $3"));
    }
}
