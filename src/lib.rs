//! apifetch: fetch every record of a paginated JSON API into a file, surviving the
//! failures a long unattended run meets.
//!
//! The modules are laid out as the job runs: [`cli`] reads the command line into a
//! configuration, [`engine`] runs it, requesting pages through [`fetch`] under the retry
//! and pacing rules of [`policy`], learning where the next page is with [`paginate`],
//! reading records with [`shape`], dropping those earlier runs wrote with [`incremental`]
//! and writing them with [`sink`]; [`report`] is what the user sees of it.

#![deny(clippy::undocumented_unsafe_blocks)]

pub mod cli;
mod engine;
mod error;
mod fetch;
mod incremental;
mod paginate;
mod place;
mod policy;
mod profile;
mod report;
mod shape;
pub mod sim;
mod sink;

// What the `apifetch` binary and the end-to-end tests reach; everything else is private,
// so the compiler reports what nothing uses.
pub use crate::engine::{Config, Summary, run};
pub use crate::error::{Error, Exit};
pub use crate::fetch::http::Resolver;
pub use crate::profile::expand;
pub use crate::report::logging::{LogFormat, init as init_logging};
pub use crate::report::stats::Stats;
