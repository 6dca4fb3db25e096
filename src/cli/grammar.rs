//! The one rule of the command line, applied before clap parses: options go
//! anywhere; the first other word is a command if it names one, an error if
//! it is one typo away from a name, and otherwise the start of the prompt;
//! after `--` every word is the prompt.
//!
//! clap alone cannot say this. A parent that takes a prompt stops looking
//! for commands once one of its own options is seen, so `memchat
//! --memory-dir D sessions` was sent to the model as the prompt "sessions".
//! Here the first word is found first (clap's own definitions tell which
//! options take a value, so an option's value is never mistaken for it),
//! options written before a command's name move after it, every option is
//! checked against what that command takes, and only then does clap parse.
//! An option that would do nothing where it stands is refused, never ignored.

use std::ffi::OsString;

use clap::error::ErrorKind;
use clap::parser::ValueSource;
use clap::{Arg, ArgMatches, FromArgMatches};

use super::Cli;

/// A usage error, worded like clap's own (exit status 2).
type Error = clap::Error;

/// Parses a command line (`args[0]` is the program) by the rule above.
pub fn parse_from<I, T>(args: I) -> Result<(Cli, ArgMatches), Error>
where
    I: IntoIterator<Item = T>,
    T: Into<OsString>,
{
    let mut cmd = super::command();
    cmd.build();
    let args = arrange(&cmd, args.into_iter().map(Into::into).collect())?;
    let matches = cmd.try_get_matches_from_mut(args)?;
    let mut cli = Cli::from_arg_matches(&matches)?;
    match matches.subcommand() {
        // A command's options (copies of the chat's, see `COMMAND_OPTIONS`)
        // land where the rest of the program reads options: `cli.chat`.
        Some((name, sub)) => cli.chat.take_command_options(name, sub),
        None => check_chat(&cmd, &matches, &cli)?,
    }
    cli.prompt.append(&mut cli.verbatim);
    Ok((cli, matches))
}

/// Finds the first word and acts on it: a command's name moves to the front
/// (its options follow it), a near miss is refused, a prompt stays as it is.
fn arrange(cmd: &clap::Command, mut args: Vec<OsString>) -> Result<Vec<OsString>, Error> {
    let Some(at) = first_word(cmd, &args) else {
        check_options(cmd, args.get(1..).unwrap_or_default(), cmd)?;
        return Ok(args);
    };
    let word = args[at].to_string_lossy().into_owned();
    if let Some(sub) = find_command(cmd, &word) {
        let name = args.remove(at);
        args.insert(1, name);
        check_options(sub, &args[2..], cmd)?;
        return Ok(args);
    }
    if let Some(names) = near_misses(cmd, &word) {
        let mut prompt: Vec<String> = args[1..at]
            .iter()
            .map(|a| quote(&a.to_string_lossy()))
            .collect();
        prompt.push("--".into());
        prompt.extend(args[at..].iter().map(|a| quote(&a.to_string_lossy())));
        return Err(cmd.clone().error(
            ErrorKind::InvalidSubcommand,
            format!(
                "'{word}' is not a command; did you mean {}?\n\n  \
                 tip: to send it to the model as a prompt, put the prompt after '--': \
                 memchat {}",
                names.join(" or "),
                prompt.join(" "),
            ),
        ));
    }
    check_options(cmd, &args[1..], cmd)?;
    Ok(args)
}

/// The index of the first argument that is neither an option nor an
/// option's value, before any `--`.
fn first_word(cmd: &clap::Command, args: &[OsString]) -> Option<usize> {
    let mut i = 1;
    while i < args.len() {
        let Some(token) = args[i].to_str() else {
            return Some(i);
        };
        match Token::of(token) {
            Token::EndOfOptions => return None,
            Token::Word => return Some(i),
            token => {
                if token.value_follows(cmd) {
                    i += 1;
                }
            }
        }
        i += 1;
    }
    None
}

