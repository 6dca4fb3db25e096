//! Words for search and recall: what a query asks for, how much of it a
//! passage holds, and the excerpt of a passage around its matches.
//!
//! Both stores and both uses (`memchat search` and recall) go through these
//! rules, so a query means the same everywhere and the relevance floor does
//! not depend on which full-text engine ranked the candidates. A *term* is a
//! run of letters and digits, lowercased (as SQLite's `unicode61` tokenizer
//! and PostgreSQL's `simple` configuration cut words), minus common English
//! function words, which match everything and so say nothing.

use std::collections::HashSet;

/// Words that carry no subject: a passage sharing only these with the
/// query is not about it.
const STOPWORDS: &[&str] = &[
    "a",
    "about",
    "above",
    "after",
    "again",
    "all",
    "also",
    "am",
    "an",
    "and",
    "any",
    "are",
    "as",
    "at",
    "be",
    "because",
    "been",
    "before",
    "being",
    "below",
    "between",
    "both",
    "but",
    "by",
    "can",
    "could",
    "did",
    "do",
    "does",
    "doing",
    "done",
    "down",
    "during",
    "each",
    "else",
    "even",
    "ever",
    "few",
    "for",
    "from",
    "further",
    "get",
    "got",
    "had",
    "has",
    "have",
    "having",
    "he",
    "her",
    "here",
    "hers",
    "herself",
    "him",
    "himself",
    "his",
    "how",
    "i",
    "if",
    "in",
    "into",
    "is",
    "it",
    "its",
    "itself",
    "just",
    "let",
    "like",
    "made",
    "make",
    "me",
    "might",
    "more",
    "most",
    "much",
    "must",
    "my",
    "myself",
    "no",
    "nor",
    "not",
    "now",
    "of",
    "off",
    "on",
    "once",
    "one",
    "only",
    "or",
    "other",
    "our",
    "ours",
    "ourselves",
    "out",
    "over",
    "own",
    "please",
    "quite",
    "rather",
    "really",
    "said",
    "same",
    "say",
    "see",
    "shall",
    "she",
    "should",
    "so",
    "some",
    "still",
    "such",
    "tell",
    "than",
    "that",
    "the",
    "their",
    "theirs",
    "them",
    "themselves",
    "then",
    "there",
    "these",
    "they",
    "thing",
    "this",
    "those",
    "through",
    "to",
    "too",
    "under",
    "until",
    "up",
    "us",
    "very",
    "was",
    "we",
    "were",
    "what",
    "when",
    "where",
    "which",
    "while",
    "who",
    "whom",
    "why",
    "will",
    "with",
    "would",
    "yes",
    "yet",
    "you",
    "your",
    "yours",
    "yourself",
    "yourselves",
];

/// At most this many terms of a message go into a query: a pasted file
/// would otherwise make a query of thousands of words. The longest win
/// (length is a fair, free stand-in for rarity).
pub const MAX_QUERY_TERMS: usize = 24;

/// The words of `text`: runs of letters and digits, lowercased.
pub fn words(text: &str) -> impl Iterator<Item = String> + '_ {
    text.split(|c: char| !c.is_alphanumeric())
        .filter(|w| !w.is_empty())
        .map(str::to_lowercase)
}

/// The distinct terms of a query, in the order they first appear: no
/// function words, no single letters, at most [`MAX_QUERY_TERMS`].
pub fn query_terms(text: &str) -> Vec<String> {
    let mut seen = HashSet::new();
    let mut terms: Vec<String> = words(text)
        .filter(|w| w.chars().count() > 1 || w.chars().all(|c| c.is_ascii_digit()))
        .filter(|w| !STOPWORDS.contains(&w.as_str()))
        .filter(|w| seen.insert(w.clone()))
        .collect();
    if terms.len() > MAX_QUERY_TERMS {
        let mut by_length: Vec<(usize, String)> = terms.drain(..).enumerate().collect();
        // Longest first; among equals, the earlier one.
        by_length.sort_by(|a, b| {
            b.1.chars()
                .count()
                .cmp(&a.1.chars().count())
                .then(a.0.cmp(&b.0))
        });
        by_length.truncate(MAX_QUERY_TERMS);
        by_length.sort_by_key(|(i, _)| *i);
        terms = by_length.into_iter().map(|(_, t)| t).collect();
    }
    terms
}

/// How many of `terms` a passage holds.
pub fn matched(terms: &[String], passage: &str) -> usize {
    let present: HashSet<String> = words(passage).collect();
    terms.iter().filter(|t| present.contains(*t)).count()
}

/// The relevance floor: how many of a query's terms a passage must hold to
/// be worth anything. Half of them (rounded up), but never more than three:
/// a long message is answered by a passage sharing its three main words.
pub fn required_matches(terms: usize) -> usize {
    terms.div_ceil(2).clamp(1, 3)
}

/// Whether a passage passes the relevance floor for `terms`.
pub fn relevant(terms: &[String], passage: &str) -> bool {
    !terms.is_empty() && matched(terms, passage) >= required_matches(terms.len())
}

