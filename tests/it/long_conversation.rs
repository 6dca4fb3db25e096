//! A 1,000-turn script through the real binary with `--mock --context-limit
//! 2000`: the history stays under B at every check, and the archive ends up
//! holding every one of the 2,000 messages exactly once, in order.

use std::collections::BTreeMap;

use crate::support::{Sandbox, text};

#[test]
fn a_thousand_turns_stay_bounded_and_lose_nothing() {
    let sandbox = Sandbox::new();
    let mut script = String::new();
    for i in 1..=1000 {
        script.push_str(&format!(
            "Turn {i}: remember that item {i} is stored in box {}.\n",
            i * 7 % 31
        ));
        if i % 50 == 0 {
            script.push_str("/tokens\n");
        }
    }
    let out = sandbox.run(
        &["--mock", "--context-limit", "2000"],
        &[],
        Some(script.as_bytes()),
    );
    let stdout = text(&out.stdout);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    // Every /tokens check: "history X / B tokens".
    let checks: Vec<(u64, u64)> = stdout
        .lines()
        .filter_map(|l| l.strip_prefix("history"))
        .map(|l| {
            let mut nums = l.split_whitespace().filter_map(|w| w.parse::<u64>().ok());
            (nums.next().unwrap(), nums.next().unwrap())
        })
        .collect();
    assert_eq!(checks.len(), 20);
    for (history, cap) in &checks {
        assert_eq!(*cap, 1244);
        assert!(history <= cap, "history {history} > B {cap}");
    }
    assert!(
        text(&out.stderr).matches("memory: ").count() > 50,
        "compaction ran many times"
    );
    // Active + archive: every message once, seq strictly rising, none changed.
    let mut by_seq: BTreeMap<u64, serde_json::Value> = BTreeMap::new();
    for record in sandbox
        .records("default.archive.jsonl")
        .into_iter()
        .chain(sandbox.records("default.jsonl"))
    {
        if record["type"] == "message" {
            let seq = record["seq"].as_u64().unwrap();
            if let Some(previous) = by_seq.insert(seq, record.clone()) {
                assert_eq!(
                    previous, record,
                    "seq {seq} differs between archive and log"
                );
            }
        }
    }
    let users: Vec<String> = by_seq
        .values()
        .filter(|r| r["role"] == "user")
        .map(|r| r["content"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(users.len(), 1000);
    assert_eq!(
        by_seq.values().filter(|r| r["role"] == "assistant").count(),
        1000
    );
    for (i, content) in users.iter().enumerate() {
        assert!(
            content.starts_with(&format!("Turn {}:", i + 1)),
            "{content}"
        );
    }
}