/// One argument, as the grammar sees it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Token<'a> {
    /// `--`: what follows is the prompt (or a command's operands).
    EndOfOptions,
    /// `--name` or `--name=value`.
    Long { name: &'a str, inline_value: bool },
    /// `-abc`: one or more short options, the last may take a value.
    Shorts(&'a str),
    /// Anything else, `-` included (the prompt read from stdin).
    Word,
}

impl<'a> Token<'a> {
    fn of(arg: &'a str) -> Token<'a> {
        if arg == "--" {
            Token::EndOfOptions
        } else if let Some(long) = arg.strip_prefix("--") {
            match long.split_once('=') {
                Some((name, _)) => Token::Long {
                    name,
                    inline_value: true,
                },
                None => Token::Long {
                    name: long,
                    inline_value: false,
                },
            }
        } else if let Some(shorts) = arg.strip_prefix('-').filter(|s| !s.is_empty()) {
            Token::Shorts(shorts)
        } else {
            Token::Word
        }
    }

    /// The options this token names in `cmd`, as (spelling, definition if
    /// `cmd` has one). A short option taking a value ends the cluster.
    fn options(self, cmd: &clap::Command) -> Vec<(String, Option<&Arg>)> {
        match self {
            Token::Long { name, .. } => {
                let arg = cmd.get_arguments().find(|a| {
                    a.get_long() == Some(name)
                        || a.get_all_aliases().is_some_and(|v| v.contains(&name))
                });
                vec![(format!("--{name}"), arg)]
            }
            Token::Shorts(shorts) => {
                let mut found = Vec::new();
                for c in shorts.chars() {
                    let arg = cmd.get_arguments().find(|a| a.get_short() == Some(c));
                    found.push((format!("-{c}"), arg));
                    if arg.is_none_or(takes_value) {
                        break;
                    }
                }
                found
            }
            Token::EndOfOptions | Token::Word => Vec::new(),
        }
    }

    /// Whether the next argument is this option's value.
    fn value_follows(self, cmd: &clap::Command) -> bool {
        match self {
            Token::Long {
                inline_value: false,
                ..
            } => self
                .options(cmd)
                .first()
                .and_then(|o| o.1)
                .is_some_and(takes_value),
            Token::Shorts(shorts) => {
                let options = self.options(cmd);
                // `-s NAME` takes the next argument; `-sNAME` does not.
                options.len() == shorts.chars().count()
                    && options.last().and_then(|o| o.1).is_some_and(takes_value)
            }
            _ => false,
        }
    }
}

fn takes_value(arg: &Arg) -> bool {
    arg.get_action().takes_values()
}

/// The command named `word` (or one of its aliases).
fn find_command<'c>(cmd: &'c clap::Command, word: &str) -> Option<&'c clap::Command> {
    cmd.get_subcommands()
        .find(|s| s.get_name() == word || s.get_all_aliases().any(|a| a == word))
}

/// The commands `word` is one typo away from, or `None`.
///
/// One typo: one letter added, dropped, changed, or two neighbours swapped
/// (two typos for names of seven letters or more), keeping the first letter,
/// which people rarely get wrong. For names under four letters (`ls`, `man`)
/// only a swap counts: one edit of those makes everyday words (`many`, `may`,
/// `main`), and a prompt must not be refused for starting with one.
fn near_misses(cmd: &clap::Command, word: &str) -> Option<Vec<String>> {
    let mut best: Option<(usize, Vec<String>)> = None;
    for sub in cmd.get_subcommands().filter(|s| !s.is_hide_set()) {
        let names = std::iter::once(sub.get_name()).chain(sub.get_all_aliases());
        for name in names {
            let Some(distance) = typo_distance(word, name) else {
                continue;
            };
            let label = format!("'{}'", sub.get_name());
            match &mut best {
                Some((d, labels)) if *d == distance => {
                    if !labels.contains(&label) {
                        labels.push(label);
                    }
                }
                Some((d, _)) if *d < distance => {}
                _ => best = Some((distance, vec![label])),
            }
        }
    }
    best.map(|(_, labels)| labels)
}

