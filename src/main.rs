use std::process::ExitCode;
use std::time::Instant;

use apifetch::cli::{self, Outcome};
use apifetch::{Config, Error, LogFormat, Stats};

fn main() -> ExitCode {
    let started = Instant::now();
    let cli = match apifetch::expand(std::env::args_os().collect()) {
        Ok(args) => cli::parse(args),
        Err(e) => {
            let outcome = Outcome::of(Err(e), None, &[], false);
            return outcome.finish(None, &Stats::default(), started).into();
        }
    };
    if let Some(what) = cli.generate {
        return cli::generate(what).into();
    }
    let summary = cli::summary_place(&cli);
    let config = match Config::try_from(cli) {
        Ok(config) => config,
        Err(e) => {
            let outcome = Outcome::of(Err(e), None, &[], false);
            return outcome
                .finish(summary.as_ref(), &Stats::default(), started)
                .into();
        }
    };
    let logs = apifetch::init_logging(&config.logging, &config.secrets);
    let (secrets, output) = (config.secrets.clone(), config.out.clone());
    let json_logs = config.logging.format == LogFormat::Json;
    let result = fetch(config);
    logs.finish();
    let outcome = Outcome::of(result, output, &secrets, json_logs);
    outcome
        .finish(summary.as_ref(), &logs.stats, started)
        .into()
}

fn fetch(config: Config) -> Result<(), Error> {
    rustls::crypto::ring::default_provider()
        .install_default()
        .map_err(|_| Error::Usage("cannot install the TLS provider".into()))?;
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| Error::Usage(format!("cannot start the runtime: {e}")))?;
    runtime.block_on(apifetch::run(config)).map(drop)
}
