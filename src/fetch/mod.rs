//! One request at a time, with retries: the HTTP client and how a response is classified.

pub mod http;
mod settings;

pub use settings::{Auth, Proxies, Settings, Tls};
