//! Which parts of an alert body are clickable links.
//!
//! Only `http://` and `https://` URLs with a plain host are links. Anything
//! else (`file:`, `javascript:`, `mailto:`, credentials in the authority that
//! disguise the real host) stays plain text: a popup that the whole
//! organisation sees must not be a way to run or open local things.

use std::ops::Range;

/// Byte ranges of the safe links in `text`, in order.
pub fn find_links(text: &str) -> Vec<Range<usize>> {
    let bytes = text.as_bytes();
    let mut links = Vec::new();
    let mut i = 0;
    while i < bytes.len() {
        let at_word_start = i == 0 || !bytes[i - 1].is_ascii_alphanumeric();
        let scheme_len = if starts_with_ignore_case(&bytes[i..], b"https://") {
            8
        } else if starts_with_ignore_case(&bytes[i..], b"http://") {
            7
        } else {
            0
        };
        if !at_word_start || scheme_len == 0 {
            i += 1;
            continue;
        }
        let mut end = i + scheme_len;
        while end < bytes.len() && is_url_byte(bytes[end]) {
            end += 1;
        }
        end = trim_trailing(text, i, end);
        if is_safe_url(&text[i..end]) {
            links.push(i..end);
        }
        i = end.max(i + 1);
    }
    links
}

/// Whether `url` may be opened: an http(s) URL with a non-empty host and no
/// user name or password in front of the host.
pub fn is_safe_url(url: &str) -> bool {
    let lower = url.to_ascii_lowercase();
    let rest = if let Some(rest) = lower.strip_prefix("https://") {
        rest
    } else if let Some(rest) = lower.strip_prefix("http://") {
        rest
    } else {
        return false;
    };
    if !url.bytes().all(is_url_byte) {
        return false;
    }
    let authority = rest.split(['/', '?', '#']).next().unwrap_or_default();
    if authority.contains('@') {
        return false;
    }
    let (host, port, host_ok): (&str, Option<&str>, fn(u8) -> bool) =
        if let Some(inner) = authority.strip_prefix('[') {
            let Some((host, after)) = inner.split_once(']') else {
                return false;
            };
            if !after.is_empty() && !after.starts_with(':') {
                return false;
            }
            (host, after.strip_prefix(':'), |b| {
                b.is_ascii_hexdigit() || matches!(b, b':' | b'.')
            })
        } else {
            match authority.split_once(':') {
                Some((host, port)) => (host, Some(port), is_host_byte),
                None => (authority, None, is_host_byte),
            }
        };
    let port_ok = port.is_none_or(|p| !p.is_empty() && p.bytes().all(|b| b.is_ascii_digit()));
    port_ok && !host.is_empty() && host.bytes().all(host_ok)
}

fn is_host_byte(b: u8) -> bool {
    b.is_ascii_alphanumeric() || matches!(b, b'.' | b'-')
}

fn starts_with_ignore_case(haystack: &[u8], prefix: &[u8]) -> bool {
    haystack.len() >= prefix.len() && haystack[..prefix.len()].eq_ignore_ascii_case(prefix)
}

/// Printable ASCII that may appear in a URL as people paste it. Non-ASCII
/// ends a URL, so Persian or Japanese text written straight after it stays text.
fn is_url_byte(b: u8) -> bool {
    b.is_ascii_graphic()
        && !matches!(
            b,
            b'<' | b'>' | b'"' | b'`' | b'{' | b'}' | b'|' | b'\\' | b'^'
        )
}

/// Drops sentence punctuation after a URL, and a closing bracket that has
/// no opening partner inside the URL ("(see https://x.pl/a)").
fn trim_trailing(text: &str, start: usize, mut end: usize) -> usize {
    loop {
        let url = &text[start..end];
        let Some(last) = url.bytes().last() else {
            return end;
        };
        let unbalanced = |open: u8, close: u8| {
            last == close
                && url.bytes().filter(|&b| b == open).count()
                    < url.bytes().filter(|&b| b == close).count()
        };
        if matches!(last, b'.' | b',' | b';' | b':' | b'!' | b'?' | b'\'')
            || unbalanced(b'(', b')')
            || unbalanced(b'[', b']')
        {
            end -= 1;
        } else {
            return end;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn find_links_table() {
        let cases: &[(&str, &[&str])] = &[
            ("no links here", &[]),
            (
                "see https://intranet.example/status now",
                &["https://intranet.example/status"],
            ),
            (
                "HTTP://EXAMPLE.COM/A?b=1#c.",
                &["HTTP://EXAMPLE.COM/A?b=1#c"],
            ),
            (
                "two: http://a.pl, https://b.pl/x_(y).",
                &["http://a.pl", "https://b.pl/x_(y)"],
            ),
            ("(see https://x.pl/a)", &["https://x.pl/a"]),
            ("port https://x.pl:8443/p ok", &["https://x.pl:8443/p"]),
            ("ipv6 http://[::1]:80/ ok", &["http://[::1]:80/"]),
            ("https://x.pl/راهنما", &["https://x.pl/"]),
            ("لطفا https://x.pl را ببینید", &["https://x.pl"]),
            ("詳細はhttps://x.jp/aをご覧ください", &["https://x.jp/a"]),
            // Not links:
            ("file:///etc/passwd", &[]),
            ("javascript:alert(1)", &[]),
            ("mailto:it@example.com", &[]),
            ("ftp://files.example", &[]),
            ("https://", &[]),
            ("https:///path", &[]),
            ("https://bank.example@evil.example/", &[]),
            ("xhttps://glued.example", &[]),
            ("data:text/html,<b>hi</b>", &[]),
        ];
        for (text, want) in cases {
            let got: Vec<&str> = find_links(text).into_iter().map(|r| &text[r]).collect();
            assert_eq!(got, *want, "links in {text:?}");
        }
    }

    #[test]
    fn is_safe_url_table() {
        let cases = [
            ("https://example.com", true),
            ("http://example.com/a", true),
            ("HTTPS://EXAMPLE.COM", true),
            ("https://example.com:8080", true),
            ("http://10.0.0.1/x", true),
            ("file:///etc/passwd", false),
            ("javascript:alert(1)", false),
            ("JavaScript://example.com/%0aalert(1)", false),
            ("https://user:pw@example.com", false),
            ("https://", false),
            ("https://exa mple.com", false),
            ("https://例え.jp", false),
            ("", false),
        ];
        for (url, want) in cases {
            assert_eq!(is_safe_url(url), want, "{url}");
        }
    }
}
