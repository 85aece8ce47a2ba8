//! From the command line to a configuration: the arguments, the checks that span them,
//! saved profiles' expansion, generated completions and man page, and the exit.

pub mod args;
pub mod config;
pub mod generate;
pub mod outcome;
