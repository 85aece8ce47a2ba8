//! Keeping secrets out of everything apifetch prints or saves.
//!
//! Log lines, error messages and checkpoint files name URLs and headers; these helpers are
//! the only way they are turned into text, so a token cannot slip through one path that
//! forgot to scrub it.

use std::fmt;

use percent_encoding::{AsciiSet, NON_ALPHANUMERIC, percent_decode_str, utf8_percent_encode};
use url::Url;

/// What a secret is shown and saved as.
pub const MASK: &str = "***";

/// Query parameters whose values are credentials (compared case-insensitively).
const SECRET_PARAMS: &[&str] = &[
    "token",
    "access_token",
    "refresh_token",
    "id_token",
    "api_key",
    "apikey",
    "api-key",
    "key",
    "secret",
    "client_secret",
    "password",
    "passwd",
    "signature",
    "sig",
    "auth",
];

/// Whether a query parameter's value is a credential.
pub fn is_secret_param(name: &str) -> bool {
    let name = name.to_ascii_lowercase();
    SECRET_PARAMS.contains(&name.as_str())
}

/// Whether a header's value is a credential.
pub fn is_secret_header(name: &str) -> bool {
    let name = name.to_ascii_lowercase();
    matches!(
        name.as_str(),
        "authorization" | "proxy-authorization" | "cookie" | "set-cookie"
    ) || name.ends_with("api-key")
        || name.ends_with("apikey")
        || name.ends_with("-token")
        || name.ends_with("-secret")
}

/// Headers as `name: value, …` on one line for `-vv`, credential values masked.
pub fn headers(headers: &reqwest::header::HeaderMap) -> String {
    headers
        .iter()
        .map(|(name, value)| {
            let value = if is_secret_header(name.as_str()) {
                MASK.into()
            } else {
                // `Location`, `Link` and the like carry URLs, whose keys are secrets too.
                secret_params_in(&String::from_utf8_lossy(value.as_bytes()))
            };
            format!("{name}: {value}")
        })
        .collect::<Vec<_>>()
        .join(", ")
}

/// Text with the value of every credential query parameter (`?access_token=…`,
/// `&sig=…`) masked, wherever URLs stand in it.
fn secret_params_in(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(at) = rest.find(['?', '&']) {
        let (before, after) = rest.split_at(at + 1);
        out.push_str(before);
        rest = after;
        let Some(eq) = rest.find('=') else { break };
        let name = &rest[..eq];
        if name.contains(|c: char| "?&<>\"' ,;".contains(c)) || !is_secret_param(name) {
            continue;
        }
        out.push_str(&rest[..=eq]);
        out.push_str(MASK);
        let end = rest[eq + 1..]
            .find(|c: char| "&#<>\"' ,;".contains(c))
            .map_or(rest.len(), |n| eq + 1 + n);
        rest = &rest[end..];
    }
    out.push_str(rest);
    out
}

/// A URL with its userinfo and credential query values masked; everything else stays as
/// written (not re-encoded), so a masked URL can have its credentials put back exactly
/// (see the checkpoint).
pub fn url(url: &Url) -> String {
    let mut shown = url.clone();
    if !shown.username().is_empty() {
        let _ = shown.set_username(MASK);
    }
    if shown.password().is_some() {
        let _ = shown.set_password(Some(MASK));
    }
    if let Some(query) = shown.query() {
        let query = rewrite_query(query, |name, value| {
            Some(if is_secret_param(name) { MASK } else { value }.to_string())
        });
        shown.set_query(query.as_deref());
    }
    shown.to_string()
}

/// A `name=value` part of a query: the name as written and decoded, the value as written.
pub fn split_segment(segment: &str) -> Option<(&str, String, &str)> {
    let (raw, value) = segment.split_once('=')?;
    let (name, _) = url::form_urlencoded::parse(raw.as_bytes()).next()?;
    Some((raw, name.into_owned(), value))
}

/// The query with each value replaced by `f(name, value)`, keeping everything else as
/// written; `None` if `f` gives up on one.
pub fn rewrite_query(query: &str, f: impl Fn(&str, &str) -> Option<String>) -> Option<String> {
    let segments = query
        .split('&')
        .map(|segment| match split_segment(segment) {
            Some((raw, name, value)) => f(&name, value).map(|value| format!("{raw}={value}")),
            None => Some(segment.to_string()),
        });
    Some(segments.collect::<Option<Vec<_>>>()?.join("&"))
}

/// A value that prints as `***` in `Debug` and `Display`, so it can be carried around in
/// config structs and logged by accident without leaking.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(String);

impl Secret {
    pub fn new(value: impl Into<String>) -> Self {
        Secret(value.into())
    }

    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(MASK)
    }
}

impl fmt::Display for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(MASK)
    }
}

/// Masks every occurrence of the given secrets in free text (an echoed response body, a
/// transport error that quotes a URL). Longer secrets go first, so a token is masked
/// whole before a shorter secret inside it could leave the rest showing. Which secrets
/// are worth masking, however short, is decided where they are collected.
pub fn scrub(text: &str, secrets: &[Secret]) -> String {
    let mut secrets: Vec<&Secret> = secrets.iter().filter(|s| !s.0.is_empty()).collect();
    secrets.sort_by_key(|s| std::cmp::Reverse(s.0.len()));
    secrets
        .into_iter()
        .fold(text.to_string(), |t, s| t.replace(s.expose(), MASK))
}

/// What percent-encoding leaves as it is in a URL component (RFC 3986's unreserved
/// characters), as `encodeURIComponent` and most servers echoing a value do.
const COMPONENT: &AsciiSet = &NON_ALPHANUMERIC
    .remove(b'-')
    .remove(b'.')
    .remove(b'_')
    .remove(b'~');

