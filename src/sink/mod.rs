//! Writing records out: the spool that holds a run's rows, the writer that encodes pages as
//! they come, the checkpoint that lets a run resume, the compression of the output, and
//! the final atomic replace.

pub mod checkpoint;
pub mod compress;
pub mod output;
pub mod rows;
pub mod spool;
pub mod stop;
pub mod writer;

pub use output::Settings;
