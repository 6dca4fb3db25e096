//! Exact token counts in OpenAI's byte-pair encodings (o200k_base,
//! cl100k_base) over one compact table, the same counts tiktoken gives.
//!
//! Why not tiktoken-rs at run time: it keeps every token's bytes three
//! times, each in an allocation of its own (46 MB resident for o200k, most
//! of a long-running REPL's memory), and takes about 270 ms to build them.
//! Counting needs one thing, the rank of a byte string. Here the tokens'
//! bytes stay where `build.rs` put them (in the binary, in rank order) and
//! one hash table of ranks indexes them: about 6 MB resident, built in
//! about 6 ms (BENCHMARKS.md). tiktoken-rs remains the reference: `build.rs` takes the
//! tables from it and the tests compare every count with it.
//!
//! The algorithm is tiktoken's: the text is cut at special tokens (one token
//! each), the rest is split by the encoding's pattern, and each piece that is
//! not itself a token is merged pairwise, lowest rank first (leftmost on a
//! tie), until no adjacent pair is a token.

use std::collections::BinaryHeap;
use std::hash::BuildHasher;
use std::ops::Range;

use fancy_regex::Regex;
use hashbrown::DefaultHashBuilder;
use hashbrown::HashTable;

/// Ranks are `u32` (o200k has about 200,000).
type Rank = u32;
/// No pair: a rank no token has.
const NO_RANK: Rank = Rank::MAX;
/// Pieces shorter than this merge by rescanning (fast for the short pieces
/// of real text); longer ones (a pasted blob) through a heap, O(n log n).
const SHORT_PIECE: usize = 100;

/// The pattern that splits text into pieces, o200k_base.
const O200K_PATTERN: &str = concat!(
    r"[^\r\n\p{L}\p{N}]?[\p{Lu}\p{Lt}\p{Lm}\p{Lo}\p{M}]*[\p{Ll}\p{Lm}\p{Lo}\p{M}]+(?i:'s|'t|'re|'ve|'m|'ll|'d)?",
    "|",
    r"[^\r\n\p{L}\p{N}]?[\p{Lu}\p{Lt}\p{Lm}\p{Lo}\p{M}]+[\p{Ll}\p{Lm}\p{Lo}\p{M}]*(?i:'s|'t|'re|'ve|'m|'ll|'d)?",
    "|",
    r"\p{N}{1,3}",
    "|",
    r" ?[^\s\p{L}\p{N}]+[\r\n/]*",
    "|",
    r"\s*[\r\n]+",
    "|",
    r"\s+(?!\S)",
    "|",
    r"\s+",
);

/// The pattern that splits text into pieces, cl100k_base.
const CL100K_PATTERN: &str = r"'(?i:[sdmt]|ll|ve|re)|[^\r\n\p{L}\p{N}]?+\p{L}++|\p{N}{1,3}+| ?[^\s\p{L}\p{N}]++[\r\n]*+|\s++$|\s*[\r\n]|\s+(?!\S)|\s";

/// The special tokens each encoding knows; in a text, each counts as one.
const O200K_SPECIALS: &[&str] = &["<|endoftext|>", "<|endofprompt|>"];
const CL100K_SPECIALS: &[&str] = &[
    "<|endoftext|>",
    "<|fim_prefix|>",
    "<|fim_middle|>",
    "<|fim_suffix|>",
    "<|endofprompt|>",
];

static O200K_TABLE: &[u8] = include_bytes!(concat!(env!("OUT_DIR"), "/o200k_base.ranks"));
static CL100K_TABLE: &[u8] = include_bytes!(concat!(env!("OUT_DIR"), "/cl100k_base.ranks"));

/// One encoding, ready to count.
pub struct Bpe {
    /// Where each rank's bytes start in `table`; one more entry for the end.
    starts: Vec<u32>,
    table: &'static [u8],
    /// Ranks, found by their bytes' hash.
    ranks: HashTable<Rank>,
    hasher: DefaultHashBuilder,
    pieces: Regex,
    specials: &'static [&'static str],
}

impl std::fmt::Debug for Bpe {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Bpe")
            .field("ranks", &self.ranks.len())
            .finish_non_exhaustive()
    }
}

