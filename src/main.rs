use std::io::{ErrorKind, IsTerminal};
use std::process::ExitCode;

use clap::Parser;
use tracing::info;
use tracing_subscriber::filter::LevelFilter;

use apifetch::cli::Cli;
use apifetch::config::Config;
use apifetch::{Error, Exit};

fn main() -> ExitCode {
    let cli = Cli::parse();
    init_logging(cli.verbose, cli.quiet);
    match try_main(cli) {
        Ok(()) => Exit::Ok.into(),
        Err(Error::Output(e)) if is_broken_pipe(&e) => Exit::Ok.into(),
        Err(e) => {
            eprintln!("apifetch: error: {e}");
            e.exit().into()
        }
    }
}

fn try_main(cli: Cli) -> Result<(), Error> {
    let config = Config::try_from(cli)?;
    rustls::crypto::ring::default_provider()
        .install_default()
        .map_err(|_| Error::Usage("cannot install the TLS provider".into()))?;
    let runtime = tokio::runtime::Runtime::new()
        .map_err(|e| Error::Usage(format!("cannot start the runtime: {e}")))?;
    let summary = runtime.block_on(async {
        tokio::select! {
            result = apifetch::run(config) => result,
            _ = tokio::signal::ctrl_c() => Err(Error::Interrupted),
        }
    })?;
    info!(
        "synced {} records from {} pages in {:.1}s ({} retries) → {}",
        summary.records,
        summary.pages,
        summary.elapsed.as_secs_f64(),
        summary.retries,
        summary.destination
    );
    Ok(())
}

fn init_logging(verbose: u8, quiet: bool) {
    let level = match (quiet, verbose) {
        (true, _) => LevelFilter::ERROR,
        (false, 0) => LevelFilter::INFO,
        (false, 1) => LevelFilter::DEBUG,
        (false, _) => LevelFilter::TRACE,
    };
    tracing_subscriber::fmt()
        .with_max_level(level)
        .with_target(false)
        .with_ansi(std::io::stderr().is_terminal())
        .with_writer(std::io::stderr)
        .init();
}

fn is_broken_pipe(err: &anyhow::Error) -> bool {
    err.chain()
        .filter_map(|cause| cause.downcast_ref::<std::io::Error>())
        .any(|io| io.kind() == ErrorKind::BrokenPipe)
}
