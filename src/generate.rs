//! Shell completions and the man page, generated from the clap definition so they can
//! never disagree with `--help`.

use std::io::{self, Write};

use clap::CommandFactory;
use clap_complete::Shell;

use crate::cli::{Cli, Generate};
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
