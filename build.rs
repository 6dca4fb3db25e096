//! Writes the BPE rank tables memchat counts tokens with (`src/bpe.rs`) into
//! `OUT_DIR`, from the tiktoken-rs tables (a build dependency only).
//!
//! Why: tiktoken-rs keeps every token's bytes three times (encoder map,
//! decoder map, sorted list), each its own allocation: 44 MB resident for
//! o200k. Counting needs one lookup from bytes to rank. The table written
//! here is every token's bytes in rank order, each behind a one-byte length
//! (0 marks a rank with no token): 1.6 MB for o200k, embedded in the binary
//! and indexed in place at run time.

// A build script reports failure by panicking: cargo shows the message.
#![allow(clippy::expect_used, clippy::panic)]

use std::io::Write;
use std::path::Path;

fn main() {
    println!("cargo::rerun-if-changed=build.rs");
    let out = std::env::var_os("OUT_DIR").expect("cargo sets OUT_DIR for build scripts");
    let out = Path::new(&out);
    write_table(
        &out.join("o200k_base.ranks"),
        &tiktoken_rs::o200k_base().expect("o200k_base"),
        199_998,
    );
    write_table(
        &out.join("cl100k_base.ranks"),
        &tiktoken_rs::cl100k_base().expect("cl100k_base"),
        100_256,
    );
}

/// Every rank below `ranks` (the ordinary tokens; special tokens come after
/// them and are known by name in `src/bpe.rs`).
fn write_table(path: &Path, bpe: &tiktoken_rs::CoreBPE, ranks: u32) {
    let mut table = Vec::with_capacity(2 * 1024 * 1024);
    for rank in 0..ranks {
        match bpe.decode_bytes(&[rank]) {
            Ok(bytes) => {
                let len = u8::try_from(bytes.len()).expect("a token is at most 255 bytes");
                assert!(len > 0, "rank {rank} decodes to no bytes");
                table.push(len);
                table.extend_from_slice(&bytes);
            }
            Err(_) => table.push(0),
        }
    }
    std::fs::File::create(path)
        .and_then(|mut file| file.write_all(&table))
        .expect("cannot write the rank table");
}
