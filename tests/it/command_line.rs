//! The command line's one rule, through the real binary: every management
//! command does its work with its options before or after its name, and
//! nothing typed by mistake (an option that does nothing for a command, a
//! mistyped command) reaches the model or is stored.
//!
//! Each run points `OPENAI_BASE_URL` at a fake server that records every
//! request, and `MEMCHAT_MEMORY_DIR` at a decoy directory while `--memory-dir`
//! names the real one: a command that ignored its option, or a chat turn
//! formed by accident, shows up as a request or as a changed file.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Output;

use crate::support::{FakeServer, Reply, Sandbox, text};

/// A sandbox with one session (`default`, two messages) in `dir`, an empty
/// decoy memory directory in the environment, and a server that would answer.
struct World {
    sandbox: Sandbox,
    server: FakeServer,
    dir: PathBuf,
}

impl World {
    fn new() -> World {
        let sandbox = Sandbox::new();
        let dir = sandbox.dir.path().join("real");
        let seed = sandbox.run(
            &[
                "--mock",
                "--memory-dir",
                dir.to_str().unwrap(),
                "hello there",
            ],
            &[],
            None,
        );
        assert_eq!(seed.status.code(), Some(0), "{}", text(&seed.stderr));
        std::fs::write(
            sandbox.dir.path().join("conv.json"),
            r#"[{"role":"user","content":"imported question"},{"role":"assistant","content":"imported answer"}]"#,
        )
        .unwrap();
        let server = FakeServer::start(vec![Reply::streamed(&["a reply"])]);
        World {
            sandbox,
            server,
            dir,
        }
    }

    fn dir(&self) -> &str {
        self.dir.to_str().unwrap()
    }

    /// Runs memchat; `{D}` in an argument stands for the real memory dir.
    fn run(&self, args: &[&str]) -> Output {
        let args: Vec<String> = args.iter().map(|a| a.replace("{D}", self.dir())).collect();
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        self.sandbox.run(
            &args,
            &[
                ("OPENAI_BASE_URL", &self.server.url),
                ("OPENAI_API_KEY", "sk-test"),
                (
                    "MEMCHAT_MEMORY_DIR",
                    self.sandbox.dir.path().join("decoy").to_str().unwrap(),
                ),
            ],
            None,
        )
    }

    /// Every file under the sandbox (memory dirs, exports), with its bytes.
    fn files(&self) -> BTreeMap<String, Vec<u8>> {
        let mut files = BTreeMap::new();
        collect(self.sandbox.dir.path(), self.sandbox.dir.path(), &mut files);
        files
    }

    fn requests(&self) -> usize {
        self.server.requests().len()
    }
}

fn collect(root: &Path, dir: &Path, files: &mut BTreeMap<String, Vec<u8>>) {
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            collect(root, &path, files);
        } else {
            let name = path.strip_prefix(root).unwrap().display().to_string();
            files.insert(name, std::fs::read(&path).unwrap());
        }
    }
}

/// The files that appeared, disappeared or changed between two snapshots.
fn changes(before: &BTreeMap<String, Vec<u8>>, after: &BTreeMap<String, Vec<u8>>) -> Vec<String> {
    let mut changed: Vec<String> = Vec::new();
    for (name, bytes) in after {
        match before.get(name) {
            None => changed.push(format!("+{name}")),
            Some(old) if old != bytes => changed.push(format!("~{name}")),
            Some(_) => {}
        }
    }
    for name in before.keys().filter(|n| !after.contains_key(*n)) {
        changed.push(format!("-{name}"));
    }
    changed
}

/// One management command: its words with `{OPT}` where the memory-dir
/// option goes, what it may change on disk, and a word its stdout holds.
struct Case {
    args: &'static [&'static str],
    changes: &'static [&'static str],
    stdout_has: &'static str,
}

const CASES: &[Case] = &[
    Case {
        args: &["sessions"],
        changes: &[],
        stdout_has: "default",
    },
    Case {
        args: &["ls"],
        changes: &[],
        stdout_has: "default",
    },
    Case {
        args: &["show", "default", "--all", "--json"],
        changes: &[],
        stdout_has: "\"hello there\"",
    },
    Case {
        args: &["export", "default", "-o", "x.md"],
        changes: &["+x.md"],
        stdout_has: "",
    },
    Case {
        args: &["import", "conv.json", "--as", "imp"],
        changes: &["+real/imp.jsonl"],
        stdout_has: "imp",
    },
    Case {
        args: &["rename", "default", "other"],
        changes: &["+real/other.jsonl", "-real/default.jsonl"],
        stdout_has: "renamed",
    },
    Case {
        args: &["delete", "default", "--yes"],
        changes: &["-real/default.jsonl"],
        stdout_has: "",
    },
    Case {
        args: &["repair", "default"],
        changes: &[],
        stdout_has: "healthy",
    },
];

