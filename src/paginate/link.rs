//! RFC 8288 `Link` headers, as GitHub, Shopify and json-server send them.
//!
//! Small on purpose: a link is `<target>` followed by `; name=value` parameters, where a
//! value may be a quoted string holding `,` or `;`. Only `rel` is read; it may carry
//! several space-separated relation types in any case (`rel="next last"`, `REL=Next`).

use reqwest::header::{HeaderMap, LINK};
use url::Url;

/// The target of the first link whose relation types include `rel`, resolved against
/// `base` (the URL that returned the header).
pub fn find(headers: &HeaderMap, rel: &str, base: &Url) -> Option<Url> {
    all(headers)
        .find(|(_, rels)| rels.iter().any(|r| r.eq_ignore_ascii_case(rel)))
        .and_then(|(target, _)| base.join(&target).ok())
}

/// Whether the response carries any link with a relation type: then a missing `next`
/// means the last page, not an API that does not use links.
pub fn any(headers: &HeaderMap) -> bool {
    all(headers).any(|(_, rels)| !rels.is_empty())
}

fn all(headers: &HeaderMap) -> impl Iterator<Item = (String, Vec<String>)> + '_ {
    headers
        .get_all(LINK)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(parse)
}

/// Every `(target, relation types)` in one header value.
fn parse(value: &str) -> Vec<(String, Vec<String>)> {
    let mut links = Vec::new();
    let mut rest = value;
    while let Some(open) = rest.find('<') {
        let Some(close) = rest[open..].find('>') else {
            break;
        };
        let target = rest[open + 1..open + close].trim().to_string();
        rest = &rest[open + close + 1..];
        let mut rels: Option<Vec<String>> = None;
        loop {
            rest = rest.trim_start();
            let Some(after) = rest.strip_prefix(';') else {
                break;
            };
            let (name, value, after) = param(after);
            rest = after;
            // Only the first `rel` counts (RFC 8288 §3.3).
            if name.eq_ignore_ascii_case("rel") && rels.is_none() {
                rels = Some(value.split_ascii_whitespace().map(str::to_string).collect());
            }
        }
        links.push((target, rels.unwrap_or_default()));
    }
    links
}

/// One `name[=value]` parameter: its name, its unquoted value and the text after it.
fn param(text: &str) -> (&str, String, &str) {
    let text = text.trim_start();
    let end = text.find(['=', ';', ',']).unwrap_or(text.len());
    let name = text[..end].trim();
    let Some(after_eq) = text[end..].strip_prefix('=') else {
        return (name, String::new(), &text[end..]);
    };
    let after_eq = after_eq.trim_start();
    if let Some(quoted) = after_eq.strip_prefix('"') {
        let mut value = String::new();
        let mut chars = quoted.char_indices();
        while let Some((i, c)) = chars.next() {
            match c {
                '\\' => value.extend(chars.next().map(|(_, c)| c)),
                '"' => return (name, value, &quoted[i + 1..]),
                c => value.push(c),
            }
        }
        return (name, value, "");
    }
    let end = after_eq.find([';', ',']).unwrap_or(after_eq.len());
    (name, after_eq[..end].trim().to_string(), &after_eq[end..])
}

#[cfg(test)]
mod tests {
    use super::*;
    use reqwest::header::HeaderValue;

    fn headers(values: &[&str]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for v in values {
            h.append(LINK, HeaderValue::from_str(v).unwrap());
        }
        h
    }

    fn base() -> Url {
        Url::parse("http://api.test/v1/items?page=1").unwrap()
    }

    #[test]
    fn github_style_links() {
        let h = headers(&[
            r#"<https://api.test/x?page=2&per_page=5>; rel="next", <https://api.test/x?page=9&per_page=5>; rel="last""#,
        ]);
        assert_eq!(
            find(&h, "next", &base()).unwrap().as_str(),
            "https://api.test/x?page=2&per_page=5"
        );
        assert_eq!(
            find(&h, "last", &base()).unwrap().as_str(),
            "https://api.test/x?page=9&per_page=5"
        );
        assert_eq!(find(&h, "prev", &base()), None);
        assert!(any(&h));
    }

    #[test]
    fn relative_targets_resolve_against_the_request() {
        let h = headers(&["</v1/items?page_info=abc>; rel=next", "<?page=3>; rel=last"]);
        assert_eq!(
            find(&h, "next", &base()).unwrap().as_str(),
            "http://api.test/v1/items?page_info=abc"
        );
        assert_eq!(
            find(&h, "last", &base()).unwrap().as_str(),
            "http://api.test/v1/items?page=3"
        );
    }

    #[test]
    fn several_rel_values_any_case_and_quoted_commas() {
        let h = headers(&[
            r#"<a?x=1>; title="one, two; three"; REL="prev first", <b?x=2>; Rel="Last NEXT"; rel=ignored"#,
        ]);
        assert_eq!(
            find(&h, "next", &base()).unwrap().as_str(),
            "http://api.test/v1/b?x=2"
        );
        assert_eq!(
            find(&h, "first", &base()).unwrap().as_str(),
            "http://api.test/v1/a?x=1"
        );
        assert_eq!(find(&h, "ignored", &base()), None);
    }

    #[test]
    fn links_without_rel_do_not_count() {
        assert!(!any(&headers(&["<a>; title=x"])));
        assert!(!any(&HeaderMap::new()));
        assert_eq!(
            find(&headers(&["garbage, <unclosed"]), "next", &base()),
            None
        );
    }
}
