//! The end-to-end tests, as one binary (one link, one run) with a module per area. Each
//! starts its own servers on 127.0.0.1 and runs the built `apifetch` against them.

mod common;
mod core;
mod incremental;
mod layout;
mod network;
mod operations;
mod output;
mod pagination;
mod politeness;
mod safety;
