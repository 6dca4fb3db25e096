//! Records to rows and back: the one place that knows the columns of
//! `memchat_records` (see `schema.rs`).

use tokio_postgres::Row;
use tokio_postgres::types::{ToSql, Type};

use crate::memory::format::{MessageRecord, Record, Role, SummaryRecord, TokenCache, UsageRecord};

use super::conn::DbError;

/// The columns read back, in the order [`record_from_row`] expects.
pub const COLUMNS: &str = "seq, kind, role, content, content_exact, at, model, interrupted, \
                           truncated, tokens_encoding, tokens_count, prompt_tokens, \
                           completion_tokens, covers_first, covers_last, method";

/// `INSERT INTO memchat_records` and its column list, for [`INSERT`] and
/// [`INSERT_ONE`].
macro_rules! insert_into {
    () => {
        "INSERT INTO memchat_records (session_id, archived, seq, kind, role, content, \
         content_exact, at, model, interrupted, truncated, tokens_encoding, tokens_count, \
         prompt_tokens, completion_tokens, covers_first, covers_last, method)"
    };
}

/// Inserts rows given as parallel arrays (one statement for any number of
/// records): `$1` the session's id, `$2` whether they are archived.
pub const INSERT: &str = concat!(
    insert_into!(),
    " SELECT $1, $2, * FROM unnest($3::bigint[], $4::text[], $5::text[], $6::text[], \
     $7::bytea[], $8::text[], $9::text[], $10::boolean[], $11::boolean[], $12::text[], \
     $13::bigint[], $14::bigint[], $15::bigint[], $16::bigint[], $17::bigint[], $18::text[])"
);

/// [`INSERT`] for exactly one record, its columns as scalars
/// ([`Columns::typed_one`]): what nearly every write during a turn is (the
/// user's message, the reply). The server parses and plans it in about
/// two thirds of the time `unnest` over sixteen arrays takes (pgbench).
pub const INSERT_ONE: &str = concat!(
    insert_into!(),
    " SELECT $1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16, $17, $18"
);

/// [`Columns::keys`]: what tells a record stored by one write from
/// another's.
pub struct RecordKeys<'a> {
    pub seq: &'a [i64],
    pub kind: &'a [&'static str],
    pub role: &'a [Option<&'static str>],
    pub content: &'a [String],
    pub content_exact: &'a [Option<Vec<u8>>],
    pub at: &'a [String],
    pub model: &'a [Option<String>],
}

/// Records as the parallel arrays of [`INSERT`].
#[derive(Default)]
pub struct Columns {
    seq: Vec<i64>,
    kind: Vec<&'static str>,
    role: Vec<Option<&'static str>>,
    content: Vec<String>,
    content_exact: Vec<Option<Vec<u8>>>,
    at: Vec<String>,
    model: Vec<Option<String>>,
    interrupted: Vec<bool>,
    truncated: Vec<bool>,
    tokens_encoding: Vec<Option<String>>,
    tokens_count: Vec<Option<i64>>,
    prompt_tokens: Vec<Option<i64>>,
    completion_tokens: Vec<Option<i64>>,
    covers_first: Vec<Option<i64>>,
    covers_last: Vec<Option<i64>>,
    method: Vec<Option<String>>,
}

/// Why PostgreSQL cannot store `records` and `settings` (JSON) as they are:
/// a NUL character anywhere but in a message's content (which has a column
/// of its own for it, `content_exact`). memchat never makes one (titles
/// and model names are refused with one); a hand-made log may hold one,
/// and its import or migration is then refused in one line, naming it.
pub fn unstorable<'a>(
    records: impl IntoIterator<Item = &'a Record>,
    settings: Option<&str>,
) -> Option<String> {
    let nul = |text: &str| text.contains('\0');
    if settings.is_some_and(|json| json.contains("\\u0000")) {
        return Some(
            "the session's settings hold a NUL character, which PostgreSQL cannot store".into(),
        );
    }
    records.into_iter().find_map(|record| {
        let (seq, fields): (u64, Vec<(&str, &str)>) = match record {
            Record::Message(m) => (
                m.seq,
                vec![("time", m.at.as_str()), ("model", m.model.as_deref().unwrap_or(""))],
            ),
            Record::Summary(s) => (s.seq, vec![("time", s.at.as_str()), ("method", s.method.as_str())]),
            Record::Header(_) | Record::Settings(_) => return None,
        };
        fields.into_iter().find(|(_, text)| nul(text)).map(|(field, _)| {
            format!("record #{seq}: its {field} holds a NUL character, which PostgreSQL cannot store")
        })
    })
}

