//! `heraldctl`: administer a Herald server from the command line. All the
//! work happens in [`herald_console::cli`]; this only parses arguments,
//! runs the command and turns an error into `error: ...` and exit code 1.

use std::process::ExitCode;

use clap::Parser;
use herald_console::cli::{Cli, run};

#[tokio::main(flavor = "current_thread")]
async fn main() -> ExitCode {
    let cli = Cli::parse();
    match run(cli).await {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => {
            // `{:#}` prints the whole chain: "context: cause".
            eprintln!("error: {err:#}");
            ExitCode::FAILURE
        }
    }
}
