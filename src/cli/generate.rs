//! Shell completions and the man page, generated from the clap definition so they can
//! never disagree with `--help`.

use std::io::{self, Write};

use clap_complete::Shell;

use clap::CommandFactory;

use crate::cli::args::{Cli, Generate};
use crate::error::Exit;

/// Prints what was asked for on standard output (`| head` is not an error).
pub fn print(what: Generate) -> Exit {
    match write(what, &mut io::stdout().lock()) {
        Err(e) if e.kind() != io::ErrorKind::BrokenPipe => {
            eprintln!("apifetch: error: {e}");
            Exit::Output
        }
        _ => Exit::Ok,
    }
}

/// Writes what was asked for to `out`.
pub fn write(what: Generate, out: &mut impl Write) -> io::Result<()> {
    // The whole definition, environment variables beside their options: a man page is
    // read, not skimmed, and completions want every flag.
    let mut command = Cli::command();
    let shell = match what {
        Generate::CompletionsBash => Shell::Bash,
        Generate::CompletionsZsh => Shell::Zsh,
        Generate::CompletionsFish => Shell::Fish,
        Generate::Man => return clap_mangen::Man::new(command).render(out),
    };
    clap_complete::generate(shell, &mut command, "apifetch", out);
    Ok(())
}
