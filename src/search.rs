//! `memchat search` and `/search`: a query made into terms, asked of the
//! store (every session, or one), and the hits shown best first, each with
//! its session, `seq`, date and role and an excerpt around the matching
//! words (highlighted on a terminal), or as JSON for scripts.

use std::io::Write;

use anstyle::{AnsiColor, Style};

use crate::config::UsageError;
use crate::memory::StoreError;
use crate::recall::short_time;
use crate::render::Output;
use crate::store::{Found, Hit, Scope, SearchQuery, Store};
use crate::terms::{self, Piece};
use crate::visible;

/// Hits shown when no `--limit` is given: a screenful.
pub const DEFAULT_LIMIT: usize = 20;
/// Words in a hit's excerpt: about two lines of a terminal.
const EXCERPT_WORDS: usize = 30;

/// Why a search could not run.
#[derive(Debug, thiserror::Error)]
pub enum SearchError {
    /// The query has nothing to look for (a usage error).
    #[error(
        "the query {0:?} has no word to search for (common words such as \"the\" or \"what\" \
         are left out of searches)"
    )]
    NoTerms(String),
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// Searches `store` for `query` (one session, or all).
pub fn search(
    store: &dyn Store,
    query: &str,
    session: Option<&str>,
    limit: usize,
) -> Result<(Vec<String>, Found), SearchError> {
    let terms = terms::query_terms(query);
    if terms.is_empty() {
        return Err(SearchError::NoTerms(query.to_string()));
    }
    // A session that does not exist is a mistyped name, not "no match".
    if let Some(name) = session
        && !store.exists(name)?
    {
        return Err(StoreError::NotFound(name.to_string()).into());
    }
    let found = store.search(&SearchQuery {
        terms: terms.clone(),
        session: session.map(str::to_string),
        scope: Scope::Everything,
        limit,
    })?;
    Ok((terms, found))
}

/// How hits are drawn: text from the store is shown harmless on a
/// terminal (`terminal`), and matches are highlighted when `styled`.
#[derive(Debug, Clone, Copy)]
pub struct Look {
    pub terminal: bool,
    pub styled: bool,
}

impl Look {
    pub fn of(output: &Output) -> Look {
        Look {
            terminal: output.stdout_is_terminal(),
            styled: output.stdout_is_styled(),
        }
    }
}

/// The hits as a person reads them: a heading line per hit, then its
/// excerpt indented, then how to open one.
pub fn render_text(hits: &[Hit], terms: &[String], look: Look) -> String {
    let shown = |text: &str| {
        if look.terminal {
            visible::text(text)
        } else {
            text.to_string()
        }
    };
    let heading = Style::new().bold();
    let matched = Style::new().bold().fg_color(Some(AnsiColor::Yellow.into()));
    let dim = Style::new().dimmed();
    let paint = |style: Style, text: &str| {
        if look.styled {
            format!("{style}{text}{style:#}")
        } else {
            text.to_string()
        }
    };
    let mut out = String::new();
    for hit in hits {
        let place = if hit.archived { " · archived" } else { "" };
        out.push_str(&paint(heading, &format!("{} #{}", hit.session, hit.seq)));
        out.push_str(&paint(
            dim,
            &format!(" · {} · {}{place}", short_time(&hit.at), hit.role.as_str()),
        ));
        out.push_str("\n  ");
        for piece in terms::excerpt(&hit.content, terms, EXCERPT_WORDS) {
            match piece {
                Piece::Text(text) => out.push_str(&shown(&text)),
                Piece::Match(word) if look.styled => out.push_str(&paint(matched, &shown(&word))),
                // Without colour the matches are marked with asterisks, as
                // Markdown would emphasise them.
                Piece::Match(word) => out.push_str(&format!("*{}*", shown(&word))),
            }
        }
        out.push('\n');
    }
    out
}

