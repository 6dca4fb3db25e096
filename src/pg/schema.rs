//! memchat's tables, created and migrated by memchat itself.
//!
//! The schema is versioned by one row of `memchat_schema`. A connection reads
//! it (one round trip); a missing table or an older version is brought up to
//! date in one transaction, under an advisory lock so two clients starting
//! at once do not both migrate; a newer version is refused, as the file
//! format refuses a newer version, and nothing is changed.
//!
//! The tables hold exactly what the JSON Lines format holds (see
//! `memory/README.md`): a session row is the header (name, `created_at`,
//! `last_seq`, the settings in force, and when it was last written); a record row is a message or a summary with every optional
//! field, and a flag saying whether it is in the archive. `(session, seq)` is
//! the primary key, so two writers can never both store a `seq`. PostgreSQL
//! text cannot hold a NUL character, which JSON can: a content with one is
//! kept exactly in `content_exact` (bytes), and `content` holds it with each
//! NUL shown as U+2400 (for search and for people reading the table).

use tokio_postgres::Client;
use tokio_postgres::error::SqlState;

/// The schema this memchat reads and writes.
pub const SCHEMA_VERSION: i32 = 3;

/// The first key of every advisory lock memchat takes, as SQL: a hash of
/// memchat's schema, so installations in two schemas of one database never
/// block each other (advisory locks are database-wide, session ids are per
/// schema). The second key is a session's id, or 0 for the schema's
/// migration.
pub const LOCK_SPACE: &str = "hashtext('memchat:' || current_schema())";

/// Releases a session's turn lock: `$1` the second key (an `int4`).
pub const UNLOCK: &str = "SELECT pg_advisory_unlock(hashtext('memchat:' || current_schema()), $1)";

/// How much of a record's content the search index covers, in characters.
/// PostgreSQL refuses a `tsvector` over 1 MiB (its words with their
/// positions), and a record may hold 4 MiB (the file store's cap): indexing
/// all of it made such a record impossible to store. The worst text found
/// (hyphenated words of four-byte characters, each indexed whole and in its
/// parts) takes about 6.5 bytes a character, so 100,000 characters stay
/// near 650 KB; 200,000 overflowed (`tests/it/pg_schema.rs`).
pub const SEARCHED_CHARS: usize = 100_000;

/// Each step brings the schema from version `i` to `i + 1`.
const MIGRATIONS: [&str; 3] = [
    r#"
CREATE TABLE memchat_sessions (
    id          bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    name        text NOT NULL UNIQUE,
    created_at  text NOT NULL,
    last_seq    bigint NOT NULL DEFAULT 0 CHECK (last_seq BETWEEN 0 AND 9007199254740991),
    -- The settings in force (a JSON object, as a `settings` record holds
    -- them) and when they were last set; NULL when none are.
    settings    jsonb,
    settings_at text,
    -- Bumped by every change, so a client knows whether its copy is current.
    revision    bigint NOT NULL DEFAULT 0,
    -- When the session was last written (the file store's modification
    -- time): `sessions` sorts by it, `-c` takes the newest.
    updated_at  timestamptz NOT NULL DEFAULT now()
);
CREATE TABLE memchat_records (
    session_id        bigint NOT NULL REFERENCES memchat_sessions (id) ON DELETE CASCADE,
    seq               bigint NOT NULL CHECK (seq BETWEEN 1 AND 9007199254740991),
    kind              text NOT NULL CHECK (kind IN ('message', 'summary')),
    archived          boolean NOT NULL DEFAULT false,
    role              text CHECK (role IN ('system', 'user', 'assistant')),
    content           text NOT NULL,
    content_exact     bytea,
    at                text NOT NULL,
    model             text,
    interrupted       boolean NOT NULL DEFAULT false,
    truncated         boolean NOT NULL DEFAULT false,
    tokens_encoding   text,
    tokens_count      bigint CHECK (tokens_count BETWEEN 0 AND 4294967295),
    prompt_tokens     bigint CHECK (prompt_tokens BETWEEN 0 AND 4294967295),
    completion_tokens bigint CHECK (completion_tokens BETWEEN 0 AND 4294967295),
    covers_first      bigint CHECK (covers_first BETWEEN 1 AND 9007199254740991),
    covers_last       bigint CHECK (covers_last BETWEEN 1 AND 9007199254740991),
    method            text,
    search            tsvector GENERATED ALWAYS AS (to_tsvector('simple', content)) STORED,
    PRIMARY KEY (session_id, seq),
    CHECK ((kind = 'message') = (role IS NOT NULL)),
    CHECK ((kind = 'summary') = (covers_first IS NOT NULL AND covers_last IS NOT NULL
                                  AND method IS NOT NULL)),
    CHECK ((tokens_encoding IS NULL) = (tokens_count IS NULL)),
    CHECK ((prompt_tokens IS NULL) = (completion_tokens IS NULL))
);
-- Loading a session reads its active records only: the archive stays off
-- the hot path however large it grows.
CREATE INDEX memchat_records_active ON memchat_records (session_id, seq) WHERE NOT archived;
CREATE INDEX memchat_records_search ON memchat_records USING gin (search);
"#,
    r#"
-- 1 -> 2: the search index covers a content's first SEARCHED_CHARS
-- characters (to_tsvector of more than 1 MiB of words fails, which made a
-- large record impossible to store). PostgreSQL 15 cannot change a
-- generated column's expression: the column (and its index) are made anew.
ALTER TABLE memchat_records DROP COLUMN search;
ALTER TABLE memchat_records ADD COLUMN search tsvector
    GENERATED ALWAYS AS (to_tsvector('simple', left(content, 100000))) STORED;
CREATE INDEX memchat_records_search ON memchat_records USING gin (search);
"#,
    r#"
-- 2 -> 3: words are cut at ASCII punctuation before PostgreSQL's parser
-- sees them, as the file store's index (SQLite's unicode61) and memchat's
-- own rules (src/terms.rs) cut them: the `simple` parser keeps a file name,
-- a path, an e-mail address, a host or a version number whole, so
-- `config` did not find `config.yaml` nor `alice` `alice@corp.io`. The
-- ranges are ASCII's punctuation, spelt without a locale's classes (a
-- database in the C locale would call every non-ASCII letter
-- punctuation).
ALTER TABLE memchat_records DROP COLUMN search;
ALTER TABLE memchat_records ADD COLUMN search tsvector
    GENERATED ALWAYS AS (to_tsvector('simple',
        regexp_replace(left(content, 100000), '[!-/:-@[-`{-~]+', ' ', 'g'))) STORED;