impl Bpe {
    pub fn o200k_base() -> Bpe {
        Bpe::new(O200K_TABLE, O200K_PATTERN, O200K_SPECIALS)
    }

    pub fn cl100k_base() -> Bpe {
        Bpe::new(CL100K_TABLE, CL100K_PATTERN, CL100K_SPECIALS)
    }

    #[expect(
        clippy::expect_used,
        reason = "the patterns are constants of this file, compiled by every test"
    )]
    fn new(table: &'static [u8], pattern: &str, specials: &'static [&'static str]) -> Bpe {
        let mut starts = Vec::with_capacity(200_001);
        let mut at = 0usize;
        while at < table.len() {
            let len = usize::from(table[at]);
            starts.push(u32::try_from(at + 1).unwrap_or(u32::MAX));
            at += 1 + len;
        }
        starts.push(u32::try_from(at + 1).unwrap_or(u32::MAX));
        let hasher = DefaultHashBuilder::default();
        let mut ranks = HashTable::with_capacity(starts.len());
        let mut bpe = Bpe {
            starts,
            table,
            ranks: HashTable::new(),
            hasher,
            pieces: Regex::new(pattern).expect("the encoding's pattern compiles"),
            specials,
        };
        for rank in 0..bpe.starts.len() - 1 {
            let rank = Rank::try_from(rank).unwrap_or(NO_RANK);
            let bytes = bpe.bytes(rank);
            if bytes.is_empty() {
                continue; // no token has this rank
            }
            let hash = bpe.hasher.hash_one(bytes);
            ranks.insert_unique(hash, rank, |&r| bpe.hasher.hash_one(bpe.bytes(r)));
        }
        bpe.ranks = ranks;
        bpe
    }

    /// The bytes of the token of `rank` (empty for a rank with no token).
    fn bytes(&self, rank: Rank) -> &[u8] {
        let rank = rank as usize;
        let start = self.starts[rank] as usize;
        let len = usize::from(self.table[start - 1]);
        &self.table[start..start + len]
    }

    /// The rank of the token made of `bytes`, or [`NO_RANK`].
    fn rank(&self, bytes: &[u8]) -> Rank {
        let hash = self.hasher.hash_one(bytes);
        self.ranks
            .find(hash, |&r| self.bytes(r) == bytes)
            .copied()
            .unwrap_or(NO_RANK)
    }

    /// The number of tokens in `text`, special tokens included (one each),
    /// as tiktoken's `encode_with_special_tokens(text).len()`.
    pub fn count(&self, text: &str) -> usize {
        let mut count = 0;
        self.walk(text, |piece| {
            count += self.piece_tokens(piece);
            true
        });
        count
    }

    /// The length in bytes of the longest prefix of `text` made of at most
    /// `max` whole tokens (it may end inside a character: the caller steps
    /// back to a boundary).
    pub fn prefix_len(&self, text: &str, max: usize) -> usize {
        let mut left = max;
        let mut end = 0;
        self.walk(text, |piece| {
            let range = piece.range();
            let tokens = self.piece_tokens(piece.clone());
            if tokens <= left {
                left -= tokens;
                end = range.end;
                return true;
            }
            // The cut falls inside this piece: keep its first `left` tokens.
            end = match piece {
                Piece::Ordinary { text: bytes, .. } => range.start + self.merge(bytes)[left],
                Piece::Bytes(_) => range.start + left,
                Piece::Special(_) => range.start,
            };
            false
        });
        end
    }

    /// Calls `each` with the text's pieces in order until it returns false.
    fn walk<'t>(&self, text: &'t str, mut each: impl FnMut(Piece<'t>) -> bool) {
        let mut start = 0;
        while start < text.len() {
            let special = self.next_special(text, start);
            let end = special.as_ref().map_or(text.len(), |s| s.start);
            // The split runs over the text between special tokens, as
            // tiktoken's does (`$` and look-ahead see that stretch's end).
            let stretch = &text[start..end];
            let mut at = 0;
            while at < stretch.len() {
                match self.pieces.find_from_pos(stretch, at) {
                    Ok(Some(found)) if !found.as_str().is_empty() => {
                        // The pattern matches every character; a gap would
                        // be text the split skipped, counted as bytes.
                        if found.start() > at
                            && !each(Piece::Bytes(start + at..start + found.start()))
                        {
                            return;
                        }
                        let piece = Piece::Ordinary {
                            text: found.as_str().as_bytes(),
                            range: start + found.start()..start + found.end(),
                        };
                        if !each(piece) {
                            return;
                        }
                        at = found.end();
                    }
                    // The pattern gave up (fancy-regex's backtracking limit)
                    // or found nothing: the rest of this stretch counts at
                    // one token a byte, an upper bound, never an
                    // undercount (tiktoken-rs panics here).
                    _ => {
                        if !each(Piece::Bytes(start + at..end)) {
                            return;
                        }
                        at = stretch.len();
                    }
                }
            }
            match special {
                Some(range) => {
                    if !each(Piece::Special(range.clone())) {
                        return;
                    }
                    start = range.end;
                }
                None => break,
            }
        }
    }

    /// Where the first special token at or after `from` is. Every special
    /// token opens with `<|`: one scan for that, so a text of many special
    /// tokens is read once in all, not once per token and kind.
    fn next_special(&self, text: &str, from: usize) -> Option<Range<usize>> {
        let mut at = from;
        while let Some(found) = text[at..].find("<|") {
            let start = at + found;
            if let Some(special) = self
                .specials
                .iter()
                .find(|s| text[start..].starts_with(**s))
            {
                return Some(start..start + special.len());
            }
            at = start + 1;
        }
        None
    }

    /// The tokens of one piece.
    fn piece_tokens(&self, piece: Piece<'_>) -> usize {
        match piece {
            Piece::Special(_) => 1,
            Piece::Bytes(range) => range.len(),
            Piece::Ordinary { text, .. } => {
                if self.rank(text) != NO_RANK {
                    1
                } else {
                    self.merge(text).len() - 1
                }
            }
        }
    }

    /// The token boundaries of a piece after merging: its start, each
    /// token's end.
    fn merge(&self, piece: &[u8]) -> Vec<usize> {
        if piece.len() < 2 {
            return (0..=piece.len()).collect();
        }
        if piece.len() < SHORT_PIECE {
            self.merge_short(piece)
        } else {
            self.merge_long(piece)
        }
    }

    /// Merging by rescanning: each round merges the leftmost lowest-ranked
    /// adjacent pair.
    fn merge_short(&self, piece: &[u8]) -> Vec<usize> {
        // (start of a part, rank of it joined with the next part)
        let mut parts: Vec<(usize, Rank)> = (0..piece.len() - 1)
            .map(|i| (i, self.rank(&piece[i..i + 2])))
            .collect();
        parts.push((piece.len() - 1, NO_RANK));
        parts.push((piece.len(), NO_RANK));
        let pair_rank = |parts: &[(usize, Rank)], i: usize| {
            if i + 2 < parts.len() {
                self.rank(&piece[parts[i].0..parts[i + 2].0])
            } else {
                NO_RANK
            }
        };
        loop {
            let mut lowest = (NO_RANK, 0);
            for (i, &(_, rank)) in parts[..parts.len() - 1].iter().enumerate() {
                if rank < lowest.0 {
                    lowest = (rank, i);
                }
            }
            let (rank, i) = lowest;
            if rank == NO_RANK {
                break;
            }
            parts.remove(i + 1);
            parts[i].1 = pair_rank(&parts, i);
            if i > 0 {
                parts[i - 1].1 = pair_rank(&parts, i - 1);
            }
        }
        parts.into_iter().map(|(start, _)| start).collect()
    }

    /// The same merges through a heap of candidate pairs over a linked list
    /// of parts; a candidate whose parts changed since it was pushed is
    /// skipped when popped.
    fn merge_long(&self, piece: &[u8]) -> Vec<usize> {
        let n = piece.len();
        // Parts are named by their start; `next[s]` is the next part's start
        // (n for the last), `prev[s]` the previous one's.
        let mut next: Vec<usize> = (1..=n).collect();
        let mut prev: Vec<usize> = (0..n).map(|s| s.wrapping_sub(1)).collect();
        // The rank of part `s` joined with its next part, as last computed;
        // NO_RANK once `s` is merged into the part before it, so its heap
        // entries are all stale.
        let mut pair = vec![NO_RANK; n];
        let mut heap = BinaryHeap::with_capacity(n);
        for s in 0..n - 1 {
            pair[s] = self.rank(&piece[s..s + 2]);
            if pair[s] != NO_RANK {
                heap.push(std::cmp::Reverse((pair[s], s)));
            }
        }
        let joined = |next: &[usize], s: usize| {
            let t = next[s];
            if t < n {
                self.rank(&piece[s..next[t]])
            } else {
                NO_RANK
            }
        };
        while let Some(std::cmp::Reverse((rank, s))) = heap.pop() {
            if pair[s] != rank {
                continue; // stale: this part changed since
            }
            let t = next[s];
            pair[t] = NO_RANK;
            next[s] = next[t];
            if next[s] < n {
                prev[next[s]] = s;
            }
            pair[s] = joined(&next, s);
            if pair[s] != NO_RANK {
                heap.push(std::cmp::Reverse((pair[s], s)));
            }
            if s > 0 {
                let p = prev[s];
                pair[p] = joined(&next, p);
                if pair[p] != NO_RANK {
                    heap.push(std::cmp::Reverse((pair[p], p)));
                }
            }
        }
        let mut bounds = vec![0];
        let mut s = 0;
        while s < n {
            s = next[s];
            bounds.push(s);
        }
        bounds
    }
}

