//! `application/x-www-form-urlencoded` (forms and query strings) and cookies: the little the
//! console needs, without a crate.

/// The name/value pairs of a form body or query string; `+` is a space here (HTML forms).
pub fn parse(input: &str) -> Vec<(String, String)> {
    input
        .split('&')
        .filter(|p| !p.is_empty())
        .map(|pair| {
            let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
            (decode(k), decode(v))
        })
        .collect()
}

fn decode(s: &str) -> String {
    let spaced = s.replace('+', " ");
    String::from_utf8_lossy(&crate::scep::query::percent_decode(&spaced)).into_owned()
}

/// The first value of `name`, trimmed; empty when absent.
pub fn get<'a>(pairs: &'a [(String, String)], name: &str) -> &'a str {
    pairs.iter().find(|(k, _)| k == name).map_or("", |(_, v)| v.trim())
}

/// Percent-encodes all but the unreserved characters (for values put into links).
pub fn encode(s: &str) -> String {
    s.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'.' | b'_' | b'~' => (b as char).to_string(),
            _ => format!("%{b:02X}"),
        })
        .collect()
}

/// The value of cookie `name` in a `Cookie` header.
pub fn cookie<'a>(header: &'a str, name: &str) -> Option<&'a str> {
    header
        .split(';')
        .filter_map(|c| c.trim().split_once('='))
        .find(|(k, _)| *k == name)
        .map(|(_, v)| v)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn forms_decode_plus_and_percent_and_links_round_trip() {
        let pairs = parse("name=a+b%2Bc&empty=&x");
        assert_eq!(get(&pairs, "name"), "a b+c");
        assert_eq!(get(&pairs, "empty"), "");
        assert_eq!(get(&pairs, "missing"), "");
        let odd = "dev 1/é&x=y";
        assert_eq!(get(&parse(&format!("id={}", encode(odd))), "id"), odd);
        assert_eq!(cookie("a=1; scepd_session=xyz", "scepd_session"), Some("xyz"));
        assert_eq!(cookie("a=1", "scepd_session"), None);
    }
}
