//! The bound on one reply. Every request asks for at most `R` tokens
//! (`max_tokens`), but a server may ignore it and stream without end (one
//! drove memory to 10 GB in 20 s). memchat stops reading a reply at whichever
//! comes first:
//! - [`REPLY_CAP_FACTOR`] × the requested maximum, counted in stream pieces
//!   (servers send about one token per piece, never less than one), so an
//!   honest reply, which ends at `max_tokens`, is never cut;
//! - [`MAX_REPLY_BYTES`] of text, whatever the pieces hold.
//!
//! What came until then is kept, and saved marked `"truncated": true`.
//! The server may end a reply early itself (`finish_reason` `length` or
//! `content_filter`): [`stopped_by_server`] says why, and it is saved the
//! same way.

/// How many times the requested maximum a reply may run before it is stopped.
pub const REPLY_CAP_FACTOR: u64 = 4;

/// The most text one reply may hold: 256 KiB, about 64,000 tokens, far above
/// any reply within the largest reserve (4,096 tokens), and well under the
/// store's cap on one message (`MAX_CONTENT_BYTES`).
pub const MAX_REPLY_BYTES: usize = 256 * 1024;

// A capped reply must always be a message the store accepts and can read back.
const _: () = assert!(MAX_REPLY_BYTES <= crate::memory::format::MAX_CONTENT_BYTES);

/// Counts a reply as it streams.
#[derive(Debug, Clone)]
pub struct ReplyCap {
    max_pieces: u64,
    max_bytes: usize,
    pieces: u64,
    bytes: usize,
}

impl ReplyCap {
    /// The cap for a reply requested with `max_tokens`.
    pub fn for_request(max_tokens: u32) -> ReplyCap {
        ReplyCap::new(
            u64::from(max_tokens.max(1)) * REPLY_CAP_FACTOR,
            MAX_REPLY_BYTES,
        )
    }

    pub fn new(max_pieces: u64, max_bytes: usize) -> ReplyCap {
        ReplyCap {
            max_pieces,
            max_bytes,
            pieces: 0,
            bytes: 0,
        }
    }

    /// Takes the next piece of the reply: returns the part of it to keep
    /// (all of it, or a head cut on a character boundary at the byte cap) and
    /// whether the cap is now reached, so the reply must stop.
    pub fn take<'a>(&mut self, piece: &'a str) -> (&'a str, bool) {
        self.pieces += 1;
        let room = self.max_bytes - self.bytes;
        let kept = if piece.len() <= room {
            piece
        } else {
            let mut end = room;
            while !piece.is_char_boundary(end) {
                end -= 1;
            }
            &piece[..end]
        };
        self.bytes += kept.len();
        let full = kept.len() < piece.len()
            || self.bytes >= self.max_bytes
            || self.pieces >= self.max_pieces;
        (kept, full)
    }

    /// Says which cap stopped the reply, for the user.
    pub fn describe(&self) -> String {
        if self.bytes >= self.max_bytes || self.pieces < self.max_pieces {
            format!(
                "the reply reached memchat's size cap ({} KiB)",
                self.max_bytes / 1024
            )
        } else {
            format!(
                "the reply ran past {} tokens, {REPLY_CAP_FACTOR} times the {} requested \
                 (the server ignores max_tokens)",
                self.max_pieces,
                self.max_pieces / REPLY_CAP_FACTOR
            )
        }
    }
}

/// Why the server's finish reason means the reply is incomplete, if it does:
/// `length` (the reply limit) and `content_filter` end a reply early, and the
/// reply is then saved marked truncated.
pub fn stopped_by_server(reason: &str, reply_limit: u32) -> Option<String> {
    match reason {
        "length" => Some(format!(
            "the server stopped the reply at the reply limit ({reply_limit} tokens, \
             finish_reason \"length\"); send \"continue\" for the rest"
        )),
        "content_filter" => Some(
            "the server's content filter stopped the reply (finish_reason \"content_filter\")"
                .to_string(),
        ),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_reply_within_the_request_is_never_cut() {
        let mut cap = ReplyCap::for_request(100);
        for _ in 0..100 {
            assert_eq!(cap.take("word "), ("word ", false));
        }
    }

    #[test]
    fn pieces_past_the_factor_stop_the_reply() {
        let mut cap = ReplyCap::for_request(10);
        for _ in 0..39 {
            assert!(!cap.take("x").1);
        }
        assert_eq!(cap.take("x"), ("x", true));
        assert!(cap.describe().contains("40 tokens"), "{}", cap.describe());
    }

    #[test]
    fn the_byte_cap_cuts_on_a_character_boundary() {
        let mut cap = ReplyCap::new(1000, 10);
        assert_eq!(cap.take("abcdefgh"), ("abcdefgh", false));
        // "é" is two bytes: only one byte of room is left after "x".
        assert_eq!(cap.take("xé"), ("x", true));
        assert!(cap.describe().contains("size cap"));
    }
}
