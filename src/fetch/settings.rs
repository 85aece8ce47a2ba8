//! How requests are made: what the command line and the environment say, in the form the
//! client is built from.

use std::time::Duration;

use reqwest::header::HeaderMap;

use crate::fetch::http;
use crate::report::redact::Secret;

/// The request flags, checked.
#[derive(Debug, Clone)]
pub struct Settings {
    pub method: reqwest::Method,
    /// The requests are GraphQL queries.
    pub graphql: bool,
    pub params: Vec<(String, String)>,
    pub headers: HeaderMap,
    pub user_agent: String,
    pub auth: Option<Auth>,
    pub timeout: Duration,
    pub connect_timeout: Duration,
    /// Send `headers` to next pages on other origins too (`--trust-next-origin`).
    pub trust_next_origin: bool,
    /// Larger response bodies are refused rather than read into memory.
    pub max_response_size: u64,
    pub tls: Tls,
    pub proxies: Proxies,
    /// Resolves host names in place of the system's resolver when set: tests answer
    /// lookups themselves, so nothing they do leaves loopback, DNS included.
    pub resolver: Option<http::Resolver>,
}

#[derive(Debug, Clone)]
pub enum Auth {
    Bearer(Secret),
    Basic { user: String, password: Secret },
}

#[derive(Debug, Clone, Default)]
pub struct Tls {
    /// Extra trusted CA certificates, PEM.
    pub cacert: Option<Vec<u8>>,
    /// Skip certificate verification (`--insecure`).
    pub insecure: bool,
}

/// Proxies from the environment, as curl reads them. Kept as secrets: proxy URLs often
/// carry a password.
#[derive(Debug, Clone, Default)]
pub struct Proxies {
    pub http: Option<Secret>,
    pub https: Option<Secret>,
    /// Hosts that bypass the proxies, in `NO_PROXY` syntax. Always includes loopback.
    pub bypass: String,
}

/// Every spelling of this machine that `NO_PROXY` matching (reqwest's, as curl's) needs
/// told apart: names match themselves and their subdomains, so `localhost.` (the fully
/// qualified form) is listed besides `localhost`; addresses match by value, so IPv4 loopback
/// mapped into IPv6 (`[::ffff:127.0.0.1]`) and the unspecified addresses (`0.0.0.0`, `::`,
/// which connect to this machine) need their own entries. The URL parser has already
/// turned `127.1` or `2130706433` into `127.0.0.1`.
const LOOPBACK: [&str; 7] = [
    "localhost",
    "localhost.",
    "127.0.0.0/8",
    "::1",
    "::ffff:127.0.0.0/104",
    "0.0.0.0",
    "::",
];

impl Proxies {
    /// Reads `HTTPS_PROXY`, `HTTP_PROXY`, `ALL_PROXY` and `NO_PROXY` (either case, upper
    /// first). Loopback is always bypassed, however it is spelled: a local API (or the
    /// demo) reached through a corporate proxy would fail or leak to it.
    pub fn from_env(var: impl Fn(&str) -> Option<String>) -> Self {
        let first = |names: &[&str]| {
            names
                .iter()
                .find_map(|n| var(n).filter(|v| !v.trim().is_empty()))
        };
        let all = first(&["ALL_PROXY", "all_proxy"]);
        let user_bypass = first(&["NO_PROXY", "no_proxy"]).unwrap_or_default();
        Proxies {
            http: first(&["HTTP_PROXY", "http_proxy"])
                .or_else(|| all.clone())
                .map(Secret::new),
            https: first(&["HTTPS_PROXY", "https_proxy"])
                .or(all)
                .map(Secret::new),
            bypass: [user_bypass.as_str()]
                .into_iter()
                .chain(LOOPBACK)
                .filter(|s| !s.is_empty())
                .collect::<Vec<_>>()
                .join(","),
        }
    }
}
