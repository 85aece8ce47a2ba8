//! From the command line to a configuration: the arguments, the checks that span them,
//! saved profiles' expansion, generated completions and man page, and the exit.

pub(crate) mod args;
pub(crate) mod config;
mod generate;
mod outcome;

pub use args::{Cli, parse};
pub use config::summary_place;
pub use generate::print as generate;
pub use outcome::Outcome;