/// `args` with `--memory-dir {D}` inserted at `at`.
fn with_dir(args: &[&'static str], at: usize) -> Vec<&'static str> {
    let mut args = args.to_vec();
    args.insert(at, "{D}");
    args.insert(at, "--memory-dir");
    args
}

#[test]
fn every_management_command_takes_its_options_before_and_after_its_name() {
    for case in CASES {
        // Before the name, right after it, at the end.
        for at in [0, 1, case.args.len()] {
            let args = with_dir(case.args, at);
            let world = World::new();
            let before = world.files();
            let out = world.run(&args);
            let shown = format!("memchat {}", args.join(" "));
            assert_eq!(out.status.code(), Some(0), "{shown}: {}", text(&out.stderr));
            assert_eq!(world.requests(), 0, "{shown} reached the model");
            let mut changed = changes(&before, &world.files());
            // Deleting or renaming a session also removes its lock file.
            changed.retain(|c| !c.ends_with(".lock"));
            assert_eq!(changed, case.changes, "{shown} changed the wrong files");
            assert!(
                text(&out.stdout).contains(case.stdout_has),
                "{shown}: {}",
                text(&out.stdout)
            );
        }
    }
}

#[test]
fn the_generating_commands_work_and_take_no_chat_option() {
    let world = World::new();
    for (args, has) in [
        (&["completions", "bash"][..], "memchat"),
        (&["man"], ".TH memchat"),
    ] {
        let out = world.run(args);
        assert_eq!(out.status.code(), Some(0), "{args:?}");
        assert!(text(&out.stdout).contains(has), "{args:?}");
        for at in [0, args.len()] {
            let refused = with_dir(args, at);
            let out = world.run(&refused);
            assert_eq!(out.status.code(), Some(2), "{refused:?}");
            assert!(
                text(&out.stderr).contains("--memory-dir does nothing with"),
                "{refused:?}: {}",
                text(&out.stderr)
            );
        }
    }
    assert_eq!(world.requests(), 0);
}

/// Runs `args`, expecting a usage error (exit 2) whose message has `says`,
/// with no request and no file changed.
fn refused(world: &World, args: &[&str], says: &str) {
    let before = world.files();
    let out = world.run(args);
    let shown = format!("memchat {}", args.join(" "));
    assert_eq!(out.status.code(), Some(2), "{shown}: {}", text(&out.stderr));
    assert!(
        text(&out.stderr).contains(says),
        "{shown}: {}",
        text(&out.stderr)
    );
    assert!(out.stdout.is_empty(), "{shown}: {}", text(&out.stdout));
    assert_eq!(world.requests(), 0, "{shown} reached the model");
    assert_eq!(
        changes(&before, &world.files()),
        Vec::<String>::new(),
        "{shown}"
    );
}

#[test]
fn an_option_that_does_nothing_for_a_command_is_refused_in_any_position() {
    let world = World::new();
    for case in CASES {
        for option in [&["--mock"][..], &["-s", "x"], &["--color", "never"]] {
            for at in [0, case.args.len()] {
                let mut args = case.args.to_vec();
                for (i, word) in option.iter().enumerate() {
                    args.insert(at + i, word);
                }
                refused(&world, &args, " does nothing with 'memchat ");
            }
        }
    }
    // The issue's cases, word for word.
    refused(
        &world,
        &["--mock", "-s", "x", "show", "x", "--all", "--json"],
        "--mock does nothing with 'memchat show'",
    );
    refused(
        &world,
        &["import", "conv.json", "--session", "x"],
        "--session does nothing with 'memchat import'",
    );
}

#[test]
fn a_mistyped_command_is_refused_with_a_suggestion_and_the_way_to_send_it() {
    let world = World::new();
    refused(&world, &["sesions"], "did you mean 'sessions'?");
    refused(
        &world,
        &["delet", "default", "--yes"],
        "did you mean 'delete'?",
    );
    refused(
        &world,
        &["--memory-dir", "{D}", "shwo", "default"],
        "did you mean 'show'?",
    );
    refused(&world, &["sesions"], "memchat -- sesions");
    // A command's option without the command is no prompt either.
    refused(
        &world,
        &["hello", "--yes"],
        "--yes is an option of 'memchat delete'",
    );
}

#[test]
fn after_double_dash_the_words_are_a_prompt_and_are_sent() {
    // The control for the tests above: this does reach the model.
    let world = World::new();
    let out = world.run(&["--memory-dir", "{D}", "--", "sesions"]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    assert_eq!(world.requests(), 1);
    let records = crate::support::read_records(&world.dir.join("default.jsonl"));
    assert!(records.iter().any(|r| r["content"] == "sesions"));
    // And ordinary prompts need no `--`, with options anywhere.
    let out = world.run(&["hello", "--memory-dir", "{D}", "there"]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    assert_eq!(world.requests(), 2);
    let records = crate::support::read_records(&world.dir.join("default.jsonl"));
    assert!(records.iter().any(|r| r["content"] == "hello there"));
}