/// A `seq` as PostgreSQL's bigint (every valid one fits: at most 2^53 - 1).
pub fn seq_param(seq: u64) -> i64 {
    i64::try_from(seq).unwrap_or(i64::MAX)
}

impl Columns {
    pub fn new(records: &[Record]) -> Columns {
        let mut c = Columns::default();
        for record in records {
            c.push(record);
        }
        c
    }

    pub fn len(&self) -> usize {
        self.seq.len()
    }

    pub fn is_empty(&self) -> bool {
        self.seq.is_empty()
    }

    /// What tells the records apart once stored (see [`RecordKeys`]).
    pub fn keys(&self) -> RecordKeys<'_> {
        RecordKeys {
            seq: &self.seq,
            kind: &self.kind,
            role: &self.role,
            content: &self.content,
            content_exact: &self.content_exact,
            at: &self.at,
            model: &self.model,
        }
    }

    fn push(&mut self, record: &Record) {
        let (seq, content, at, tokens) = match record {
            // Not rows of this table: the header and the settings are
            // columns of the session's row.
            Record::Header(_) | Record::Settings(_) => return,
            Record::Message(m) => (m.seq, &m.content, &m.at, &m.tokens),
            Record::Summary(s) => (s.seq, &s.content, &s.at, &s.tokens),
        };
        self.seq.push(seq_param(seq));
        let (text, exact) = storable(content);
        self.content.push(text);
        self.content_exact.push(exact);
        self.at.push(at.clone());
        self.tokens_encoding
            .push(tokens.as_ref().map(|t| t.encoding.clone()));
        self.tokens_count
            .push(tokens.as_ref().map(|t| i64::from(t.count)));
        match record {
            Record::Message(m) => {
                self.kind.push("message");
                self.role.push(Some(m.role.as_str()));
                self.model.push(m.model.clone());
                self.interrupted.push(m.interrupted);
                self.truncated.push(m.truncated);
                self.prompt_tokens
                    .push(m.usage.map(|u| i64::from(u.prompt_tokens)));
                self.completion_tokens
                    .push(m.usage.map(|u| i64::from(u.completion_tokens)));
                self.covers_first.push(None);
                self.covers_last.push(None);
                self.method.push(None);
            }
            Record::Summary(s) => {
                self.kind.push("summary");
                self.role.push(None);
                self.model.push(None);
                self.interrupted.push(false);
                self.truncated.push(false);
                self.prompt_tokens.push(None);
                self.completion_tokens.push(None);
                self.covers_first.push(Some(seq_param(s.covers[0])));
                self.covers_last.push(Some(seq_param(s.covers[1])));
                self.method.push(Some(s.method.clone()));
            }
            Record::Header(_) | Record::Settings(_) => {}
        }
    }

    /// The parameters `$3` to `$18` of [`INSERT`] with their types (the
    /// casts written in it), for a statement sent without a separate
    /// prepare round trip.
    pub fn typed_params(&self) -> [(&(dyn ToSql + Sync), Type); 16] {
        let [
            seq,
            kind,
            role,
            content,
            exact,
            at,
            model,
            interrupted,
            truncated,
            encoding,
            count,
            prompt,
            completion,
            first,
            last,
            method,
        ] = self.params();
        [
            (seq, Type::INT8_ARRAY),
            (kind, Type::TEXT_ARRAY),
            (role, Type::TEXT_ARRAY),
            (content, Type::TEXT_ARRAY),
            (exact, Type::BYTEA_ARRAY),
            (at, Type::TEXT_ARRAY),
            (model, Type::TEXT_ARRAY),
            (interrupted, Type::BOOL_ARRAY),
            (truncated, Type::BOOL_ARRAY),
            (encoding, Type::TEXT_ARRAY),
            (count, Type::INT8_ARRAY),
            (prompt, Type::INT8_ARRAY),
            (completion, Type::INT8_ARRAY),
            (first, Type::INT8_ARRAY),
            (last, Type::INT8_ARRAY),
            (method, Type::TEXT_ARRAY),
        ]
    }

    /// The parameters `$3` to `$18` of [`INSERT_ONE`] with their types;
    /// `None` unless there is exactly one record.
    pub fn typed_one(&self) -> Option<[(&(dyn ToSql + Sync), Type); 16]> {
        if self.len() != 1 {
            return None;
        }
        Some([
            (&self.seq[0], Type::INT8),
            (&self.kind[0], Type::TEXT),
            (&self.role[0], Type::TEXT),
            (&self.content[0], Type::TEXT),
            (&self.content_exact[0], Type::BYTEA),
            (&self.at[0], Type::TEXT),
            (&self.model[0], Type::TEXT),
            (&self.interrupted[0], Type::BOOL),
            (&self.truncated[0], Type::BOOL),
            (&self.tokens_encoding[0], Type::TEXT),
            (&self.tokens_count[0], Type::INT8),
            (&self.prompt_tokens[0], Type::INT8),
            (&self.completion_tokens[0], Type::INT8),
            (&self.covers_first[0], Type::INT8),
            (&self.covers_last[0], Type::INT8),
            (&self.method[0], Type::TEXT),
        ])
    }

    /// The parameters `$3` to `$18` of [`INSERT`].
    pub fn params(&self) -> [&(dyn ToSql + Sync); 16] {
        [
            &self.seq,
            &self.kind,
            &self.role,
            &self.content,
            &self.content_exact,
            &self.at,
            &self.model,
            &self.interrupted,
            &self.truncated,
            &self.tokens_encoding,
            &self.tokens_count,
            &self.prompt_tokens,
            &self.completion_tokens,
            &self.covers_first,
            &self.covers_last,
            &self.method,
        ]
    }
}

