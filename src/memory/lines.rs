//! Reading a log or archive line by line with a bounded memory cost: a line
//! longer than the cap ([`super::format::MAX_LINE_BYTES`] in the store) is
//! measured and skipped, never held whole, so one absurd line cannot take the
//! machine's memory; the caller reports it as damage by its position and
//! `repair` copies its byte range out in chunks.

use std::io::{self, BufRead};

/// One line as read: where it is, and its bytes unless it is over the cap.
#[derive(Debug)]
pub struct Line {
    /// 1-based line number.
    pub number: usize,
    /// Byte offset of the line's first byte.
    pub offset: u64,
    /// Length without the `\n`.
    pub len: u64,
    /// Whether a `\n` ended it (only the last line of a file can lack one).
    pub terminated: bool,
    /// Whether nothing follows this line.
    pub is_last: bool,
    /// The bytes without the `\n`; `None` when `len` is over the cap.
    pub bytes: Option<Vec<u8>>,
}

/// Iterates the lines of `reader`, holding at most `cap` bytes of one line.
pub struct Lines<R> {
    reader: R,
    cap: usize,
    number: usize,
    offset: u64,
}

impl<R: BufRead> Lines<R> {
    pub fn new(reader: R, cap: usize) -> Self {
        Lines {
            reader,
            cap,
            number: 0,
            offset: 0,
        }
    }

    /// The next line, `None` at the end.
    pub fn next_line(&mut self) -> io::Result<Option<Line>> {
        let mut bytes = Some(Vec::new());
        let mut len = 0u64;
        let mut terminated = false;
        loop {
            let available = self.reader.fill_buf()?;
            if available.is_empty() {
                break;
            }
            let (piece, used) = match available.iter().position(|&b| b == b'\n') {
                Some(i) => {
                    terminated = true;
                    (&available[..i], i + 1)
                }
                None => (available, available.len()),
            };
            len += piece.len() as u64;
            if let Some(held) = &mut bytes {
                if held.len() + piece.len() > self.cap {
                    bytes = None;
                } else {
                    held.extend_from_slice(piece);
                }
            }
            self.reader.consume(used);
            if terminated {
                break;
            }
        }
        if len == 0 && !terminated {
            return Ok(None);
        }
        self.number += 1;
        let line = Line {
            number: self.number,
            offset: self.offset,
            len,
            terminated,
            is_last: self.reader.fill_buf()?.is_empty(),
            bytes,
        };
        self.offset += len + u64::from(terminated);
        Ok(Some(line))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn all(text: &[u8], cap: usize) -> Vec<Line> {
        // A tiny buffer so lines span many reads.
        let mut lines = Lines::new(io::BufReader::with_capacity(3, text), cap);
        let mut out = Vec::new();
        while let Some(line) = lines.next_line().unwrap() {
            out.push(line);
        }
        out
    }

    #[test]
    fn lines_keep_their_positions_and_long_ones_are_not_held() {
        let lines = all(b"ab\n\nlong line here\ncd", 5);
        let shape: Vec<_> = lines
            .iter()
            .map(|l| (l.number, l.offset, l.len, l.terminated, l.is_last))
            .collect();
        assert_eq!(
            shape,
            [
                (1, 0, 2, true, false),
                (2, 3, 0, true, false),
                (3, 4, 14, true, false),
                (4, 19, 2, false, true)
            ]
        );
        assert_eq!(lines[0].bytes.as_deref(), Some(&b"ab"[..]));
        assert!(lines[2].bytes.is_none());
        assert_eq!(lines[3].bytes.as_deref(), Some(&b"cd"[..]));
        assert!(all(b"", 5).is_empty());
        assert!(all(b"x\n", 5)[0].is_last);
    }
}
