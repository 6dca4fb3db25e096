//! Storing a write whose connection was lost, once: the connection opened
//! again, the turn's lock taken again, and the write sent again if nobody
//! else wrote to the session meanwhile.
//!
//! A turn's lock is a session-level advisory lock: it dies with its
//! connection. A connection can die in the middle of a turn without any
//! fault of the turn's (the server's `idle_session_timeout` or a pooler's
//! idle timeout during a long reply, an administrator's
//! `pg_terminate_backend`, a network drop on a laptop). The reply the user
//! has just read must not be lost for that: while the lock was gone another
//! client may have taken a turn, which the session's revision tells. When
//! it has not moved, nothing else was written and the write is made as if
//! the connection had never dropped. When this write's records are there,
//! field by field, the connection died after the commit, before its
//! answer: the write is done, whatever was written after it. Anything else
//! is refused, nothing written.

use tokio_postgres::types::Type;

use super::conn::{DbError, Link};
use super::rows::Columns;
use super::schema::UNLOCK;
use super::session::{lock_key, lock_turn};
use super::write::{Change, apply, apply_in_turn};

/// Makes `change` (in the turn, as [`apply_in_turn`] with `release`, when
/// `plain_in_turn`; else as [`apply`]) and, if it failed because the
/// connection was lost, takes the turn up again and makes it once more.
/// `had_turn`: this client held the turn lock before the write.
pub async fn write_resuming(
    link: &mut Link,
    change: Change,
    plain_in_turn: bool,
    release: Option<i32>,
    had_turn: bool,
) -> Result<(), DbError> {
    let error = match make(link, change.clone(), plain_in_turn, release).await {
        Ok(()) => return Ok(()),
        // The server answered: the connection is alive.
        Err(e @ (DbError::Raced | DbError::Locked { .. })) => return Err(e),
        Err(e) => e,
    };
    if link.alive().await {
        return Err(error);
    }
    link.reconnect_if_closed().await;
    if !had_turn {
        // `apply` takes the lock itself and checks the revision; a write
        // committed before the connection died would only be refused.
        if stored(link, &change).await {
            return Ok(());
        }
        return apply(link, change).await.map_err(|e| lost_then(&e));
    }
    let (id, revision, wait_ms) = (change.id, change.revision, change.wait_ms);
    let current = match lock_turn(link, id, wait_ms).await {
        Ok(Some(current)) => {
            link.took_turn(lock_key(id));
            current
        }
        Ok(None) => {
            return Err(DbError::Failed(
                "the connection to the server was lost mid-turn, and the session was deleted \
                 meanwhile; nothing of this step was written"
                    .to_string(),
            ));
        }
        Err(e) => return Err(lost_then(&e)),
    };
    if current == revision {
        return make(link, change, plain_in_turn, release).await;
    }
    // Committed before the connection died.
    if stored(link, &change).await {
        if current == revision + 1 {
            // Nothing else was written since: done, the turn goes on.
            if let Some(key) = release {
                if let Ok((client, _)) = link.client() {
                    let _ = client.execute_typed(UNLOCK, &[(&key, Type::INT4)]).await;
                }
                link.ended_turn(key);
            }
            return Ok(());
        }
        // Done, but another client wrote after it: this client's copy is
        // out of date, and the turn stops here (a request made from it
        // would leave out what the other wrote).
        link.release_later(lock_key(id));
        return Err(DbError::Failed(format!(
            "the connection to the server was lost mid-turn; this step was stored, but {} \
             after it, so the turn stops here",
            crate::store::WRITTEN_MEANWHILE
        )));
    }
    link.release_later(lock_key(id));
    if change.insert.is_empty() && current == revision + 1 {
        // No record to know it by (a move to the archive, settings): one
        // write happened, this one or another client's.
        return Err(DbError::Failed(
            "the connection to the server was lost as this step was committed, and memchat \
             cannot tell whether it was (look at the session before doing it again)"
                .to_string(),
        ));
    }
    Err(DbError::Failed(format!(
        "the connection to the server was lost mid-turn, and {} before this one could take \
         it up again; nothing of this step was written",
        crate::store::WRITTEN_MEANWHILE
    )))
}

/// `change` made as [`apply_in_turn`] makes it (with `release`) when
/// `plain_in_turn`, else as [`apply`].
async fn make(
    link: &mut Link,
    change: Change,
    plain_in_turn: bool,
    release: Option<i32>,
) -> Result<(), DbError> {
    if plain_in_turn {
        apply_in_turn(link, change, release).await
    } else {
        apply(link, change).await
    }
}

/// Whether every record of `change` is stored as `change` holds it, field
/// by field (the connection died after the write's commit, before its
/// answer): its `seq`, kind, role, content, time and model. Another
/// client's record in the same place differs in one of them (a user's
/// message with the text of this reply differs in its role).
async fn stored(link: &mut Link, change: &Change) -> bool {
    let Ok((client, _)) = link.client() else {
        return false;
    };
    let columns = Columns::new(&change.insert);
    if columns.is_empty() {
        // Nothing to tell this write from another by.
        return false;
    }
    let keys = columns.keys();
    let found = client
        .query_typed_one(
            "SELECT count(*) FROM memchat_records r, \
             unnest($2::bigint[], $3::text[], $4::text[], $5::text[], $6::bytea[], \
                    $7::text[], $8::text[]) \
               AS k(seq, kind, role, content, exact, at, model) \
             WHERE r.session_id = $1 AND r.seq = k.seq AND r.kind = k.kind \
             AND r.role IS NOT DISTINCT FROM k.role AND r.content = k.content \
             AND r.content_exact IS NOT DISTINCT FROM k.exact AND r.at = k.at \
             AND r.model IS NOT DISTINCT FROM k.model",
            &[
                (&change.id, Type::INT8),
                (&keys.seq, Type::INT8_ARRAY),
                (&keys.kind, Type::TEXT_ARRAY),
                (&keys.role, Type::TEXT_ARRAY),
                (&keys.content, Type::TEXT_ARRAY),
                (&keys.content_exact, Type::BYTEA_ARRAY),
                (&keys.at, Type::TEXT_ARRAY),
                (&keys.model, Type::TEXT_ARRAY),
            ],
        )
        .await
        .and_then(|row| row.try_get::<_, i64>(0));
    matches!(found, Ok(n) if usize::try_from(n).is_ok_and(|n| n == columns.len()))
}

/// The error of taking a turn up again, said as such.
fn lost_then(error: &DbError) -> DbError {
    let why = match error {
        DbError::Locked { waited_secs } => {
            format!("another memchat took the session's turn and held it for {waited_secs}s")
        }
        DbError::Raced => "another memchat wrote to the session meanwhile".to_string(),
        DbError::Failed(reason) => reason.clone(),
    };
    DbError::Failed(format!(
        "the connection to the server was lost mid-turn and could not be taken up again \
         ({why}); nothing of this step was written"
    ))
}
