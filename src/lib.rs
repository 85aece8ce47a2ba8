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
pub mod engine;
pub mod error;
pub mod fetch;
pub mod incremental;
pub mod paginate;
pub mod place;
pub mod policy;
pub mod profile;
pub mod report;
pub mod shape;
pub mod sim;
pub mod sink;

pub use crate::engine::{Summary, run};
pub use crate::error::{Error, Exit};