/// The hits as JSON for scripts: an array, best first, each with the
/// whole message and its excerpt.
pub fn render_json(hits: &[Hit], terms: &[String]) -> String {
    let items: Vec<serde_json::Value> = hits
        .iter()
        .map(|hit| {
            serde_json::json!({
                "session": hit.session,
                "seq": hit.seq,
                "at": hit.at,
                "role": hit.role.as_str(),
                "archived": hit.archived,
                "score": hit.score,
                "excerpt": terms::excerpt_text(&terms::excerpt(&hit.content, terms, EXCERPT_WORDS)),
                "content": hit.content,
            })
        })
        .collect();
    let mut text = serde_json::to_string_pretty(&items).unwrap_or_else(|_| "[]".to_string());
    text.push('\n');
    text
}

/// `memchat search QUERY [-s NAME] [--json] [--limit N]`: prints the hits
/// to `out`, notices (and "nothing matches") to stderr through `output`.
pub fn run(
    store: &dyn Store,
    query: &str,
    session: Option<&str>,
    limit: usize,
    json: bool,
    output: &Output,
    out: &mut dyn Write,
) -> anyhow::Result<()> {
    let (terms, found) = match search(store, query, session, limit) {
        Ok(result) => result,
        // Nothing to look for is a usage error (exit 2), like a bad flag.
        Err(e @ SearchError::NoTerms(_)) => return Err(UsageError(e.to_string()).into()),
        Err(SearchError::Store(e)) => return Err(e.into()),
    };
    for notice in &found.notices {
        output.warn(notice);
    }
    if json {
        out.write_all(render_json(&found.hits, &terms).as_bytes())?;
    } else if found.hits.is_empty() {
        output.info(&format!("search: no message matches {query:?}"));
    } else {
        out.write_all(render_text(&found.hits, &terms, Look::of(output)).as_bytes())?;
        if let Some(first) = found.hits.first() {
            output.info(&format!(
                "search: {}; open one in its context with `memchat show {} --around {}`",
                crate::render::counted(found.hits.len() as u64, "hit"),
                first.session,
                first.seq
            ));
        }
    }
    out.flush()?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::message::Role;

    fn hit(session: &str, seq: u64, content: &str) -> Hit {
        Hit {
            session: session.into(),
            seq,
            role: Role::Assistant,
            at: "2026-11-20T14:03:07Z".into(),
            content: content.into(),
            archived: seq < 10,
            score: 2.5,
        }
    }

    #[test]
    fn text_names_each_hit_and_marks_its_matches() {
        let terms = terms::query_terms("redis cache");
        let hits = [
            hit("work", 4, "Use Redis as the cache. \u{1b}[2J"),
            hit("home", 12, "redis"),
        ];
        let plain = render_text(
            &hits,
            &terms,
            Look {
                terminal: false,
                styled: false,
            },
        );
        assert_eq!(
            plain,
            "work #4 · 2026-11-20 14:03 · assistant · archived\n  Use *Redis* as the *cache*. \u{1b}[2J\n\
             home #12 · 2026-11-20 14:03 · assistant\n  *redis*\n"
        );
        let terminal = render_text(
            &hits,
            &terms,
            Look {
                terminal: true,
                styled: true,
            },
        );
        assert!(!terminal.contains("\u{1b}[2J"), "{terminal:?}");
        assert!(terminal.contains("^[[2J"), "{terminal:?}");
        assert!(terminal.contains("\u{1b}["), "styled");
    }

    #[test]
    fn json_holds_every_field() {
        let terms = terms::query_terms("redis");
        let value: serde_json::Value =
            serde_json::from_str(&render_json(&[hit("work", 4, "Redis it is")], &terms)).unwrap();
        assert_eq!(value[0]["session"], "work");
        assert_eq!(value[0]["seq"], 4);
        assert_eq!(value[0]["role"], "assistant");
        assert_eq!(value[0]["archived"], true);
        assert_eq!(value[0]["excerpt"], "Redis it is");
        assert_eq!(value[0]["content"], "Redis it is");
    }
}
