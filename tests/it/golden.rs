//! Golden-file tests: each directory under `tests/golden/` is a case that
//! runs the real `memchat` binary (with `--mock`, offline) one or more times
//! in a fresh memory directory, and compares a transcript of what it printed
//! and what it left on disk with the case's `expected` file.
//!
//! A case holds `run1.args` (one argument per line), optionally `run1.stdin`
//! and `run1.env` (`KEY=VALUE` lines), then `run2.*` and so on, and an
//! optional `setup/` directory copied into the memory directory first, and an
//! optional `files/` directory copied into the working directory.
//! Timestamps are normalised, and so is the temporary directory (`<TMP>`; on
//! a line showing it, runs of spaces count as one, since its length depends on
//! `TMPDIR`). Each case is its own test: `cargo test --test it
//! golden::one_shot`. `BLESS=1 cargo test --test it golden::` rewrites the
//! `expected` files (only `BLESS=1`; `BLESS=0` compares); review the diff
//! before committing it.
//!
//! Each case that is not about the memory directory's own files runs again
//! on PostgreSQL (`MEMCHAT_STORE`, a schema of its own) and must print what
//! it printed on files, but for the store's location (see
//! `check_on_postgres`): one definition, both stores. A new case directory must be added to
//! `golden_cases!` below, or `every_case_directory_is_listed` fails.

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
    let text = mask_tmp(text, tmp);
    let text = mask_json_field(&text, "at");
    let text = mask_json_field(&text, "created_at");
    let text = mask_corrupt_names(&text);
    mask_timestamps(&text)
}

/// The temporary directory → `<TMP>`. Its length depends on `TMPDIR`, so on
/// a line that shows it, padding (a column aligned after the path) is
/// compared as one space: the transcript is the same wherever the test runs.
fn mask_tmp(text: &str, tmp: &Path) -> String {
    let tmp = tmp.display().to_string();
    let mut out = String::with_capacity(text.len());
    for line in text.split_inclusive('\n') {
        if line.contains(&tmp) {
            let masked = line.replace(&tmp, "<TMP>");
            let (body, end) = match masked.strip_suffix('\n') {
                Some(body) => (body, "\n"),
                None => (masked.as_str(), ""),
            };
            let mut previous_space = false;
            for ch in body.chars() {
                if ch == ' ' && previous_space {
                    continue;
                }
                previous_space = ch == ' ';
                out.push(ch);
            }
            out.push_str(end);
        } else {
            out.push_str(line);
        }
    }
    out
}