/// Every form a credential takes on its way to a server and back into what apifetch
/// prints: as it is, percent-decoded (a URL's userinfo is stored encoded but sent
/// decoded), percent-encoded as a URL component and as a form value (`+` for a space),
/// and escaped inside a JSON string (a JSON log line quotes `"` and `\`).
pub fn forms(value: &str) -> Vec<Secret> {
    let decoded = percent_decode_str(value).decode_utf8_lossy().into_owned();
    let mut forms = Vec::new();
    for text in [value.to_string(), decoded] {
        let json = serde_json::to_string(&text).expect("a string serializes");
        forms.extend([
            utf8_percent_encode(&text, COMPONENT).to_string(),
            url::form_urlencoded::byte_serialize(text.as_bytes()).collect(),
            json[1..json.len() - 1].to_string(),
            text,
        ]);
    }
    forms.sort();
    forms.dedup();
    forms.into_iter().map(Secret).collect()
}

/// The credentials in a URL's userinfo (the user's URL, a proxy's), in every form: the
/// password, or a lone user name (then the token itself), and the `Basic` header made of
/// both, which is what goes over the wire.
pub fn userinfo(url: &Url) -> Vec<Secret> {
    let decode = |text: &str| percent_decode_str(text).decode_utf8_lossy().into_owned();
    let credential = url.password().unwrap_or(url.username());
    if credential.is_empty() {
        return Vec::new();
    }
    let mut secrets = forms(credential);
    secrets.push(basic(
        &decode(url.username()),
        &decode(url.password().unwrap_or_default()),
    ));
    secrets
}

/// The `Basic` credentials of `Authorization` (or `Proxy-Authorization`) for `user` and
/// `password`, as they go over the wire: base64 of `user:password`.
pub fn basic(user: &str, password: &str) -> Secret {
    use base64::Engine;
    Secret(base64::engine::general_purpose::STANDARD.encode(format!("{user}:{password}")))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn url_masks_userinfo_and_secret_params_only() {
        let u = Url::parse("https://bob:hunter2@api.test/v1/x?page=2&api_key=abc123&Token=t0k")
            .unwrap();
        let shown = url(&u);
        assert_eq!(
            shown,
            "https://***:***@api.test/v1/x?page=2&api_key=***&Token=***"
        );
    }

    #[test]
    fn url_keeps_the_rest_of_the_query_as_written() {
        let u = Url::parse("http://h/x?after=a%20b+c&flag&api%5Fkey=k%2By&q=%2A").unwrap();
        assert_eq!(url(&u), "http://h/x?after=a%20b+c&flag&api%5Fkey=***&q=%2A");
    }

    #[test]
    fn url_without_secrets_is_unchanged() {
        let u = Url::parse("http://127.0.0.1:8080/items?page=1&per_page=100").unwrap();
        assert_eq!(url(&u), u.as_str());
    }

    #[test]
    fn urls_in_header_values_lose_their_keys() {
        assert_eq!(
            secret_params_in(
                r#"<https://a/x?page=2&access_token=SRV&sig=9>; rel="next", </y?key=k>; rel="last""#
            ),
            r#"<https://a/x?page=2&access_token=***&sig=***>; rel="next", </y?key=***>; rel="last""#
        );
        assert_eq!(secret_params_in("/items?a=b&c"), "/items?a=b&c");
        assert_eq!(secret_params_in("no url here"), "no url here");
    }

    #[test]
    fn headers_print_with_credentials_masked() {
        let mut map = reqwest::header::HeaderMap::new();
        map.insert("content-type", "application/json".parse().unwrap());
        map.insert("set-cookie", "session=abc123".parse().unwrap());
        assert_eq!(
            headers(&map),
            "content-type: application/json, set-cookie: ***"
        );
    }

    #[test]
    fn secret_headers_are_recognised() {
        for h in [
            "Authorization",
            "cookie",
            "X-Api-Key",
            "x-auth-token",
            "PRIVATE-TOKEN",
            "Set-Cookie",
        ] {
            assert!(is_secret_header(h), "{h}");
        }
        for h in ["Accept", "User-Agent", "X-Request-Id"] {
            assert!(!is_secret_header(h), "{h}");
        }
    }

    #[test]
    fn secret_never_formats_its_value() {
        let s = Secret::new("s3cr3t-value");
        assert_eq!(format!("{s} {s:?}"), "*** ***");
        assert_eq!(scrub("token s3cr3t-value here", &[s]), "token *** here");
    }

    #[test]
    fn a_secret_takes_every_form_it_is_sent_in() {
        let shown = |value: &str| {
            forms(value)
                .iter()
                .map(|s| s.expose().to_string())
                .collect::<Vec<_>>()
        };
        assert_eq!(shown("plain"), ["plain"]);
        assert_eq!(
            shown(r#"a"b\c d+e"#),
            [
                r#"a"b\c d+e"#,
                "a%22b%5Cc%20d%2Be",
                "a%22b%5Cc+d%2Be",
                r#"a\"b\\c d+e"#,
            ]
        );
        assert_eq!(shown("p%40ss"), ["p%2540ss", "p%40ss", "p@ss"]);
        assert_eq!(basic("ann", "pw").expose(), "YW5uOnB3");
    }

    #[test]
    fn short_secrets_are_masked_too_and_long_ones_whole() {
        let secrets = [Secret::new("ab"), Secret::new("xabx")];
        assert_eq!(scrub("key xabx and ab", &secrets), "key *** and ***");
    }
}
