//! Search on the PostgreSQL store: PostgreSQL's own full-text search over
//! the records' `search` column (a `tsvector` of the `simple` configuration,
//! kept by the table itself, with a GIN index), ranked by `ts_rank_cd`.
//! Nothing to keep up to date here: the index is part of every commit.

use super::PgStore;
use crate::memory::StoreError;
use crate::memory::format::Role;
use crate::store::{Found, Hit, Scope, SearchQuery, TermStats};

/// The query, in SQL: `$1` the terms as a `tsquery`, `$2` the session or
/// NULL, `$3` whether this is recall, `$4`..`$5` the `seq` range, `$6` the limit.
const SEARCH: &str = "\
SELECT s.name, r.seq, r.archived, r.role, r.at, \
       r.content, ts_rank_cd(r.search, q)::float8 AS rank, r.content_exact \
FROM memchat_records r \
JOIN memchat_sessions s ON s.id = r.session_id, \
     to_tsquery('simple', $1) q \
WHERE r.search @@ q AND r.kind = 'message' \
  AND ($2::text IS NULL OR s.name = $2) \
  AND (NOT $3 OR (r.archived AND r.role IN ('user', 'assistant'))) \
  AND r.seq BETWEEN $4 AND $5 \
ORDER BY rank DESC, s.name, r.seq \
LIMIT $6";

/// For recall's relevance floor: the session's size (its last `seq`) and
/// how many of its archived messages hold each term (as the file store's
/// index, which holds messages, not summaries) (`$2`, in order), each count
/// stopping at a cap: past it a term is common whatever the exact figure,
/// and counting further would cost time on every turn (`$3`, the file
/// store's cap).
const TERM_STATS: &str = "\
SELECT s.last_seq, array( \
    SELECT (SELECT count(*) FROM (SELECT 1 FROM memchat_records r \
            WHERE r.session_id = s.id AND r.archived AND r.kind = 'message' \
              AND r.search @@ to_tsquery('simple', quote_literal(t)) \
            LIMIT $3) x) \
    FROM unnest($2::text[]) WITH ORDINALITY u(t, i) ORDER BY i) \
FROM memchat_sessions s WHERE s.name = $1";

/// The terms as a `tsquery` matching any of them. Terms are letters and
/// digits only (`terms::query_terms`); each is quoted, so none can be read
/// as the query language's operators.
fn tsquery(terms: &[String]) -> String {
    terms
        .iter()
        .map(|t| format!("'{}'", t.replace(['\'', '\\'], "")))
        .collect::<Vec<_>>()
        .join(" | ")
}

fn to_sql(seq: u64) -> i64 {
    i64::try_from(seq).unwrap_or(i64::MAX)
}

impl PgStore {
    pub fn search(&self, query: &SearchQuery) -> Result<Found, StoreError> {
        if query.terms.is_empty() {
            return Ok(Found::default());
        }
        let expression = tsquery(&query.terms);
        let session = query.session.clone();
        let (first, last, recall) = match query.scope {
            Scope::Everything => (0, i64::MAX, false),
            Scope::Recall { covers } => (to_sql(covers[0]), to_sql(covers[1]), true),
        };
        let limit = i64::try_from(query.limit).unwrap_or(i64::MAX);
        let shown_session = query.session.clone().unwrap_or_default();
        let all_terms = query.terms.clone();
        let stats_of = match (&query.scope, &query.session) {
            (Scope::Recall { .. }, Some(name)) => Some((name.clone(), query.terms.clone())),
            _ => None,
        };
        let (hits, stats) = self.run(&shown_session, move |link| {
            Box::pin(async move {
                let (client, f) = link.client()?;
                let stats = match stats_of {
                    Some((name, terms)) => client
                        .query_opt(
                            TERM_STATS,
                            &[&name, &terms, &crate::store::index::HOLDING_CAP],
                        )
                        .await
                        .map_err(|e| f.fail(e))?
                        .map(|row| -> Result<TermStats, _> {
                            let last: i64 = row.try_get(0).map_err(|e| f.fail(e))?;
                            let counts: Vec<i64> = row.try_get(1).map_err(|e| f.fail(e))?;
                            Ok(TermStats {
                                messages: u64::try_from(last).unwrap_or(0),
                                holding: counts
                                    .into_iter()
                                    .map(|c| u64::try_from(c).unwrap_or(0))
                                    .collect(),
                            })
                        })
                        .transpose()?,
                    None => None,
                };
                // Recall searches for the rare terms alone (see
                // `terms::rare_terms`); none means nothing can be relevant.
                let expression = match &stats {
                    Some(s) => {
                        let rare = crate::terms::rare_terms(&all_terms, &s.holding, s.messages);
                        if rare.is_empty() {
                            return Ok((Vec::new(), stats));
                        }
                        tsquery(&rare)
                    }
                    None => expression,
                };
                let rows = client
                    .query(
                        SEARCH,
                        &[&expression, &session, &recall, &first, &last, &limit],
                    )
                    .await
                    .map_err(|e| f.fail(e))?;
                let mut hits = Vec::with_capacity(rows.len());
                for row in rows {
                    let get = |e: tokio_postgres::Error| f.fail(e);
                    let role: String = row.try_get(3).map_err(get)?;
                    let seq: i64 = row.try_get(1).map_err(get)?;
                    hits.push(Hit {
                        session: row.try_get(0).map_err(get)?,
                        seq: u64::try_from(seq).unwrap_or(0),
                        archived: row.try_get(2).map_err(get)?,
                        role: match role.as_str() {
                            "system" => Role::System,
                            "assistant" => Role::Assistant,
                            _ => Role::User,
                        },
                        at: row.try_get(4).map_err(get)?,
                        // The exact bytes where text could not hold them
                        // (a NUL): decoded here, since PostgreSQL's text,
                        // `convert_from` included, refuses a NUL.
                        content: match row.try_get::<_, Option<Vec<u8>>>(7).map_err(get)? {
                            Some(exact) => String::from_utf8_lossy(&exact).into_owned(),
                            None => row.try_get(5).map_err(get)?,
                        },
                        score: row.try_get(6).map_err(get)?,
                    });
                }
                Ok((hits, stats))
            })
        })?;
        Ok(Found {
            hits,
            stats,
            notices: Vec::new(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn terms_become_a_quoted_disjunction() {
        assert_eq!(
            tsquery(&["redis".into(), "o'neil".into(), "8080".into()]),
            "'redis' | 'oneil' | '8080'"
        );
    }
}