/// A content as PostgreSQL text, and its exact bytes when text cannot hold
/// it (a NUL, which becomes U+2400 in the text).
fn storable(content: &str) -> (String, Option<Vec<u8>>) {
    if content.contains('\0') {
        (
            content.replace('\0', "\u{2400}"),
            Some(content.as_bytes().to_vec()),
        )
    } else {
        (content.to_string(), None)
    }
}

fn bad(what: &str) -> DbError {
    DbError::Failed(format!(
        "a row of memchat_records is not a valid record ({what}); was it changed by hand?"
    ))
}

fn seq_of(value: i64) -> Result<u64, DbError> {
    u64::try_from(value)
        .ok()
        .filter(|s| (1..=crate::memory::format::MAX_SEQ).contains(s))
        .ok_or_else(|| bad("seq out of range"))
}

fn count_of(value: Option<i64>) -> Result<Option<u32>, DbError> {
    value
        .map(|v| u32::try_from(v).map_err(|_| bad("count out of range")))
        .transpose()
}

/// A row of [`COLUMNS`] as the record it stores.
pub fn record_from_row(row: &Row) -> Result<Record, DbError> {
    let get_err = |e: tokio_postgres::Error| bad(&e.to_string());
    let seq = seq_of(row.try_get(0).map_err(get_err)?)?;
    let kind: &str = row.try_get(1).map_err(get_err)?;
    let role: Option<&str> = row.try_get(2).map_err(get_err)?;
    let exact: Option<Vec<u8>> = row.try_get(4).map_err(get_err)?;
    let content = match exact {
        Some(bytes) => String::from_utf8(bytes).map_err(|_| bad("content is not UTF-8"))?,
        None => row.try_get(3).map_err(get_err)?,
    };
    let at: String = row.try_get(5).map_err(get_err)?;
    let encoding: Option<String> = row.try_get(9).map_err(get_err)?;
    let count = count_of(row.try_get(10).map_err(get_err)?)?;
    let tokens = match (encoding, count) {
        (Some(encoding), Some(count)) => Some(TokenCache { encoding, count }),
        _ => None,
    };
    match kind {
        "message" => {
            let role = match role {
                Some("system") => Role::System,
                Some("user") => Role::User,
                Some("assistant") => Role::Assistant,
                _ => return Err(bad("unknown role")),
            };
            let prompt = count_of(row.try_get(11).map_err(get_err)?)?;
            let completion = count_of(row.try_get(12).map_err(get_err)?)?;
            let usage = match (prompt, completion) {
                (Some(prompt_tokens), Some(completion_tokens)) => Some(UsageRecord {
                    prompt_tokens,
                    completion_tokens,
                }),
                _ => None,
            };
            Ok(Record::Message(MessageRecord {
                seq,
                role,
                content,
                at,
                model: row.try_get(6).map_err(get_err)?,
                interrupted: row.try_get(7).map_err(get_err)?,
                truncated: row.try_get(8).map_err(get_err)?,
                tokens,
                usage,
                late_tokens: None,
            }))
        }
        "summary" => {
            let first: Option<i64> = row.try_get(13).map_err(get_err)?;
            let last: Option<i64> = row.try_get(14).map_err(get_err)?;
            let (Some(first), Some(last)) = (first, last) else {
                return Err(bad("a summary without covers"));
            };
            Ok(Record::Summary(SummaryRecord {
                seq,
                content,
                covers: [seq_of(first)?, seq_of(last)?],
                at,
                method: row
                    .try_get::<_, Option<String>>(15)
                    .map_err(get_err)?
                    .unwrap_or_else(|| "model".to_string()),
                tokens,
            }))
        }
        _ => Err(bad("unknown kind")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_nul_is_kept_exactly_beside_a_searchable_text() {
        assert_eq!(storable("plain"), ("plain".to_string(), None));
        let (text, exact) = storable("a\0b");
        assert_eq!(text, "a\u{2400}b");
        assert_eq!(exact.as_deref(), Some(&b"a\0b"[..]));
    }

    fn summary() -> Record {
        Record::Summary(SummaryRecord {
            seq: 9,
            content: "s".into(),
            covers: [1, 8],
            at: "t".into(),
            method: "extractive".into(),
            tokens: None,
        })
    }

    /// `typed_one` is `typed_params` for one record, element for element:
    /// each scalar's type is the array's element type.
    #[test]
    fn one_records_parameters_are_the_arrays_elements() {
        let summary = summary();
        let one = Columns::new(std::slice::from_ref(&summary));
        let scalars = one.typed_one().expect("one record");
        let arrays = one.typed_params();
        for (i, ((_, scalar), (_, array))) in scalars.iter().zip(arrays.iter()).enumerate() {
            assert_eq!(
                array.kind(),
                &tokio_postgres::types::Kind::Array(scalar.clone()),
                "parameter ${}",
                i + 3
            );
        }
        assert!(
            Columns::new(&[summary.clone(), summary])
                .typed_one()
                .is_none()
        );
    }

    #[test]
    fn columns_line_up_with_the_records() {
        let message = Record::Message(MessageRecord {
            seq: 3,
            role: Role::Assistant,
            content: "hi".into(),
            at: "t".into(),
            model: Some("m".into()),
            interrupted: true,
            truncated: false,
            tokens: Some(TokenCache {
                encoding: "o200k_base".into(),
                count: u32::MAX,
            }),
            usage: Some(UsageRecord {
                prompt_tokens: 1,
                completion_tokens: 2,
            }),
            late_tokens: None,
        });
        let summary = summary();
        let header = Record::Header(crate::memory::format::Header::new("s", "t".into()));
        let c = Columns::new(&[message, header, summary]);
        assert_eq!(c.len(), 2, "headers are not rows");
        assert_eq!(c.seq, [3, 9]);
        assert_eq!(c.kind, ["message", "summary"]);
        assert_eq!(c.role, [Some("assistant"), None]);
        assert_eq!(c.tokens_count, [Some(i64::from(u32::MAX)), None]);
        assert_eq!(c.prompt_tokens, [Some(1), None]);
        assert_eq!(c.covers_first, [None, Some(1)]);
        assert_eq!(c.method, [None, Some("extractive".to_string())]);
        assert_eq!(c.params().len(), 16);
    }
}
