//! Shell completion through the real binary: what memchat answers at each
//! Tab (session names where a session is named, `--color`'s values, commands
//! without their hidden aliases), and the scripts of `memchat completions`
//! run in real bash, zsh and fish (zsh and fish are skipped, loudly, where
//! they are not installed).

use std::path::Path;
use std::process::Command;

use crate::support::{Sandbox, skip, text};

/// A sandbox holding the sessions `default` and `work`.
fn sandbox_with_sessions() -> Sandbox {
    let sandbox = Sandbox::new();
    for session in ["default", "work"] {
        let out = sandbox.run(&["--mock", "-s", session, "hi"], &[], None);
        assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    }
    sandbox
}

/// What memchat answers bash for `words`, completing the last one.
fn answers(sandbox: &Sandbox, words: &[&str]) -> Vec<String> {
    let mut command = sandbox.command(&["--"]);
    command
        .arg("memchat")
        .args(words)
        .env("_MEMCHAT_COMPLETE", "bash")
        .env("_CLAP_COMPLETE_INDEX", words.len().to_string())
        .env("_CLAP_IFS", "\n");
    let out = command.output().unwrap();
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    text(&out.stdout).lines().map(str::to_string).collect()
}

fn has(answers: &[String], word: &str) -> bool {
    answers.iter().any(|a| a == word)
}

#[test]
fn session_names_are_offered_wherever_a_session_is_named() {
    let sandbox = sandbox_with_sessions();
    for words in [
        &["show", ""][..],
        &["-s", ""],
        &["--session", ""],
        &["export", ""],
        &["delete", ""],
        &["rename", ""],
        &["repair", ""],
        &["--mock", "show", ""],
    ] {
        let got = answers(&sandbox, words);
        assert!(
            has(&got, "default") && has(&got, "work"),
            "{words:?}: {got:?}"
        );
    }
    let got = answers(&sandbox, &["show", "w"]);
    assert!(has(&got, "work") && !has(&got, "default"), "{got:?}");
    // A new name is not an existing session.
    let got = answers(&sandbox, &["rename", "work", ""]);
    assert!(!has(&got, "default"), "{got:?}");
}

#[test]
fn color_offers_its_values_and_commands_their_names() {
    let sandbox = sandbox_with_sessions();
    let got = answers(&sandbox, &["--color", ""]);
    assert_eq!(got, ["auto", "always", "never"]);
    let got = answers(&sandbox, &["export", "work", "--format", ""]);
    assert_eq!(got, ["json", "jsonl", "markdown"]);
    let got = answers(&sandbox, &[""]);
    for command in [
        "sessions", "show", "export", "import", "delete", "rename", "repair", "models",
    ] {
        assert!(has(&got, command), "{command}: {got:?}");
    }
    assert!(
        !has(&got, "ls"),
        "the alias is not offered beside its command"
    );
    // A command offers its own options, not the chat's.
    let got = answers(&sandbox, &["show", "default", "--"]);
    assert!(has(&got, "--all") && !has(&got, "--mock"), "{got:?}");
}

#[test]
fn model_names_come_from_the_last_listing() {
    let sandbox = sandbox_with_sessions();
    assert!(answers(&sandbox, &["-m", ""]).is_empty(), "no listing yet");
    let listing = r#"{"server":"http://x/v1","at":"t","models":[{"id":"llama3"},{"id":"qwen","window":8192}]}"#;
    std::fs::write(sandbox.memory().join(".models.json"), listing).unwrap();
    for words in [
        &["-m", ""][..],
        &["--model", ""],
        &["sessions", "--model", ""],
    ] {
        let got = answers(&sandbox, words);
        assert_eq!(got, ["llama3", "qwen"], "{words:?}");
    }
    let got = answers(&sandbox, &["--model", "q"]);
    assert_eq!(got, ["qwen"]);
}

/// The script for `shell`, as `memchat completions SHELL` prints it.
fn script(sandbox: &Sandbox, shell: &str) -> String {
    let out = sandbox.run(&["completions", shell], &[], None);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    text(&out.stdout)
}

