//! Golden-file tests: each directory under `tests/golden/` is a case that
//! runs the real `memchat` binary (with `--mock`, offline) one or more times
//! in a fresh memory directory, and compares a transcript of what it printed
//! and what it left on disk with the case's `expected` file.
//!
//! A case holds `run1.args` (one argument per line), optionally `run1.stdin`
//! and `run1.env` (`KEY=VALUE` lines), then `run2.*` and so on, and an
//! optional `setup/` directory copied into the memory directory first, and an
//! optional `files/` directory copied into the working directory.
//! Timestamps are normalised. `BLESS=1 cargo test --test golden` rewrites the
//! `expected` files; review the diff before committing it.

#![allow(clippy::unwrap_used, clippy::expect_used)] // tests fail loudly by design

use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

fn cases_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/golden")
}

/// Replaces the value of every `"key":"..."` with `<T>`.
fn mask_json_field(text: &str, key: &str) -> String {
    let needle = format!("\"{key}\":\"");
    let mut out = String::new();
    let mut rest = text;
    while let Some(i) = rest.find(&needle) {
        out.push_str(&rest[..i + needle.len()]);
        rest = &rest[i + needle.len()..];
        let end = rest.find('"').unwrap_or(rest.len());
        out.push_str("<T>");
        rest = &rest[end..];
    }
    out.push_str(rest);
    out
}

/// Masks what changes from run to run: times, the temp directory.
fn normalise(text: &str, tmp: &Path) -> String {
    let text = text.replace(&tmp.display().to_string(), "<TMP>");
    let text = mask_json_field(&text, "at");
    let text = mask_json_field(&text, "created_at");
    let text = mask_corrupt_names(&text);
    mask_timestamps(&text)
}

/// Any RFC 3339 UTC timestamp (`2026-11-22T10:00:00Z`) → `<T>`.
fn mask_timestamps(text: &str) -> String {
    let shape = b"dddd-dd-ddTdd:dd:ddZ";
    let bytes = text.as_bytes();
    let mut out = String::new();
    let mut i = 0;
    while i < bytes.len() {
        let fits = bytes.len() - i >= shape.len()
            && shape.iter().zip(&bytes[i..]).all(|(s, b)| {
                if *s == b'd' {
                    b.is_ascii_digit()
                } else {
                    s == b
                }
            });
        if fits {
            out.push_str("<T>");
            i += shape.len();
        } else {
            let ch = text[i..].chars().next().unwrap();
            out.push(ch);
            i += ch.len_utf8();
        }
    }
    out
}

/// `NAME.corrupt-2026-11-22T100000Z` → `NAME.corrupt-<T>`.
fn mask_corrupt_names(text: &str) -> String {
    let mut out = String::new();
    let mut rest = text;
    while let Some(i) = rest.find(".corrupt-") {
        out.push_str(&rest[..i + ".corrupt-".len()]);
        rest = &rest[i + ".corrupt-".len()..];
        let end = rest
            .find(|c: char| !(c.is_ascii_alphanumeric() || c == '-'))
            .unwrap_or(rest.len());
        out.push_str("<T>");
        rest = &rest[end..];
    }
    out.push_str(rest);
    out
}

fn shell_quote(arg: &str) -> String {
    if !arg.is_empty()
        && arg
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "-_./=:".contains(c))
    {
        arg.to_string()
    } else {
        format!("'{}'", arg.replace('\'', "'\\''"))
    }
}

fn copy_dir(from: &Path, to: &Path) {
    fs::create_dir_all(to).unwrap();
    for entry in fs::read_dir(from).unwrap() {
        let entry = entry.unwrap();
        fs::copy(entry.path(), to.join(entry.file_name())).unwrap();
    }
}

