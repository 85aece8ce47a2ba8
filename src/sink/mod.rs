//! Writing records out: the spool that holds a run's rows, the writer that encodes pages as
//! they come, the checkpoint that lets a run resume, and the final atomic replace.

pub mod checkpoint;
pub mod output;
pub mod rows;
pub mod spool;
pub mod writer;

pub use output::Settings;