/// Any RFC 3339 UTC timestamp (`2026-11-22T10:00:00Z`) → `<T>`.
fn mask_timestamps(text: &str) -> String {
    // RFC 3339 as stored, and the short form search hits show.
    let shapes: [&[u8]; 2] = [b"dddd-dd-ddTdd:dd:ddZ", b"dddd-dd-dd dd:dd"];
    let bytes = text.as_bytes();
    let mut out = String::new();
    let mut i = 0;
    while i < bytes.len() {
        let fits = |shape: &[u8]| {
            bytes.len() - i >= shape.len()
                && shape.iter().zip(&bytes[i..]).all(|(s, b)| {
                    if *s == b'd' {
                        b.is_ascii_digit()
                    } else {
                        s == b
                    }
                })
        };
        if let Some(shape) = shapes.into_iter().find(|s| fits(s)) {
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
        if entry.path().is_dir() {
            copy_dir(&entry.path(), &to.join(entry.file_name()));
        } else {
            fs::copy(entry.path(), to.join(entry.file_name())).unwrap();
        }
    }
}

/// Runs one case and returns its transcript; with `store`, every run keeps
/// its conversations there (`MEMCHAT_STORE`) instead of the memory directory.
fn run_case(case: &Path, store: Option<&str>) -> String {
    let tmp = tempfile::tempdir().unwrap();
    let tmp_path = tmp.path().canonicalize().unwrap();
    let memory = tmp_path.join("mem");
    if case.join("setup").is_dir() {
        copy_dir(&case.join("setup"), &memory);
        // As memchat would have created it: private, whatever the umask.
        use std::os::unix::fs::PermissionsExt;
        fs::set_permissions(&memory, fs::Permissions::from_mode(0o700)).unwrap();
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
        if let Some(url) = store {
            command.env("MEMCHAT_STORE", url);
        }
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

/// `BLESS=1` rewrites the expected files instead of comparing; unset or
/// `BLESS=0` compares. Any other value is a mistake worth stopping for.
fn blessing() -> bool {
    match std::env::var("BLESS").as_deref() {
        Err(_) | Ok("" | "0") => false,
        Ok("1") => true,
        Ok(other) => panic!("BLESS={other:?}: use BLESS=1 to rewrite the expected files"),
    }
}

/// Runs the case `name` and compares (or, blessing, rewrites) its transcript.
fn check(name: &str) {
    let case = cases_dir().join(name);
    assert!(case.is_dir(), "no golden case directory {}", case.display());
    assert!(
        case.join("run1.args").is_file(),
        "{}: a case runs memchat at least once (run1.args)",
        case.display()
    );
    let actual = run_case(&case, None);
    let expected_path = case.join("expected");
    if blessing() {
        fs::write(&expected_path, &actual).unwrap();
        eprintln!("blessed golden case {name}");
        return;
    }
    let expected = fs::read_to_string(&expected_path)
        .unwrap_or_else(|e| panic!("{}: {e} (BLESS=1 writes it)", expected_path.display()));
    if expected != actual {
        panic!(
            "golden case {name} differs (BLESS=1 rewrites it)\n--- expected\n{expected}\n--- actual\n{actual}"
        );
    }
    check_on_postgres(name, &case, &actual);
}

/// Cases about the memory directory's files themselves (their damage,
/// their paths), or whose output names the store: these run on files only.
/// Cases with a `setup/` directory (a memory directory prepared on disk)
/// are file cases too.
const FILES_ONLY: &[&str] = &[
    // `--print-config` shows the store setting itself, `--help` the
    // environment's values.
    "print_config",
    "help_pages",
    // Search ranks by BM25 on files and by ts_rank_cd on PostgreSQL: the
    // same hits, scored differently (tests/it/recall.rs checks PostgreSQL).
    "search_and_recall",
];

/// The same case on PostgreSQL: every run must print what it printed on
/// files, but for the store's location. (What is stored is compared by the
/// suites that read it through the store boundary.)
fn check_on_postgres(name: &str, case: &Path, on_files: &str) {
    if case.join("setup").is_dir() || FILES_ONLY.contains(&name) {
        return;
    }
    let Some(db) = crate::pg_store::TestDb::new(&format!("golden::{name} on PostgreSQL")) else {
        return;
    };
    let runs = |transcript: &str| -> String {
        let end = transcript
            .find("\n=== ")
            .map_or(transcript.len(), |i| i + 1);
        transcript[..end].to_string()
    };
    // What differs by design: where the store is, what `delete` removed
    // ("1 file", "its rows"), and which passages recall picked (each store
    // ranks with its own engine; tests/it/recall.rs checks recall on both).
    let comparable = |text: &str, location: &str| -> String {
        text.replace(location, "<STORE>")
            .lines()
            .filter(|l| !l.starts_with("memchat: recall: "))
            .map(|l| match l.rfind(" (") {
                Some(i) if l.starts_with("deleted session ") => format!("{} (…)", &l[..i]),
                _ => l.to_string(),
            })
            .collect::<Vec<_>>()
            .join("\n")
    };
    let expected = comparable(&runs(on_files), "<TMP>/mem");
    let actual = comparable(&runs(&run_case(case, Some(&db.url))), &db.url);
    if expected != actual {
        panic!(
            "golden case {name} differs on PostgreSQL from its run on files\n--- on files\n{expected}\n--- on PostgreSQL\n{actual}"
        );
    }
}

/// One `#[test]` per case, named after its directory, and the list of names
/// the completeness test checks against `tests/golden/`.
macro_rules! golden_cases {
    ($($name:ident),* $(,)?) => {
        const CASES: &[&str] = &[$(stringify!($name)),*];
        $(
            #[test]
            fn $name() {
                check(stringify!($name));
            }
        )*
    };
}

golden_cases! {
    attachments,
    bad_session_name,
    command_line_rule,
    compaction_36_turns,
    continue_across_runs,
    corrupt_middle_line,
    failed_turn_recovery,
    help_and_tokens,
    help_pages,
    import_and_export,
    invalid_utf8,
    missing_header,
    missing_key,
    multiline_script,
    one_shot,
    print_config,
    roles,
    script_commands,
    script_session_commands,
    search_and_recall,
    session_settings,
    sessions_management,
    stdin_attached,
    system_prompt,
    three_turn_script,
    torn_last_line,
    unknown_version,
}

#[test]
fn every_case_directory_is_listed() {
    let mut on_disk: Vec<String> = fs::read_dir(cases_dir())
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.is_dir())
        .map(|p| p.file_name().unwrap().to_string_lossy().into_owned())
        .collect();
    on_disk.sort();
    let mut listed: Vec<String> = CASES.iter().map(|c| c.to_string()).collect();
    listed.sort();
    assert_eq!(
        on_disk, listed,
        "every directory under tests/golden/ must be listed in golden_cases! (tests/it/golden.rs), and every listed case must exist"
    );
}