/// Runs one case and returns its transcript.
fn run_case(case: &Path) -> String {
    let tmp = tempfile::tempdir().unwrap();
    let tmp_path = tmp.path().canonicalize().unwrap();
    let memory = tmp_path.join("mem");
    if case.join("setup").is_dir() {
        copy_dir(&case.join("setup"), &memory);
    }
    if case.join("files").is_dir() {
        copy_dir(&case.join("files"), &tmp_path);
    }
    let home = tmp_path.join("home");
    fs::create_dir_all(&home).unwrap();
    let mut transcript = String::new();
    for n in 1.. {
        let args_file = case.join(format!("run{n}.args"));
        if !args_file.exists() {
            break;
        }
        let args: Vec<String> = fs::read_to_string(&args_file)
            .unwrap()
            .lines()
            .map(str::to_string)
            .collect();
        let mut command = Command::new(env!("CARGO_BIN_EXE_memchat"));
        command
            .args(&args)
            .current_dir(&tmp_path)
            .env_clear()
            .env("PATH", std::env::var_os("PATH").unwrap_or_default())
            .env("HOME", &home)
            .env("XDG_CONFIG_HOME", home.join("config"))
            .env("XDG_DATA_HOME", home.join("data"))
            .env("MEMCHAT_MEMORY_DIR", &memory)
            .env("MEMCHAT_LOCK_WAIT", "1")
            .env("NO_COLOR", "1")
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        if let Ok(env) = fs::read_to_string(case.join(format!("run{n}.env"))) {
            for line in env.lines().filter(|l| !l.trim().is_empty()) {
                let (key, value) = line.split_once('=').expect("env lines are KEY=VALUE");
                command.env(key, value);
            }
        }
        let stdin = fs::read(case.join(format!("run{n}.stdin"))).ok();
        command.stdin(if stdin.is_some() {
            Stdio::piped()
        } else {
            Stdio::null()
        });
        let mut child = command.spawn().unwrap();
        if let Some(bytes) = stdin {
            use std::io::Write;
            let mut pipe = child.stdin.take().unwrap();
            std::thread::spawn(move || {
                let _ = pipe.write_all(&bytes);
            });
        }
        let output = child.wait_with_output().unwrap();
        let quoted: Vec<String> = args.iter().map(|a| shell_quote(a)).collect();
        transcript.push_str(&format!("$ memchat {}\n", quoted.join(" ")));
        transcript.push_str(&format!("exit: {}\n", output.status.code().unwrap_or(-1)));
        transcript.push_str("--- stdout\n");
        transcript.push_str(&String::from_utf8_lossy(&output.stdout));
        transcript.push_str("--- stderr\n");
        transcript.push_str(&String::from_utf8_lossy(&output.stderr));
        transcript.push('\n');
    }
    let mut files: Vec<PathBuf> = fs::read_dir(&memory)
        .map(|entries| entries.map(|e| e.unwrap().path()).collect())
        .unwrap_or_default();
    files.retain(|p| {
        let name = p.file_name().unwrap().to_string_lossy();
        !name.ends_with(".lock") && !name.starts_with('.')
    });
    files.sort();
    for file in files {
        transcript.push_str(&format!(
            "=== {}\n",
            file.file_name().unwrap().to_string_lossy()
        ));
        let content = String::from_utf8_lossy(&fs::read(&file).unwrap()).into_owned();
        transcript.push_str(&content);
        if !content.is_empty() && !content.ends_with('\n') {
            transcript.push_str("\n(no newline at end of file)\n");
        }
    }
    normalise(&transcript, &tmp_path)
}

#[test]
fn golden_cases() {
    let bless = std::env::var_os("BLESS").is_some();
    let mut cases: Vec<PathBuf> = fs::read_dir(cases_dir())
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.is_dir())
        .collect();
    cases.sort();
    assert!(cases.len() >= 6, "the golden cases are missing");
    let mut failures = Vec::new();
    for case in &cases {
        let actual = run_case(case);
        let expected_path = case.join("expected");
        if bless {
            fs::write(&expected_path, &actual).unwrap();
            continue;
        }
        let expected = fs::read_to_string(&expected_path).unwrap_or_default();
        if expected != actual {
            let name = case.file_name().unwrap().to_string_lossy().to_string();
            eprintln!(
                "=== golden case {name} differs\n--- expected\n{expected}\n--- actual\n{actual}"
            );
            failures.push(name);
        }
    }
    assert!(
        failures.is_empty(),
        "golden cases differ: {failures:?} (BLESS=1 rewrites them)"
    );
}