/// How many typos make `name` into `word`, if that counts as a near miss.
fn typo_distance(word: &str, name: &str) -> Option<usize> {
    if word == name {
        return None;
    }
    let distance = strsim::osa_distance(word, name);
    let length = name.chars().count();
    if length < 4 {
        let mut sorted_word: Vec<char> = word.chars().collect();
        let mut sorted_name: Vec<char> = name.chars().collect();
        sorted_word.sort_unstable();
        sorted_name.sort_unstable();
        return (distance == 1 && sorted_word == sorted_name).then_some(distance);
    }
    let allowed = if length >= 7 { 2 } else { 1 };
    let same_start = word.chars().next() == name.chars().next();
    (same_start && distance <= allowed).then_some(distance)
}

/// Checks every option in `args` (up to `--`) against `cmd`, which is
/// `root` (a chat) or one of its commands. An option that `cmd` lacks but a
/// chat or another command has would do nothing here: it is refused by name.
/// Options no one knows are left to clap, which suggests the nearest
/// spelling.
fn check_options(
    cmd: &clap::Command,
    args: &[OsString],
    root: &clap::Command,
) -> Result<(), Error> {
    let mut i = 0;
    while i < args.len() {
        let Some(token) = args[i].to_str().map(Token::of) else {
            i += 1;
            continue;
        };
        if token == Token::EndOfOptions {
            break;
        }
        for (spelling, arg) in token.options(cmd) {
            if arg.is_some() {
                continue;
            }
            let in_chat = Token::of(&spelling).options(root)[0].1.is_some();
            if !std::ptr::eq(cmd, root) && (in_chat || owner_of(root, &spelling).is_some()) {
                return Err(does_nothing(cmd, &spelling));
            }
            if let Some(owner) = owner_of(root, &spelling) {
                return Err(cmd.clone().error(
                    ErrorKind::UnknownArgument,
                    format!(
                        "{spelling} is an option of 'memchat {owner}', not of a chat\n\n  \
                         tip: to put '{spelling}' in the prompt, write the prompt after '--'"
                    ),
                ));
            }
        }
        if token.value_follows(cmd) {
            i += 1;
        }
        i += 1;
    }
    Ok(())
}

/// The first command that takes the option `spelling`.
fn owner_of(cmd: &clap::Command, spelling: &str) -> Option<String> {
    cmd.get_subcommands()
        .find(|sub| {
            Token::of(spelling)
                .options(sub)
                .first()
                .is_some_and(|o| o.1.is_some())
        })
        .map(|sub| sub.get_name().to_string())
}

/// "`--mock` does nothing with 'memchat show'", with the options it takes.
fn does_nothing(sub: &clap::Command, spelling: &str) -> Error {
    let takes: Vec<String> = sub
        .get_arguments()
        .filter(|a| !a.is_hide_set() && !a.is_positional())
        .filter_map(|a| a.get_long().map(|l| format!("--{l}")))
        .filter(|l| l != "--help")
        .collect();
    let takes = if takes.is_empty() {
        "it takes no options".to_string()
    } else {
        format!("its options are {}", takes.join(", "))
    };
    let name = sub.get_name();
    sub.clone().error(
        ErrorKind::ArgumentConflict,
        format!("{spelling} does nothing with 'memchat {name}'; {takes}"),
    )
}