/// How much a term says, from how many of `messages` hold it: the inverse
/// document frequency of BM25, smoothed so a term no message holds weighs
/// the most and one every message holds weighs nothing.
pub fn weight(holding: u64, messages: u64) -> f64 {
    let n = messages as f64;
    let h = (holding.min(messages)) as f64;
    ((n + 1.0) / (h + 1.0)).ln()
}

/// A term held by at most one message in this many is *rare*: it names
/// something (a project, a host, an error) rather than talking about it.
const RARE_SHARE: u64 = 20;
/// In a small archive every word is held by few messages: up to this many
/// still count as rare.
const RARE_AT_LEAST: u64 = 3;
/// However large the archive, a word held by more messages than this names
/// nothing recall could single out in a few passages (and searching its
/// long posting list would cost every turn time).
const RARE_AT_MOST: u64 = 200;

/// Whether a term held by `holding` of `messages` is rare (and held at all).
pub fn is_rare(holding: u64, messages: u64) -> bool {
    holding > 0 && holding <= (messages / RARE_SHARE).clamp(RARE_AT_LEAST, RARE_AT_MOST)
}

/// The query's rare terms: a passage worth recalling holds one of them, so
/// recall searches for these alone (a common word's long posting list is
/// what makes a search slow, and it cannot make a passage relevant).
pub fn rare_terms(terms: &[String], holding: &[u64], messages: u64) -> Vec<String> {
    terms
        .iter()
        .zip(holding)
        .filter(|&(_, &h)| is_rare(h, messages))
        .map(|(t, _)| t.clone())
        .collect()
}

/// The weights of the query terms a passage holds: the largest (its
/// rarest term), and their sum.
pub fn matched_weights(
    terms: &[String],
    passage: &str,
    holding: &[u64],
    messages: u64,
) -> (f64, f64) {
    let present: HashSet<String> = words(passage).collect();
    terms
        .iter()
        .zip(holding)
        .filter(|(t, _)| present.contains(*t))
        .map(|(_, &h)| weight(h, messages))
        .fold((0.0, 0.0), |(max, sum), w| (f64::max(max, w), sum + w))
}

/// The relevance floor with term weights: besides [`relevant`], the terms a
/// passage holds must carry at least half of the weight of the query's
/// terms that some message holds (each term's [`weight`] from `holding[i]`
/// of `messages`), and one of them must be rare ([`is_rare`]). A passage
/// sharing only the words every message has is not about what was asked.
pub fn relevant_weighted(terms: &[String], passage: &str, holding: &[u64], messages: u64) -> bool {
    if !relevant(terms, passage) {
        return false;
    }
    let present: HashSet<String> = words(passage).collect();
    let (mut total, mut matched, mut rare) = (0.0, 0.0, false);
    for (term, &h) in terms.iter().zip(holding) {
        // A word no message holds cannot be matched by any passage: it says
        // the question is worded anew, not that every passage misses it.
        if h == 0 {
            continue;
        }
        let w = weight(h, messages);
        total += w;
        if present.contains(term) {
            matched += w;
            rare |= is_rare(h, messages);
        }
    }
    rare && matched * 2.0 >= total
}

/// A piece of an excerpt: plain text, or a word that matched the query.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Piece {
    Text(String),
    Match(String),
}

/// An excerpt of `text` of at most `max_words` words around the densest
/// run of matches, on one line, with `…` where it was cut. Whole words only.
pub fn excerpt(text: &str, terms: &[String], max_words: usize) -> Vec<Piece> {
    let words: Vec<&str> = text.split_whitespace().collect();
    if words.is_empty() {
        return Vec::new();
    }
    let is_match = |w: &str| self::words(w).any(|part| terms.contains(&part));
    let hits: Vec<bool> = words.iter().map(|w| is_match(w)).collect();
    let max_words = max_words.max(1);
    let (start, end) = if words.len() <= max_words {
        (0, words.len())
    } else {
        // The window of `max_words` with the most matches; the earliest wins.
        let mut count = hits[..max_words].iter().filter(|&&h| h).count();
        let (mut best, mut best_start) = (count, 0);
        for start in 1..=words.len() - max_words {
            count += usize::from(hits[start + max_words - 1]);
            count -= usize::from(hits[start - 1]);
            if count > best {
                (best, best_start) = (count, start);
            }
        }
        // Start a little before the first match, for its context.
        let first_hit = (best_start..best_start + max_words).find(|&i| hits[i]);
        let start = first_hit.map_or(best_start, |f| f.saturating_sub(max_words / 4));
        let start = start.min(words.len() - max_words);
        (start, start + max_words)
    };
    let mut pieces = Vec::new();
    let mut plain = String::new();
    if start > 0 {
        plain.push_str("… ");
    }
    for (i, word) in words[start..end].iter().enumerate() {
        if i > 0 {
            plain.push(' ');
        }
        if hits[start + i] {
            // Only the word is marked, not the punctuation around it.
            let core_start = word.find(char::is_alphanumeric).unwrap_or(0);
            let core_end = word.rfind(char::is_alphanumeric).map_or(word.len(), |e| {
                e + word[e..].chars().next().map_or(1, char::len_utf8)
            });
            plain.push_str(&word[..core_start]);
            if !plain.is_empty() {
                pieces.push(Piece::Text(std::mem::take(&mut plain)));
            }
            pieces.push(Piece::Match(word[core_start..core_end].to_string()));
            plain.push_str(&word[core_end..]);
        } else {
            plain.push_str(word);
        }
    }
    if end < words.len() {
        plain.push_str(" …");
    }
    if !plain.is_empty() {
        pieces.push(Piece::Text(plain));
    }
    pieces
}