CREATE INDEX memchat_records_search ON memchat_records USING gin (search);
"#,
];

/// Why the schema cannot be used.
#[derive(Debug)]
pub enum SchemaError {
    Db(tokio_postgres::Error),
    /// The tables are of a newer memchat: the message says so.
    Newer(String),
}

impl From<tokio_postgres::Error> for SchemaError {
    fn from(e: tokio_postgres::Error) -> Self {
        SchemaError::Db(e)
    }
}

/// The question the connection asks first: which version the tables are
/// at ([`judge`] says what the answer means).
pub const VERSION_QUERY: &str = "SELECT version FROM memchat_schema";

/// What the answer to [`VERSION_QUERY`] means.
#[derive(Debug, PartialEq, Eq)]
pub enum Verdict {
    /// The tables are at [`SCHEMA_VERSION`]: ready.
    Current,
    /// Missing or older: [`migrate`] creates or upgrades them.
    Migrate,
}

/// Judges the answer to [`VERSION_QUERY`]; a newer schema is an error.
pub fn judge(
    answer: Result<Option<tokio_postgres::Row>, tokio_postgres::Error>,
) -> Result<Verdict, SchemaError> {
    match answer {
        Ok(Some(row)) => {
            let version: i32 = row.try_get(0)?;
            match version.cmp(&SCHEMA_VERSION) {
                std::cmp::Ordering::Equal => Ok(Verdict::Current),
                std::cmp::Ordering::Greater => Err(newer(version)),
                std::cmp::Ordering::Less => Ok(Verdict::Migrate),
            }
        }
        Ok(None) => Ok(Verdict::Migrate),
        Err(e) if e.code() == Some(&SqlState::UNDEFINED_TABLE) => Ok(Verdict::Migrate),
        Err(e) => Err(e.into()),
    }
}

fn newer(version: i32) -> SchemaError {
    SchemaError::Newer(format!(
        "memchat's tables in this database are schema version {version}, newer than this \
         memchat's ({SCHEMA_VERSION}); upgrade memchat to use them (nothing was changed)"
    ))
}

/// Creates or upgrades the tables in one transaction.
pub async fn migrate(client: &mut Client) -> Result<(), SchemaError> {
    let tx = client.transaction().await?;
    tx.execute(
        &format!("SELECT pg_advisory_xact_lock({LOCK_SPACE}, 0)"),
        &[],
    )
    .await?;
    tx.batch_execute(
        "CREATE TABLE IF NOT EXISTS memchat_schema (
             one     boolean PRIMARY KEY DEFAULT true CHECK (one),
             version integer NOT NULL
         )",
    )
    .await?;
    let found: Option<i32> = match tx
        .query_opt("SELECT version FROM memchat_schema", &[])
        .await?
    {
        Some(row) => Some(row.try_get(0)?),
        None => None,
    };
    let from = found.unwrap_or(0);
    if from > SCHEMA_VERSION {
        return Err(newer(from));
    }
    for step in MIGRATIONS.iter().skip(usize::try_from(from).unwrap_or(0)) {
        tx.batch_execute(step).await?;
    }
    tx.execute(
        "INSERT INTO memchat_schema (one, version) VALUES (true, $1)
         ON CONFLICT (one) DO UPDATE SET version = EXCLUDED.version",
        &[&SCHEMA_VERSION],
    )
    .await?;
    tx.commit().await?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::{LOCK_SPACE, UNLOCK};

    /// The migration's literal is the constant the docs and tests use.
    #[test]
    fn the_search_index_covers_searched_chars() {
        for step in &super::MIGRATIONS[1..] {
            assert!(step.contains(&format!("left(content, {})", super::SEARCHED_CHARS)));
        }
    }

    /// The release must name the lock the turn takes.
    #[test]
    fn the_unlock_is_in_the_lock_space() {
        assert_eq!(
            UNLOCK,
            format!("SELECT pg_advisory_unlock({LOCK_SPACE}, $1)")
        );
    }
}
