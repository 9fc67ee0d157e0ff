//! Naive models the targets compare the codec against (habit 15a: a differential test of the
//! fast or crate-backed code against the obvious one).
//!
//! The percent-decoding and urlencoded models are the hand-written code the codec had before
//! it moved to the `percent-encoding` and `form_urlencoded` crates, so the targets also check
//! that the move changed nothing.

use rswoole_codec::http1::{ByteRange, RangeOutcome};

fn hex_val(b: u8) -> Option<u8> {
    match b {
        b'0'..=b'9' => Some(b - b'0'),
        b'a'..=b'f' => Some(b - b'a' + 10),
        b'A'..=b'F' => Some(b - b'A' + 10),
        _ => None,
    }
}

/// `%XX` decoded (an invalid or cut escape kept as is); with `plus_as_space`, `+` is a space.
pub fn percent_decode(input: &[u8], plus_as_space: bool) -> Vec<u8> {
    let mut out = Vec::with_capacity(input.len());
    let mut i = 0;
    while i < input.len() {
        let b = input[i];
        if b == b'%' && i + 2 < input.len() {
            if let (Some(h), Some(l)) = (hex_val(input[i + 1]), hex_val(input[i + 2])) {
                out.push(h << 4 | l);
                i += 3;
                continue;
            }
        }
        out.push(if plus_as_space && b == b'+' { b' ' } else { b });
        i += 1;
    }
    out
}

/// One urlencoded component as a string: `+` and `%XX` decoded, invalid UTF-8 replaced.
pub fn form_decode(input: &[u8]) -> String {
    String::from_utf8_lossy(&percent_decode(input, true)).into_owned()
}

/// `application/x-www-form-urlencoded`: `&`-separated, empty pairs skipped, split at the
/// first `=`.
pub fn parse_urlencoded(input: &[u8]) -> Vec<(String, String)> {
    input
        .split(|&b| b == b'&')
        .filter(|p| !p.is_empty())
        .map(|pair| match pair.iter().position(|&b| b == b'=') {
            Some(i) => (form_decode(&pair[..i]), form_decode(&pair[i + 1..])),
            None => (form_decode(pair), String::new()),
        })
        .collect()
}

/// `s` without leading and trailing spaces and tabs.
pub fn trim_ows(s: &[u8]) -> &[u8] {
    let is_ows = |b: &u8| *b == b' ' || *b == b'\t';
    let start = s.iter().position(|b| !is_ows(b)).unwrap_or(s.len());
    let end = s.iter().rposition(|b| !is_ows(b)).map_or(start, |e| e + 1);
    &s[start..end]
}

/// PHP's `$_COOKIE`: `;`-separated, trimmed, split at the first `=` (the name trimmed and
/// kept as sent, the value url-decoded); pairs with an empty name skipped.
pub fn parse_cookies(header: &[u8]) -> Vec<(String, String)> {
    let mut out = Vec::new();
    for pair in header.split(|&b| b == b';') {
        let pair = trim_ows(pair);
        let (name, value) = match pair.iter().position(|&b| b == b'=') {
            Some(i) => (trim_ows(&pair[..i]), trim_ows(&pair[i + 1..])),
            None => (pair, &[][..]),
        };
        if !name.is_empty() {
            out.push((
                String::from_utf8_lossy(name).into_owned(),
                form_decode(value),
            ));
        }
    }
    out
}

/// What one well-formed `bytes=first-last` range asks of `total` bytes (RFC 9110 §14.1.2):
/// `None` for an absent position.
pub fn range(first: Option<u64>, last: Option<u64>, total: u64) -> RangeOutcome {
    let sat = |start, end| RangeOutcome::Satisfiable(ByteRange { start, end, total });
    match (first, last) {
        (Some(a), Some(b)) if b < a => RangeOutcome::Ignore,
        (Some(a), _) if a >= total => RangeOutcome::Unsatisfiable,
        (Some(a), Some(b)) => sat(a, b.min(total - 1)),
        (Some(a), None) => sat(a, total - 1),
        (None, Some(0)) => RangeOutcome::Unsatisfiable,
        // Satisfiable, but there is no byte to send: the empty whole is served.
        (None, Some(_)) if total == 0 => RangeOutcome::Ignore,
        (None, Some(n)) => sat(total - n.min(total), total - 1),
        (None, None) => RangeOutcome::Ignore,
    }
}
