//! The `memchat` binary: parse the command line, run, map the outcome to an
//! exit code. Everything else lives in the library.

use std::process::ExitCode;

use clap::parser::ValueSource;
use memchat::cli;
use memchat::run::{self, Exit};

fn main() -> ExitCode {
    let (cli, matches) = match cli::parse() {
        Ok(parsed) => parsed,
        Err(e) => {
            let _ = e.print();
            return ExitCode::from(if e.use_stderr() { Exit::Usage as u8 } else { 0 });
        }
    };
    // Where each flag's value came from, for --print-config.
    let flag_source = |id: &str| match matches.value_source(id) {
        Some(ValueSource::CommandLine) => Some("command line".to_string()),
        Some(ValueSource::EnvVariable) => Some("environment".to_string()),
        _ => None,
    };
    // One thread is plenty for one conversation, and starts fastest.
    let runtime = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(e) => {
            eprintln!("memchat: error: cannot start the async runtime: {e}");
            return ExitCode::from(Exit::ModelFailed as u8);
        }
    };
    match runtime.block_on(run::run(cli, &flag_source)) {
        Ok(exit) => ExitCode::from(exit as u8),
        Err(e) if is_broken_pipe(&e) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("memchat: error: {e:#}");
            ExitCode::from(run::exit_for_error(&e) as u8)
        }
    }
}

/// A reader that went away (`memchat ... | head`) is not an error.
fn is_broken_pipe(error: &anyhow::Error) -> bool {
    error.chain().any(|cause| {
        cause
            .downcast_ref::<std::io::Error>()
            .is_some_and(|e| e.kind() == std::io::ErrorKind::BrokenPipe)
    })
}