/// A stretch of text and how it is counted.
#[derive(Clone)]
enum Piece<'t> {
    /// A piece of the split, merged by rank.
    Ordinary { text: &'t [u8], range: Range<usize> },
    /// A special token: one.
    Special(Range<usize>),
    /// Text the split could not handle: one token a byte (an upper bound).
    Bytes(Range<usize>),
}

impl Piece<'_> {
    fn range(&self) -> Range<usize> {
        match self {
            Piece::Ordinary { range, .. } | Piece::Special(range) | Piece::Bytes(range) => {
                range.clone()
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Texts of every kind the split and the merge meet: prose, code,
    /// numbers, whitespace runs, contractions in both cases, scripts other
    /// than Latin, emoji, special tokens, and long pieces (merged through
    /// the heap).
    fn corpus() -> Vec<String> {
        let mut texts: Vec<String> = [
            "",
            " ",
            "Hello, world!",
            "tiktoken is great!",
            "I'm sure they'll say WE'VE DONE IT, didn't they? She'd've known.",
            "fn main() {\n    println!(\"{}\", 1_000_000 + 12345678);\n}\n",
            "  leading and trailing spaces   \n\n\n\tand tabs\t\t\r\n",
            "Ünïcödé façade naïve café — “quotes” and ‘others’ … ½ ¾",
            "日本語のテキストと中文文本，한국어 텍스트, עברית, العربية, русский текст",
            "emoji 🎉👍🏽🧑‍💻 and flags 🇫🇷🇯🇵",
            "<|endoftext|>",
            "before<|endoftext|>between<|endofprompt|>after <|fim_prefix|>x<|fim_suffix|>",
            "<|endoftext",
            "path/to/file.rs:12:5 and https://example.com/a?b=c&d=e#f",
            "1234567890 3.14159 -42 1e10 0x1F 2026-12-05T06:00:00Z",
            "a\u{0}nul and \u{7}bell and \u{1b}[31mred\u{1b}[0m",
            "\n\n\n\n",
            "   \n   ",
            "word\u{300}\u{301} combining marks",
        ]
        .iter()
        .map(|s| s.to_string())
        .collect();
        // Long pieces: no spaces, so one piece of the split each.
        texts.push("x".repeat(5_000));
        texts.push("ab".repeat(1_000));
        texts.push("qwertyuiopasdfghjklzxcvbnm".repeat(40));
        texts.push("🎉".repeat(300));
        texts.push("9".repeat(1_000));
        texts.push(" ".repeat(3_000));
        texts.push("-=".repeat(700));
        // Pseudo-random text over a small alphabet of awkward characters.
        let alphabet: Vec<char> = "ae io\nu'sTL1.😀é日\t-_/<|>".chars().collect();
        let mut state = 0x2545_f491_u64;
        for len in [10, 50, 99, 100, 101, 400, 2_000] {
            let text: String = (0..len)
                .map(|_| {
                    state ^= state << 13;
                    state ^= state >> 7;
                    state ^= state << 17;
                    alphabet[(state % alphabet.len() as u64) as usize]
                })
                .collect();
            texts.push(text);
        }
        // This crate's own source: real code and prose.
        for file in ["src/bpe.rs", "src/chat.rs", "README.md", "CHANGELOG.md"] {
            let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join(file);
            texts.push(std::fs::read_to_string(path).unwrap());
        }
        texts
    }

    #[test]
    fn counts_equal_tiktoken_in_both_encodings() {
        let pairs = [
            (Bpe::o200k_base(), tiktoken_rs::o200k_base().unwrap()),
            (Bpe::cl100k_base(), tiktoken_rs::cl100k_base().unwrap()),
        ];
        for (ours, reference) in &pairs {
            for text in corpus() {
                let expected = reference.encode_with_special_tokens(&text).len();
                assert_eq!(
                    ours.count(&text),
                    expected,
                    "count of {:?}",
                    text.chars().take(80).collect::<String>()
                );
            }
        }
    }

    #[test]
    fn every_special_token_opens_with_the_mark_the_search_looks_for() {
        for special in O200K_SPECIALS.iter().chain(CL100K_SPECIALS) {
            assert!(special.starts_with("<|"), "{special}");
        }
        // Many of them, and near misses, count as tiktoken counts them.
        let text = "doc <|endoftext|>x<|<|endoftext|><|fim_middle|><|end".repeat(2_000);
        let reference = tiktoken_rs::cl100k_base().unwrap();
        assert_eq!(
            Bpe::cl100k_base().count(&text),
            reference.encode_with_special_tokens(&text).len()
        );
    }

    #[test]
    fn both_merges_agree_on_every_piece_length() {
        let bpe = Bpe::o200k_base();
        let texts = corpus();
        for text in &texts {
            let bytes = text.as_bytes();
            for len in [2, 3, 17, 99, 100, 150, 600] {
                if bytes.len() >= len {
                    let piece = &bytes[..len];
                    assert_eq!(bpe.merge_short(piece), bpe.merge_long(piece), "{piece:?}");
                }
            }
        }
    }

    #[test]
    fn a_prefix_holds_whole_tokens_and_the_most_that_fit() {
        let bpe = Bpe::o200k_base();
        let reference = tiktoken_rs::o200k_base().unwrap();
        for text in corpus().iter().filter(|t| !t.is_empty()) {
            let total = bpe.count(text);
            for max in [
                0,
                1,
                2,
                7,
                total / 2,
                total.saturating_sub(1),
                total,
                total + 5,
            ] {
                let end = bpe.prefix_len(text, max);
                assert!(end <= text.len());
                if max >= total {
                    assert_eq!(end, text.len());
                    continue;
                }
                // The prefix's own tokens, as tiktoken counts them, are the
                // first `max` tokens of the text (when the cut is on a
                // character boundary, the tokens decode to exactly it).
                let tokens = reference.encode_with_special_tokens(text);
                let expected = reference.decode_bytes(&tokens[..max]).unwrap();
                assert_eq!(&text.as_bytes()[..end], &expected[..], "{max} of {text:?}");
            }
        }
    }

    #[test]
    fn the_tables_hold_every_token_of_the_encodings() {
        let o200k = Bpe::o200k_base();
        assert_eq!(o200k.ranks.len(), 199_998);
        let hello = tiktoken_rs::o200k_base()
            .unwrap()
            .encode_with_special_tokens("Hello");
        assert_eq!(hello.len(), 1);
        assert_eq!(o200k.rank(b"Hello"), hello[0]);
        let cl100k = Bpe::cl100k_base();
        assert_eq!(cl100k.ranks.len(), 100_256);
        // "tiktoken is great!" is [83, 1609, 5963, 374, 2294, 0] in
        // cl100k_base (OpenAI's cookbook).
        assert_eq!(cl100k.rank(b" is"), 374);
        assert_eq!(cl100k.rank(b" great"), 2294);
        assert_eq!(cl100k.rank(b"!"), 0);
        assert_eq!(cl100k.rank(b"no such token \xff"), NO_RANK);
    }
}