/// An excerpt as plain text.
pub fn excerpt_text(pieces: &[Piece]) -> String {
    pieces
        .iter()
        .map(|p| match p {
            Piece::Text(t) | Piece::Match(t) => t.as_str(),
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn terms(text: &str) -> Vec<String> {
        query_terms(text)
    }

    #[test]
    fn queries_keep_subject_words_once_lowercased() {
        assert_eq!(
            terms("What did we decide about the Redis cache? Redis, again."),
            ["decide", "redis", "cache"]
        );
        assert_eq!(terms("port 8080 on host-b"), ["port", "8080", "host"]);
        assert!(terms("what is it?").is_empty());
        assert_eq!(terms("Grüße aus Köln"), ["grüße", "aus", "köln"]);
    }

    #[test]
    fn a_long_message_queries_its_longest_words_in_their_order() {
        let text = (0..100)
            .map(|i| format!("w{}", "x".repeat(i % 30)))
            .collect::<Vec<_>>()
            .join(" ");
        let t = terms(&text);
        assert_eq!(t.len(), MAX_QUERY_TERMS);
        assert!(t.iter().all(|w| w.len() >= 7), "{t:?}");
    }

    #[test]
    fn the_floor_asks_for_half_the_terms_and_at_most_three() {
        assert_eq!(required_matches(1), 1);
        assert_eq!(required_matches(2), 1);
        assert_eq!(required_matches(3), 2);
        assert_eq!(required_matches(5), 3);
        assert_eq!(required_matches(24), 3);
        let q = terms("which codename did we choose for project 17");
        assert_eq!(q, ["codename", "choose", "project", "17"]);
        assert!(relevant(&q, "The codename of project 17 is HERON."));
        assert!(!relevant(&q, "We should choose a better name."));
        assert!(!relevant(&[], "anything"));
    }

    #[test]
    fn common_words_do_not_make_a_passage_relevant() {
        // "Fact 21: my item number 21 is a green thing": every archived
        // fact holds the same words but the number, which none holds.
        let q = terms("Fact 21: my item number 21 is a green thing in drawer 21");
        assert_eq!(q, ["fact", "21", "item", "number", "green", "drawer"]);
        let holding = [40, 1, 40, 40, 8, 40];
        let other = "Fact 1: my item number 1 is a green thing in drawer 1";
        assert!(relevant(&q, other), "the plain count would let it in");
        assert!(!relevant_weighted(&q, other, &holding, 40));
        // A rare subject matched carries the query.
        let q = terms("Remind me, which database did we settle on for kelvorsin?");
        let holding = [200, 40, 200, 3];
        let fact = "Note this down: for kelvorsin, the database is orca-17.";
        assert!(relevant_weighted(&q, fact, &holding, 2000));
        assert!(weight(0, 10) > weight(1, 10) && weight(10, 10) == 0.0);
        // Only common words matched: never relevant, however many.
        let q = terms("weather garden coffee");
        assert!(!relevant_weighted(
            &q,
            "weather garden coffee",
            &[500, 400, 300],
            2000
        ));
        assert!(relevant_weighted(
            &q,
            "weather garden coffee",
            &[50, 400, 300],
            2000
        ));
        assert_eq!(rare_terms(&q, &[50, 400, 0], 2000), ["weather"]);
        assert!(is_rare(3, 10) && !is_rare(4, 10) && !is_rare(0, 10) && is_rare(100, 2000));
        assert!(is_rare(200, 100_000) && !is_rare(201, 100_000));
    }

    #[test]
    fn excerpts_centre_on_the_matches_and_mark_them() {
        let text = format!(
            "{} the Redis cache was chosen {}",
            "a ".repeat(40),
            "b ".repeat(40)
        );
        let q = terms("redis cache");
        let pieces = excerpt(&text, &q, 10);
        let flat = excerpt_text(&pieces);
        assert!(flat.starts_with("… ") && flat.ends_with(" …"), "{flat}");
        assert!(pieces.contains(&Piece::Match("Redis".into())), "{pieces:?}");
        assert!(pieces.contains(&Piece::Match("cache".into())), "{pieces:?}");
        assert_eq!(flat.split_whitespace().filter(|w| *w != "…").count(), 10);
        let short = excerpt_text(&excerpt("Redis it is.", &q, 10));
        assert_eq!(short, "Redis it is.");
    }
}
