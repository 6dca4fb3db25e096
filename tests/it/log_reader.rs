//! The log reader against hostile bytes (proptest): arbitrary input never
//! panics; a valid log cut or corrupted anywhere either loads (a torn tail is
//! set aside) or fails with a line number; and `repair` always yields a log
//! that loads and keeps every good record.

use std::path::Path;
use std::time::Duration;

use memchat::memory::repair::repair;
use memchat::memory::session::parse_log;
use memchat::memory::{Session, StoreError};
use proptest::prelude::*;

fn valid_log(messages: usize) -> Vec<u8> {
    let mut log = br#"{"type":"header","format":"memchat","version":1,"session":"s","created_at":"2026-11-22T10:00:00Z"}"#.to_vec();
    log.push(b'\n');
    for i in 1..=messages {
        let role = if i % 2 == 1 { "user" } else { "assistant" };
        log.extend(format!(r#"{{"type":"message","seq":{i},"role":"{role}","content":"message {i} ✓","at":"2026-11-22T10:00:00Z"}}"#).bytes());
        log.push(b'\n');
    }
    log
}

proptest! {
    #![proptest_config(crate::support::proptest_config(300))]

    #[test]
    fn arbitrary_bytes_never_panic(bytes in prop::collection::vec(any::<u8>(), 0..2048)) {
        let _ = parse_log(&bytes, Path::new("x.jsonl"), "x");
    }

    #[test]
    fn a_cut_log_always_loads(messages in 1usize..20, cut in any::<prop::sample::Index>()) {
        let log = valid_log(messages);
        let at = cut.index(log.len() + 1);
        let parsed = parse_log(&log[..at], Path::new("x.jsonl"), "x").unwrap();
        // Every whole line before the cut survives; the cut line survives
        // only if what is left of it is still a whole record.
        let whole_lines = log[..at].iter().filter(|&&b| b == b'\n').count();
        let kept = parsed.messages.len();
        let whole_messages = whole_lines.saturating_sub(1);
        prop_assert!(kept == whole_messages || kept == whole_messages + 1, "kept {kept} of {whole_lines} whole lines");
    }

    #[test]
    fn corruption_is_reported_with_a_line_and_repair_keeps_the_good_lines(
        messages in 2usize..20,
        flips in prop::collection::vec((any::<prop::sample::Index>(), any::<u8>()), 1..4),
    ) {
        let original = valid_log(messages);
        let mut log = original.clone();
        for (index, byte) in &flips {
            let i = index.index(log.len());
            log[i] = *byte;
        }
        // The 1-based lines (of the corrupted log) holding a changed byte.
        let line_of = |i: usize| 1 + log[..i].iter().filter(|&&b| b == b'\n').count();
        let changed: Vec<usize> = (0..log.len()).filter(|&i| log[i] != original[i]).collect();
        match parse_log(&log, Path::new("x.jsonl"), "x") {
            Ok(parsed) => {
                if changed.is_empty() {
                    prop_assert_eq!(parsed.messages.len(), messages);
                }
            }
            Err(StoreError::Corrupt { line, reason, .. }) => {
                prop_assert!(!changed.is_empty(), "an intact log is corrupt at line {}: {}", line, reason);
                // Never an intact line before the damage; at most one line
                // after it (a damaged `seq` is caught on the next line).
                let first = line_of(changed[0]);
                let last = line_of(changed[changed.len() - 1]);
                prop_assert!(
                    first <= line && line <= last + 1,
                    "line {} reported, the damage is on lines {}..={}: {}", line, first, last, reason
                );
            }
            Err(StoreError::Unsupported { .. }) => {
                prop_assert!(!changed.is_empty() && line_of(changed[0]) == 1, "only the header names a version");
            }
            Err(other) => prop_assert!(false, "unexpected error {other}"),
        }
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("s.jsonl"), &log).unwrap();
        match repair(dir.path(), "s", Duration::from_secs(1)) {
            Ok(report) => {
                let report = report.log.expect("the log was repaired");
                prop_assert!(report.kept <= messages);
                let session = Session::open(dir.path(), "s", Duration::from_secs(1));
                prop_assert!(session.is_ok(), "the repaired log does not open: {:?}", session.err());
                // Quarantined bytes plus kept records account for every line.
                let good_lines = report.kept;
                prop_assert!(good_lines + report.quarantined.len() >= messages.saturating_sub(flips.len()));
            }
            Err(StoreError::Unsupported { .. }) => {} // a flipped version digit: never rewritten
            Err(other) => prop_assert!(false, "repair failed: {other}"),
        }
    }
}
