//! `/search` and `/recall`: finding what was said, and seeing what recall
//! brought back into the last request.

use std::io::Write;

use crate::chat::{Engine, TurnError};
use crate::recall::short_time;
use crate::render::Output;
use crate::search::{self, Look, SearchError};
use crate::visible;

use super::print;

/// `/search QUERY`: every session, as `memchat search` shows it.
pub(super) fn search(
    engine: &Engine,
    query: &str,
    out: &mut dyn Write,
    output: &Output,
) -> Result<(), TurnError> {
    let (terms, found) =
        match search::search(engine.store().as_ref(), query, None, search::DEFAULT_LIMIT) {
            Ok(result) => result,
            Err(SearchError::NoTerms(q)) => {
                return Err(TurnError::Refused(SearchError::NoTerms(q).to_string()));
            }
            Err(SearchError::Store(e)) => return Err(e.into()),
        };
    for notice in &found.notices {
        output.warn(notice);
    }
    if found.hits.is_empty() {
        return print(out, &format!("search: no message matches {query:?}\n"));
    }
    print(
        out,
        &search::render_text(&found.hits, &terms, Look::of(output)),
    )
}

/// `/recall`: the passages recall put into the last request, in full.
pub(super) fn recall(
    engine: &Engine,
    out: &mut dyn Write,
    output: &Output,
) -> Result<(), TurnError> {
    let Some(recall) = engine.last_recall() else {
        return print(
            out,
            &format!(
                "recall: no request was sent yet in this run (recall is {})\n",
                engine.recall_mode()
            ),
        );
    };
    if recall.is_empty() {
        return print(
            out,
            &format!(
                "recall: nothing was recalled for the last request (recall is {})\n",
                engine.recall_mode()
            ),
        );
    }
    let mut text = format!("{}:\n", recall.notice());
    for passage in &recall.passages {
        let body = if output.stdout_is_terminal() {
            visible::text(&passage.text)
        } else {
            passage.text.clone()
        };
        let cut = if passage.excerpt { " (excerpt)" } else { "" };
        text.push_str(&format!(
            "#{} · {} · {}{cut}\n  {body}\n",
            passage.seq,
            short_time(&passage.at),
            passage.role.as_str()
        ));
    }
    print(out, &text)
}
