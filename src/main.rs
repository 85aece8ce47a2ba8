use std::io::{ErrorKind, Write};
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Instant;

use clap::Parser;
use tracing::{error, info};

use apifetch::cli::{Cli, LogFormat};
use apifetch::config::Config;
use apifetch::redact::scrub;
use apifetch::stats::Stats;
use apifetch::{Error, Exit, generate, logging};

fn main() -> ExitCode {
    let started = Instant::now();
    let cli = Cli::parse();
    if let Some(what) = cli.generate {
        return match generate::write(what, &mut std::io::stdout().lock()) {
            Err(e) if e.kind() != ErrorKind::BrokenPipe => {
                eprintln!("apifetch: error: {e}");
                Exit::Output.into()
            }
            _ => Exit::Ok.into(),
        };
    }
    let summary = cli.summary_json.clone();
    let config = match Config::try_from(cli) {
        Ok(config) => config,
        Err(e) => {
            // Nothing is logged yet, and usage errors never quote a credential.
            eprintln!("apifetch: error: {e}");
            let exit = e.exit();
            let ended = End {
                exit,
                error: Some(e.to_string()),
                output: None,
            };
            return ended.summarize(summary, &Stats::default(), started).into();
        }
    };
    let installed = logging::init(&config.logging, &config.secrets);
    let secrets = config.secrets.clone();
    let json = config.logging.format == LogFormat::Json;
    let output = config.out.clone();
    let result = fetch(config);
    installed.finish();
    let ended = match result {
        Ok(()) => End::ok(output),
        Err(Error::Output(e)) if is_broken_pipe(&e) => End::ok(output),
        Err(e) => {
            let message = scrub(&e.to_string(), &secrets);
            if json {
                error!(exit_code = e.exit() as u8, "{message}");
            } else {
                eprintln!("apifetch: error: {message}");
            }
            End {
                exit: e.exit(),
                error: Some(message),
                output,
            }
        }
    };
    ended.summarize(summary, &installed.stats, started).into()
}

fn fetch(config: Config) -> Result<(), Error> {
    rustls::crypto::ring::default_provider()
        .install_default()
        .map_err(|_| Error::Usage("cannot install the TLS provider".into()))?;
    let runtime = tokio::runtime::Runtime::new()
        .map_err(|e| Error::Usage(format!("cannot start the runtime: {e}")))?;
    let summary = runtime.block_on(apifetch::run(config))?;
    info!(
        records = summary.records,
        pages = summary.pages,
        "synced {} records from {} pages in {:.1}s ({} retries) → {}",
        summary.records,
        summary.pages,
        summary.elapsed.as_secs_f64(),
        summary.retries,
        summary.destination
    );
    Ok(())
}

/// How the run ended, for the exit code and `--summary-json`.
struct End {
    exit: Exit,
    error: Option<String>,
    output: Option<PathBuf>,
}

impl End {
    fn ok(output: Option<PathBuf>) -> Self {
        End {
            exit: Exit::Ok,
            error: None,
            output,
        }
    }

    /// Writes the summary if asked; a summary that cannot be written fails a run that
    /// otherwise succeeded, since whatever reads it would be misled.
    fn summarize(self, path: Option<PathBuf>, stats: &Stats, started: Instant) -> Exit {
        let Some(path) = path else {
            return self.exit;
        };
        let written = stats.write_summary(
            &path,
            self.exit,
            self.error.as_deref(),
            started.elapsed(),
            self.output.as_deref(),
        );
        match written {
            Ok(()) => self.exit,
            Err(e) => {
                let _ = writeln!(
                    std::io::stderr(),
                    "apifetch: error: cannot write --summary-json {}: {e}",
                    path.display()
                );
                if self.exit == Exit::Ok {
                    Exit::Output
                } else {
                    self.exit
                }
            }
        }
    }
}

fn is_broken_pipe(err: &anyhow::Error) -> bool {
    err.chain()
        .filter_map(|cause| cause.downcast_ref::<std::io::Error>())
        .any(|io| io.kind() == ErrorKind::BrokenPipe)
}