/// Chat options that would do nothing together, as given on the command
/// line (the environment and the config file set defaults for every mode and
/// are not second-guessed here).
fn check_chat(cmd: &clap::Command, matches: &ArgMatches, cli: &Cli) -> Result<(), Error> {
    let given = |id: &str| matches.value_source(id) == Some(ValueSource::CommandLine);
    let spelling = |id: &str| {
        cmd.get_arguments()
            .find(|a| a.get_id() == id)
            .and_then(|a| a.get_long())
            .map_or_else(|| id.to_string(), |l| format!("--{l}"))
    };
    let refuse = |message: String| Err(cmd.clone().error(ErrorKind::ArgumentConflict, message));
    let chat = &cli.chat;
    if chat.print_config {
        if !cli.prompt.is_empty() || !cli.verbatim.is_empty() {
            return refuse(
                "--print-config prints the configuration and exits; it takes no prompt".into(),
            );
        }
        if given("new") {
            return refuse("--new does nothing with --print-config".into());
        }
    }
    if chat.extract && cli.prompt.is_empty() && cli.verbatim.is_empty() {
        return refuse(
            "--extract works with a one-shot prompt (it prints the code blocks of that reply); \
             in the chat, /code shows them"
                .into(),
        );
    }
    if chat.mock {
        // The mock model makes no connection and always streams.
        for id in [
            "base_url",
            "timeout",
            "connect_timeout",
            "retries",
            "retry_base_ms",
            "no_stream",
            "temperature",
            "top_p",
        ] {
            if given(id) {
                let why = if id == "temperature" || id == "top_p" {
                    "the mock model does not sample"
                } else {
                    "the mock model makes no connection"
                };
                return refuse(format!("{} does nothing with --mock ({why})", spelling(id)));
            }
        }
    } else if given("mock_delay_ms") {
        return refuse("--mock-delay-ms does nothing without --mock".into());
    }
    Ok(())
}