/// `shell -c code` with the sandbox's memory directory.
fn in_shell(sandbox: &Sandbox, shell: &str, args: &[&str], code: &str) -> String {
    let out = Command::new(shell)
        .args(args)
        .arg(code)
        .current_dir(sandbox.dir.path())
        .env_clear()
        .env("PATH", std::env::var_os("PATH").unwrap_or_default())
        .env("HOME", sandbox.dir.path())
        .env("XDG_CONFIG_HOME", sandbox.dir.path().join("home/config"))
        .env("MEMCHAT_MEMORY_DIR", sandbox.memory())
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{shell}: {}{}",
        text(&out.stdout),
        text(&out.stderr)
    );
    text(&out.stdout)
}

fn installed(shell: &str) -> bool {
    std::env::var_os("PATH").is_some_and(|path| {
        std::env::split_paths(&path).any(|dir| Path::new(&dir).join(shell).is_file())
    })
}

#[test]
fn bash_completes_session_names_with_the_script() {
    if !installed("bash") {
        return skip("bash_completes_session_names_with_the_script", "no bash");
    }
    let sandbox = sandbox_with_sessions();
    let script_file = sandbox.dir.path().join("memchat.bash");
    std::fs::write(&script_file, script(&sandbox, "bash")).unwrap();
    let code = format!(
        "source {}; COMP_WORDS=(memchat show ''); COMP_CWORD=2; COMP_LINE='memchat show '; \
         COMP_POINT=${{#COMP_LINE}}; _clap_complete_memchat memchat '' show; \
         printf '%s\\n' \"${{COMPREPLY[@]}}\"",
        script_file.display()
    );
    let got: Vec<String> = in_shell(&sandbox, "bash", &["-c"], &code)
        .lines()
        .map(|l| l.trim().to_string())
        .collect();
    assert!(has(&got, "default") && has(&got, "work"), "{got:?}");
}

#[test]
fn zsh_completes_session_names_with_the_script() {
    if !installed("zsh") {
        return skip(
            "zsh_completes_session_names_with_the_script",
            "zsh is not installed (apt-get install zsh)",
        );
    }
    let sandbox = sandbox_with_sessions();
    let script_file = sandbox.dir.path().join("_memchat");
    std::fs::write(&script_file, script(&sandbox, "zsh")).unwrap();
    // Outside an interactive completion, `compdef` and `_describe` are
    // stood in for: the script's own code runs, asks memchat, and hands
    // `_describe` what it would list.
    let code = format!(
        "compdef() {{ :; }}; _describe() {{ print -rl -- \"${{(@P)${{@[3]}}}}\"; }}; \
         source {}; words=(memchat show ''); CURRENT=3; _clap_dynamic_completer_memchat",
        script_file.display()
    );
    let got: Vec<String> = in_shell(&sandbox, "zsh", &["-f", "-c"], &code)
        .lines()
        .map(|l| l.split(':').next().unwrap_or("").to_string())
        .collect();
    assert!(has(&got, "default") && has(&got, "work"), "{got:?}");
    // Nothing but memchat's own answers: no commands from PATH, no files.
    assert!(
        got.iter()
            .all(|g| ["default", "work"].contains(&g.as_str()) || g.starts_with('-')),
        "{got:?}"
    );
}

#[test]
fn fish_completes_session_names_with_the_script() {
    if !installed("fish") {
        return skip(
            "fish_completes_session_names_with_the_script",
            "fish is not installed (apt-get install fish)",
        );
    }
    let sandbox = sandbox_with_sessions();
    let script_file = sandbox.dir.path().join("memchat.fish");
    std::fs::write(&script_file, script(&sandbox, "fish")).unwrap();
    let code = format!(
        "source {}; complete -C 'memchat show '; complete -C 'memchat --color '",
        script_file.display()
    );
    let got: Vec<String> = in_shell(&sandbox, "fish", &["--no-config", "-c"], &code)
        .lines()
        .map(|l| l.split('\t').next().unwrap_or("").to_string())
        .collect();
    for word in ["default", "work", "auto", "always", "never"] {
        assert!(has(&got, word), "{word}: {got:?}");
    }
}