/// `arg` as a shell word.
fn quote(arg: &str) -> String {
    let plain = !arg.is_empty()
        && arg
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "-_./=:,@%+".contains(c));
    if plain {
        arg.to_string()
    } else {
        format!("'{}'", arg.replace('\'', r"'\''"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cli::Command;

    fn parse(args: &[&str]) -> Result<Cli, Error> {
        parse_from(std::iter::once("memchat").chain(args.iter().copied())).map(|(cli, _)| cli)
    }

    fn error(args: &[&str]) -> String {
        parse(args).expect_err("a usage error").to_string()
    }

    #[test]
    fn options_before_a_command_are_its_options() {
        let cli = parse(&["--memory-dir", "D", "sessions"]).unwrap();
        assert!(matches!(cli.command, Some(Command::Sessions { .. })));
        assert_eq!(cli.chat.memory_dir.as_deref(), Some("D".as_ref()));
        assert!(cli.prompt.is_empty());
        let cli = parse(&["--memory-dir=D", "export", "x", "-o", "x.md"]).unwrap();
        assert!(matches!(cli.command, Some(Command::Export { .. })));
        assert_eq!(cli.chat.memory_dir.as_deref(), Some("D".as_ref()));
        let cli = parse(&["delete", "x", "--memory-dir", "D", "--yes"]).unwrap();
        assert!(matches!(
            cli.command,
            Some(Command::Delete { yes: true, .. })
        ));
        assert_eq!(cli.chat.memory_dir.as_deref(), Some("D".as_ref()));
    }

    #[test]
    fn an_option_value_is_not_the_first_word() {
        // `show` is the value of --system here, `hello` the prompt.
        let cli = parse(&["--system", "show", "hello"]).unwrap();
        assert!(cli.command.is_none());
        assert_eq!(cli.prompt, ["hello"]);
        let cli = parse(&["-s", "sessions", "hello"]).unwrap();
        assert_eq!(cli.chat.session.as_deref(), Some("sessions"));
        assert_eq!(cli.prompt, ["hello"]);
        // `-ssessions`: the value is attached; `ls` is the first word.
        let e = error(&["-ssessions", "ls"]);
        assert!(e.contains("-s does nothing with 'memchat sessions'"), "{e}");
        let cli = parse(&["-mgpt-4o", "ls"]).unwrap();
        assert!(matches!(cli.command, Some(Command::Sessions { .. })));
        assert_eq!(cli.chat.model.as_deref(), Some("gpt-4o"));
    }

    #[test]
    fn options_may_stand_between_prompt_words_and_after_them() {
        let cli = parse(&["hello", "--mock", "there"]).unwrap();
        assert!(cli.chat.mock);
        assert_eq!(cli.prompt, ["hello", "there"]);
        let cli = parse(&["what", "is", "this", "-s", "work"]).unwrap();
        assert_eq!(cli.chat.session.as_deref(), Some("work"));
        assert_eq!(cli.prompt, ["what", "is", "this"]);
    }

    #[test]
    fn after_double_dash_everything_is_the_prompt() {
        let cli = parse(&["--mock", "--", "show", "me", "--all"]).unwrap();
        assert!(cli.command.is_none());
        assert_eq!(cli.prompt, ["show", "me", "--all"]);
        let cli = parse(&["tell", "me", "--", "--yes"]).unwrap();
        assert_eq!(cli.prompt, ["tell", "me", "--yes"]);
        let cli = parse(&["--", "sesions"]).unwrap();
        assert_eq!(cli.prompt, ["sesions"]);
    }

    #[test]
    fn a_near_miss_of_a_command_is_refused_with_the_way_out() {
        let e = error(&["sesions"]);
        assert!(e.contains("did you mean 'sessions'?"), "{e}");
        assert!(e.contains("memchat -- sesions"), "{e}");
        let e = error(&["--mock", "delet", "default", "--yes"]);
        assert!(e.contains("did you mean 'delete'?"), "{e}");
        assert!(e.contains("memchat --mock -- delet default --yes"), "{e}");
        for typo in [
            "shwo", "sho", "exprot", "improt", "renmae", "repiar", "mna", "sl",
        ] {
            assert!(error(&[typo]).contains("did you mean"), "{typo}");
        }
    }

    #[test]
    fn everyday_first_words_are_prompts() {
        for word in [
            "hello",
            "how",
            "many",
            "may",
            "main",
            "is",
            "what",
            "list",
            "Show",
            "explain",
            "help",
            "important",
        ] {
            let cli = parse(&[word, "there"]).unwrap_or_else(|e| panic!("{word}: {e}"));
            assert_eq!(cli.prompt, [word, "there"]);
        }
    }

    #[test]
    fn an_option_that_does_nothing_for_a_command_is_refused_in_any_position() {
        for args in [
            &["--mock", "sessions"][..],
            &["sessions", "--mock"],
            &["-s", "x", "show", "x"],
            &["show", "x", "--all", "-s", "x"],
            &["import", "f.json", "--session", "x"],
            &["--color", "never", "man"],
            &["completions", "bash", "--memory-dir", "D"],
            &["--budget", "9000", "show", "x"],
        ] {
            let e = error(args);
            assert!(e.contains("does nothing with 'memchat "), "{args:?}: {e}");
        }
        let e = error(&["--mock", "-s", "x", "show", "x", "--all", "--json"]);
        assert!(
            e.contains(
                "--mock does nothing with 'memchat show'; its options are --all, --json, \
                 --around, --context, --memory-dir"
            ),
            "{e}"
        );
    }

    #[test]
    fn a_command_option_in_a_chat_is_refused_by_name() {
        let e = error(&["hello", "--yes"]);
        assert!(e.contains("--yes is an option of 'memchat delete'"), "{e}");
        let e = error(&["--all", "hello"]);
        assert!(e.contains("--all is an option of 'memchat show'"), "{e}");
    }

    #[test]
    fn chat_options_that_do_nothing_together_are_refused() {
        assert!(error(&["--print-config", "hello"]).contains("takes no prompt"));
        assert!(error(&["--print-config", "--new"]).contains("--new does nothing"));
        assert!(error(&["--mock", "--base-url", "http://x"]).contains("--base-url does nothing"));
        assert!(error(&["--mock", "--no-stream"]).contains("--no-stream does nothing"));
        assert!(error(&["--mock-delay-ms", "5", "hi"]).contains("without --mock"));
        parse(&["--mock", "--print-config"]).unwrap();
        parse(&["--mock", "--mock-delay-ms", "5", "hi"]).unwrap();
    }

    #[test]
    fn unknown_options_get_clap_s_suggestion() {
        let e = error(&["show", "x", "--al"]);
        assert!(e.contains("--all"), "{e}");
    }

    #[test]
    fn the_stdin_prompt_is_a_word() {
        let cli = parse(&["--mock", "-"]).unwrap();
        assert_eq!(cli.prompt, ["-"]);
    }
}
