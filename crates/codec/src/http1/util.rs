//! Pure helpers a request object needs: percent-decoding, query strings and urlencoded
//! forms, cookies and `Set-Cookie`, `Range`, `Accept-Encoding` and ETags.
//!
//! None of these allocate more than their result, and none reads a clock: an `Expires`
//! date or an ETag is formatted by the caller.
//!
//! Where a well-kept crate does the job it does it: percent-decoding and encoding are
//! `percent-encoding`, urlencoded forms are `form_urlencoded` (both from rust-url), and the
//! `Range` grammar is `http-range-header` (the parser tower-http uses). What is written here
//! is what those crates don't cover, each with its reason on the function: the `Cookie`
//! header split and `Set-Cookie` writer follow PHP (Swoole's `$request->cookie` and
//! `setcookie()`), which the `cookie` crate does not; `Accept-Encoding` and ETag lists are a
//! few lines each. All of them are fuzzed (`fuzz/fuzz_targets/http1_*.rs`).

use std::borrow::Cow;
use std::fmt::Write as _;

use percent_encoding::{AsciiSet, NON_ALPHANUMERIC};

use super::error::EncodeError;
use super::request::{list_items, trim_ows};

/// Percent-decodes `input` (`%41` → `A`); `+` stays `+`. Invalid escapes (`%zz`, a
/// trailing `%4`) are kept literally, as PHP's `rawurldecode` does.
///
/// # Examples
///
/// ```
/// use rswoole_codec::http1::percent_decode;
/// assert_eq!(&*percent_decode(b"/a%20b+c%zz"), b"/a b+c%zz");
/// ```
pub fn percent_decode(input: &[u8]) -> Cow<'_, [u8]> {
    percent_encoding::percent_decode(input).into()
}

/// Percent-decodes a path into a string; invalid UTF-8 is replaced lossily.
///
/// # Examples
///
/// ```
/// use rswoole_codec::http1::percent_decode_str;
/// assert_eq!(percent_decode_str("/caf%C3%A9"), "/café");
/// ```
pub fn percent_decode_str(input: &str) -> Cow<'_, str> {
    percent_encoding::percent_decode_str(input).decode_utf8_lossy()
}

/// Decodes one urlencoded component (`+` is a space, then `%XX`), invalid UTF-8 replaced:
/// what `form_urlencoded::parse` does to each name and value, for the `Cookie` values
/// that are not in a form.
fn form_decode(input: &[u8]) -> String {
    let plus_as_space: Cow<'_, [u8]> = if input.contains(&b'+') {
        Cow::Owned(
            input
                .iter()
                .map(|&b| if b == b'+' { b' ' } else { b })
                .collect(),
        )
    } else {
        Cow::Borrowed(input)
    };
    percent_encoding::percent_decode(&plus_as_space)
        .decode_utf8_lossy()
        .into_owned()
}

/// Parses an `application/x-www-form-urlencoded` body (or a query string) into pairs, in
/// order.
///
/// `&` separates pairs, the first `=` splits name from value (`a` alone is `("a", "")`),
/// empty pairs are skipped, `+` is a space, `%XX` is decoded, and invalid UTF-8 is replaced
/// lossily. Names are kept flat: `a[]=1` yields `("a[]", "1")`; building PHP arrays is the
/// caller's business.
///
/// # Examples
///
/// ```
/// use rswoole_codec::http1::parse_urlencoded;
/// let pairs = parse_urlencoded(b"a=1&b=x+y%21&&c&=v");
/// let pairs: Vec<(&str, &str)> = pairs.iter().map(|(n, v)| (n.as_str(), v.as_str())).collect();
/// assert_eq!(pairs, [("a", "1"), ("b", "x y!"), ("c", ""), ("", "v")]);
/// ```
pub fn parse_urlencoded(input: &[u8]) -> Vec<(String, String)> {
    form_urlencoded::parse(input)
        .map(|(name, value)| (name.into_owned(), value.into_owned()))
        .collect()
}

/// Parses a query string (without the `?`), as [`parse_urlencoded`] does.
///
/// # Examples
///
/// ```
/// use rswoole_codec::http1::parse_query;
/// assert_eq!(parse_query("q=rust+lang"), [("q".to_string(), "rust lang".to_string())]);
/// ```
pub fn parse_query(query: &str) -> Vec<(String, String)> {
    parse_urlencoded(query.as_bytes())
}

/// Parses a `Cookie` request header into `(name, value)` pairs, in order.
///
/// Pairs are split on `;` and trimmed; the name is kept as sent and the value is
/// url-decoded (`%XX` and `+`), as PHP fills `$_COOKIE`. A pair without `=` is a name with an
/// empty value; pairs with an empty name are skipped. Invalid UTF-8 is replaced lossily.
///
/// Written here rather than taken from the `cookie` crate, whose
/// `Cookie::split_parse_encoded` refuses a pair without `=`, leaves `+` as is and keeps
/// parsing attributes a request never carries, and which brings the `time` crate along.
///
/// # Examples
///
/// ```
/// use rswoole_codec::http1::parse_cookies;
/// let c = parse_cookies(b"sid=a%3Db; theme=dark ;flag");
/// assert_eq!(c[0], ("sid".into(), "a=b".into()));
/// assert_eq!(c[1], ("theme".into(), "dark".into()));
/// assert_eq!(c[2], ("flag".into(), "".into()));
/// ```
pub fn parse_cookies(header: &[u8]) -> Vec<(String, String)> {
    header
        .split(|&b| b == b';')
        .map(trim_ows)
        .filter_map(|pair| {
            let (name, value) = match memchr::memchr(b'=', pair) {
                Some(i) => (trim_ows(&pair[..i]), trim_ows(&pair[i + 1..])),
                None => (pair, &[][..]),
            };
            if name.is_empty() {
                return None;
            }
            Some((
                String::from_utf8_lossy(name).into_owned(),
                form_decode(value),
            ))
        })
        .collect()
}

/// The `SameSite` attribute of a cookie.
///
/// # Examples
///
/// ```
/// use rswoole_codec::http1::{SameSite, SetCookie};
/// let v = SetCookie::new("id", "1").secure(true).same_site(SameSite::None).encode().unwrap();
/// assert_eq!(v, "id=1; secure; SameSite=None");
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum SameSite {
    /// `SameSite=Strict`.
    Strict,
    /// `SameSite=Lax`.
    Lax,
    /// `SameSite=None` (browsers require `Secure` with it).
    None,
}

impl SameSite {
    fn as_str(self) -> &'static str {
        match self {
            SameSite::Strict => "Strict",
            SameSite::Lax => "Lax",
            SameSite::None => "None",
        }
    }
}

/// Bytes PHP forbids in cookie names (and in attributes and raw values, without `=`).
const COOKIE_FORBIDDEN: &[u8] = b",; \t\r\n\x0b\x0c";

/// The `Expires` value PHP writes when a cookie is deleted.
const DELETED_EXPIRES: &str = "Thu, 01 Jan 1970 00:00:01 GMT";

/// A `Set-Cookie` header value, encoded the way PHP's `setcookie()` writes it.
///
/// Not the `cookie` crate's `Cookie`: that writes `Path=`/`Secure` and percent-encodes
/// differently, while Swoole applications and their tests expect PHP's exact bytes.
///
/// The value is url-encoded (`urlencode`: space becomes `+`) unless [`raw`](Self::raw) is
/// set (`setrawcookie`). An empty value deletes the cookie: PHP writes
/// `name=deleted; expires=Thu, 01 Jan 1970 00:00:01 GMT; Max-Age=0`. `Expires` is a string
/// the caller formats (no clock here); `Max-Age` is written as given.
///
/// # Examples
///
/// ```
/// use rswoole_codec::http1::{SameSite, SetCookie};
///
/// let v = SetCookie::new("sid", "a b;c")
///     .expires("Wed, 21 Oct 2026 07:28:00 GMT")
///     .max_age(3600)
///     .path("/")
///     .domain("example.com")
///     .secure(true)
///     .http_only(true)
///     .same_site(SameSite::Lax)
///     .partitioned(true)
///     .encode()
///     .unwrap();
/// assert_eq!(
///     v,
///     "sid=a+b%3Bc; expires=Wed, 21 Oct 2026 07:28:00 GMT; Max-Age=3600; path=/; \
///      domain=example.com; secure; HttpOnly; SameSite=Lax; Partitioned"
/// );
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SetCookie<'a> {
    name: &'a str,
    value: &'a [u8],
    raw: bool,
    expires: Option<&'a str>,
    max_age: Option<i64>,
    path: Option<&'a str>,
    domain: Option<&'a str>,
    secure: bool,
    http_only: bool,
    same_site: Option<SameSite>,
    partitioned: bool,
}

impl<'a> SetCookie<'a> {
    /// A cookie `name=value` with no attributes.
    ///
    /// # Examples
    ///
    /// ```
    /// use rswoole_codec::http1::SetCookie;
    /// assert_eq!(SetCookie::new("lang", "fr").encode().unwrap(), "lang=fr");
    /// // An empty value deletes the cookie, as PHP does:
    /// assert_eq!(
    ///     SetCookie::new("lang", "").encode().unwrap(),
    ///     "lang=deleted; expires=Thu, 01 Jan 1970 00:00:01 GMT; Max-Age=0"
    /// );
    /// ```
    pub fn new<V: AsRef<[u8]> + ?Sized>(name: &'a str, value: &'a V) -> Self {
        SetCookie {
            name,
            value: value.as_ref(),
            raw: false,
            expires: None,
            max_age: None,
            path: None,
            domain: None,
            secure: false,
            http_only: false,
            same_site: None,
            partitioned: false,
        }
    }

    /// Writes the value as is (`setrawcookie`) instead of url-encoding it.
    ///
    /// # Examples
    ///
    /// ```
    /// use rswoole_codec::http1::SetCookie;
    /// assert_eq!(SetCookie::new("t", "a/b").encode().unwrap(), "t=a%2Fb");
    /// assert_eq!(SetCookie::new("t", "a/b").raw(true).encode().unwrap(), "t=a/b");
    /// assert!(SetCookie::new("t", "a b").raw(true).encode().is_err()); // space not allowed raw
    /// ```
    pub fn raw(mut self, raw: bool) -> Self {
        self.raw = raw;
        self
    }

    /// The `expires` attribute, preformatted by the caller (IMF-fixdate).
    ///
    /// # Examples
    ///
    /// ```
    /// use rswoole_codec::http1::SetCookie;
    /// let v = SetCookie::new("a", "1").expires("Wed, 21 Oct 2026 07:28:00 GMT").encode().unwrap();
    /// assert_eq!(v, "a=1; expires=Wed, 21 Oct 2026 07:28:00 GMT");
    /// ```
    pub fn expires(mut self, date: &'a str) -> Self {
        self.expires = Some(date);
        self
    }

    /// The `Max-Age` attribute, in seconds.
    ///
    /// # Examples
    ///
    /// ```
    /// use rswoole_codec::http1::SetCookie;
    /// assert_eq!(SetCookie::new("a", "1").max_age(60).encode().unwrap(), "a=1; Max-Age=60");
    /// ```
    pub fn max_age(mut self, seconds: i64) -> Self {
        self.max_age = Some(seconds);
        self
    }

    /// The `path` attribute.
    ///
    /// # Examples
    ///
    /// ```
    /// use rswoole_codec::http1::SetCookie;
    /// assert_eq!(SetCookie::new("a", "1").path("/app").encode().unwrap(), "a=1; path=/app");
    /// ```
    pub fn path(mut self, path: &'a str) -> Self {
        self.path = Some(path);
        self
    }

    /// The `domain` attribute.
    ///
    /// # Examples
    ///
    /// ```
    /// use rswoole_codec::http1::SetCookie;
    /// let v = SetCookie::new("a", "1").domain("example.com").encode().unwrap();
    /// assert_eq!(v, "a=1; domain=example.com");
    /// ```
    pub fn domain(mut self, domain: &'a str) -> Self {
        self.domain = Some(domain);
        self
    }

    /// The `secure` flag.
    ///
    /// # Examples
    ///
    /// ```
    /// use rswoole_codec::http1::SetCookie;
    /// assert_eq!(SetCookie::new("a", "1").secure(true).encode().unwrap(), "a=1; secure");
    /// ```
    pub fn secure(mut self, on: bool) -> Self {
        self.secure = on;
        self
    }

    /// The `HttpOnly` flag.
    ///
    /// # Examples
    ///
    /// ```
    /// use rswoole_codec::http1::SetCookie;
    /// assert_eq!(SetCookie::new("a", "1").http_only(true).encode().unwrap(), "a=1; HttpOnly");
    /// ```
    pub fn http_only(mut self, on: bool) -> Self {
        self.http_only = on;
        self
    }

    /// The `SameSite` attribute.
    ///
    /// # Examples
    ///
    /// ```
    /// use rswoole_codec::http1::{SameSite, SetCookie};
    /// let v = SetCookie::new("a", "1").same_site(SameSite::Strict).encode().unwrap();
    /// assert_eq!(v, "a=1; SameSite=Strict");
    /// ```
    pub fn same_site(mut self, same_site: SameSite) -> Self {
        self.same_site = Some(same_site);
        self
    }

    /// The `Partitioned` flag (CHIPS); requires `secure`.
    ///
    /// # Examples
    ///
    /// ```
    /// use rswoole_codec::http1::{EncodeError, SetCookie};
    /// let c = SetCookie::new("a", "1").partitioned(true);
    /// assert_eq!(c.encode(), Err(EncodeError::PartitionedWithoutSecure));
    /// assert_eq!(c.secure(true).encode().unwrap(), "a=1; secure; Partitioned");
    /// ```
    pub fn partitioned(mut self, on: bool) -> Self {
        self.partitioned = on;
        self
    }

    /// The header value (without `Set-Cookie: `).
    ///
    /// # Errors
    ///
    /// [`EncodeError::InvalidCookieName`] for an empty name or one holding
    /// `=,; \t\r\n\x0b\x0c`; [`EncodeError::InvalidCookieValue`] for a raw value holding
    /// `,; \t\r\n\x0b\x0c`; [`EncodeError::InvalidCookieAttribute`] for such bytes in
    /// `expires`, `path` or `domain`; [`EncodeError::PartitionedWithoutSecure`].
    ///
    /// # Examples
    ///
    /// ```
    /// use rswoole_codec::http1::{EncodeError, SetCookie};
    /// assert_eq!(SetCookie::new("cart", "1 item").encode()?, "cart=1+item");
    /// assert_eq!(SetCookie::new("a=b", "1").encode(), Err(EncodeError::InvalidCookieName));
    /// # Ok::<(), EncodeError>(())
    /// ```
    pub fn encode(&self) -> Result<String, EncodeError> {
        let name = self.name.as_bytes();
        if name.is_empty()
            || name
                .iter()
                .any(|b| *b == b'=' || COOKIE_FORBIDDEN.contains(b))
        {
            return Err(EncodeError::InvalidCookieName);
        }
        if self.raw && self.value.iter().any(|b| COOKIE_FORBIDDEN.contains(b)) {
            return Err(EncodeError::InvalidCookieValue);
        }
        let bad = |v: Option<&str>, forbidden: &[u8]| {
            v.is_some_and(|v| v.bytes().any(|b| forbidden.contains(&b)))
        };
        // `expires` legitimately holds spaces and a comma (IMF-fixdate).
        if bad(self.path, COOKIE_FORBIDDEN)
            || bad(self.domain, COOKIE_FORBIDDEN)
            || bad(self.expires, b";\r\n\x0b\x0c\0")
        {
            return Err(EncodeError::InvalidCookieAttribute);
        }
        if self.partitioned && !self.secure {
            return Err(EncodeError::PartitionedWithoutSecure);
        }
        let mut out = String::with_capacity(64 + self.value.len() * 3);
        out.push_str(self.name);
        out.push('=');
        if self.value.is_empty() {
            out.push_str("deleted; expires=");
            out.push_str(DELETED_EXPIRES);
            out.push_str("; Max-Age=0");
        } else {
            if self.raw {
                out.push_str(&String::from_utf8_lossy(self.value));
            } else {
                urlencode(self.value, &mut out);
            }
            if let Some(e) = self.expires {
                out.push_str("; expires=");
                out.push_str(e);
            }
            if let Some(m) = self.max_age {
                let _ = write!(out, "; Max-Age={m}");
            }
        }
        if let Some(p) = self.path {
            out.push_str("; path=");
            out.push_str(p);
        }
        if let Some(d) = self.domain {
            out.push_str("; domain=");
            out.push_str(d);
        }
        if self.secure {
            out.push_str("; secure");
        }
        if self.http_only {
            out.push_str("; HttpOnly");
        }
        if let Some(s) = self.same_site {
            out.push_str("; SameSite=");
            out.push_str(s.as_str());
        }
        if self.partitioned {
            out.push_str("; Partitioned");
        }
        Ok(out)
    }
}

/// The bytes PHP's `urlencode` escapes: all but ASCII alphanumerics and `-_.` (space is
/// escaped too, but as `+`, by [`urlencode`]).
const PHP_URLENCODE: &AsciiSet = &NON_ALPHANUMERIC.remove(b'-').remove(b'_').remove(b'.');

/// PHP's `urlencode`: alphanumerics and `-_.` kept, space as `+`, the rest as `%XX`.
/// (`form_urlencoded::byte_serialize` keeps `*` as well, which PHP escapes.)
fn urlencode(input: &[u8], out: &mut String) {
    for (i, piece) in input.split(|&b| b == b' ').enumerate() {
        if i > 0 {
            out.push('+');
        }
        out.extend(percent_encoding::percent_encode(piece, PHP_URLENCODE));
    }
}

/// One satisfiable byte range, both ends inclusive, inside a representation of known
/// length.
///
/// # Examples
///
/// ```
/// use rswoole_codec::http1::{parse_range, RangeOutcome};
/// let RangeOutcome::Satisfiable(r) = parse_range(b"bytes=0-499", 1234) else { unreachable!() };
/// assert_eq!(r.len(), 500);
/// assert_eq!(r.content_range(), "bytes 0-499/1234");
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct ByteRange {
    /// First byte offset.
    pub start: u64,
    /// Last byte offset (inclusive), `< total`.
    pub end: u64,
    /// The length of the whole representation.
    pub total: u64,
}

impl ByteRange {
    /// How many bytes the range covers.
    #[allow(clippy::len_without_is_empty)] // a satisfiable range is never empty
    pub fn len(&self) -> u64 {
        self.end - self.start + 1
    }

    /// The `Content-Range` value of a 206 response: `bytes 0-499/1234`.
    pub fn content_range(&self) -> String {
        format!("bytes {}-{}/{}", self.start, self.end, self.total)
    }
}

/// What a `Range` header asks of a representation of known length.
///
/// # Examples
///
/// Answering a `Range` request for a file of `total` bytes:
///
/// ```
/// use rswoole_codec::http1::{parse_range, unsatisfied_range, RangeOutcome};
///
/// fn status_and_content_range(range: &[u8], total: u64) -> (u16, Option<String>) {
///     match parse_range(range, total) {
///         RangeOutcome::Ignore => (200, None),
///         RangeOutcome::Satisfiable(r) => (206, Some(r.content_range())),
///         RangeOutcome::Unsatisfiable => (416, Some(unsatisfied_range(total))),
///     }
/// }
/// assert_eq!(status_and_content_range(b"bytes=10-19", 100), (206, Some("bytes 10-19/100".into())));
/// assert_eq!(status_and_content_range(b"bytes=200-", 100), (416, Some("bytes */100".into())));
/// assert_eq!(status_and_content_range(b"lines=1-2", 100), (200, None));
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum RangeOutcome {
    /// Ignore the header and serve the whole representation with 200: it is malformed,
    /// not in `bytes`, or asks for several ranges (only one is supported).
    Ignore,
    /// Serve this range with 206 and [`ByteRange::content_range`].
    Satisfiable(ByteRange),
    /// Answer 416 with `Content-Range: bytes */<total>` (see [`unsatisfied_range`]).
    Unsatisfiable,
}

/// Parses a `Range: bytes=...` header against a representation of `total` bytes.
///
/// Supports one range: `a-b` (clipped to the end), `a-` (to the end) and `-n` (the last `n`
/// bytes). A first byte at or past the end (however large), or a suffix of 0, is
/// [`RangeOutcome::Unsatisfiable`]; `b < a`, whitespace inside a range, junk, or several
/// ranges are [`RangeOutcome::Ignore`] (RFC 9110 §14.2 lets a server ignore `Range`), and so
/// is a suffix range on an empty representation (RFC 9110 §14.1.2 calls it satisfiable, but
/// there is no byte to send: the whole, empty, representation is the answer).
///
/// The grammar is the `http-range-header` crate's (RFC 9110 §14.1.2: a case-insensitive
/// `bytes=`, OWS only around list elements, no sign, a bounded number of digits); this
/// function only maps its verdict onto [`RangeOutcome`].
///
/// # Examples
///
/// ```
/// use rswoole_codec::http1::{parse_range, ByteRange, RangeOutcome};
///
/// let r = |h: &str| parse_range(h.as_bytes(), 1000);
/// assert_eq!(r("bytes=0-499"), RangeOutcome::Satisfiable(ByteRange { start: 0, end: 499, total: 1000 }));
/// assert_eq!(r("bytes=900-"), RangeOutcome::Satisfiable(ByteRange { start: 900, end: 999, total: 1000 }));
/// assert_eq!(r("bytes=-100"), RangeOutcome::Satisfiable(ByteRange { start: 900, end: 999, total: 1000 }));
/// assert_eq!(r("bytes=1000-"), RangeOutcome::Unsatisfiable);
/// assert_eq!(r("bytes=0-1,5-6"), RangeOutcome::Ignore);
/// ```
pub fn parse_range(header: &[u8], total: u64) -> RangeOutcome {
    use http_range_header::{parse_range_header_with_max_ranges, RangeUnsatisfiableError};
    const ONE: std::num::NonZeroUsize = std::num::NonZeroUsize::MIN;
    let Ok(h) = std::str::from_utf8(trim_ows(header)) else {
        return RangeOutcome::Ignore;
    };
    // One range at most: a second one is `Rejected(TooMany)`, which is ignored like junk.
    let Ok(ranges) = parse_range_header_with_max_ranges(h, ONE) else {
        return RangeOutcome::Ignore;
    };
    match ranges.validate(total).as_deref() {
        Ok([r]) => RangeOutcome::Satisfiable(ByteRange {
            start: *r.start(),
            end: *r.end(),
            total,
        }),
        Err(RangeUnsatisfiableError::Unsatisfiable) => RangeOutcome::Unsatisfiable,
        // Nothing to send (a suffix of an empty representation), or rejected.
        Ok(_) | Err(_) => RangeOutcome::Ignore,
    }
}

/// The `Content-Range` value of a 416 response: `bytes */<total>`.
///
/// # Examples
///
/// ```
/// assert_eq!(rswoole_codec::http1::unsatisfied_range(1234), "bytes */1234");
/// ```
pub fn unsatisfied_range(total: u64) -> String {
    format!("bytes */{total}")
}

/// Whether an `Accept-Encoding` header accepts `coding` (case-insensitive): an explicit
/// entry with `q` > 0, or else `*` with `q` > 0. `x-gzip` counts as `gzip`.
///
/// # Examples
///
/// ```
/// use rswoole_codec::http1::accepts_encoding;
/// assert!(accepts_encoding(b"br, gzip;q=0.5", "gzip"));
/// assert!(!accepts_encoding(b"gzip;q=0, *", "gzip"));
/// assert!(accepts_encoding(b"*", "br"));
/// ```
pub fn accepts_encoding(header: &[u8], coding: &str) -> bool {
    let coding = coding.as_bytes();
    let mut star = None;
    for item in list_items(header) {
        let mut parts = item.split(|&b| b == b';');
        let name = trim_ows(parts.next().unwrap_or_default());
        let q_zero = parts.any(|p| {
            let p = trim_ows(p);
            p.len() >= 2 && p[..2].eq_ignore_ascii_case(b"q=") && is_q_zero(trim_ows(&p[2..]))
        });
        let is_coding = name.eq_ignore_ascii_case(coding)
            || (coding.eq_ignore_ascii_case(b"gzip") && name.eq_ignore_ascii_case(b"x-gzip"));
        if is_coding {
            return !q_zero;
        }
        if name == b"*" {
            star = Some(!q_zero);
        }
    }
    star.unwrap_or(false)
}

/// Whether an `Accept-Encoding` header accepts gzip (see [`accepts_encoding`]).
///
/// # Examples
///
/// ```
/// assert!(rswoole_codec::http1::accepts_gzip(b"gzip, deflate, br"));
/// assert!(!rswoole_codec::http1::accepts_gzip(b"identity"));
/// ```
pub fn accepts_gzip(header: &[u8]) -> bool {
    accepts_encoding(header, "gzip")
}

/// `qvalue` zero: `0`, `0.`, `0.0`, `0.00`, `0.000`.
fn is_q_zero(q: &[u8]) -> bool {
    match q {
        [b'0'] => true,
        [b'0', b'.', rest @ ..] => rest.len() <= 3 && rest.iter().all(|&b| b == b'0'),
        _ => false,
    }
}

/// The entity-tags of an `If-None-Match` / `If-Match` list; `None` for `*`. Parsing stops at
/// the first malformed element.
fn entity_tags(header: &[u8]) -> Option<Vec<(bool, &[u8])>> {
    let mut tags = Vec::new();
    let mut rest = header;
    loop {
        rest = trim_start(rest, |b| b == b' ' || b == b'\t' || b == b',');
        if rest.is_empty() {
            return Some(tags);
        }
        if rest[0] == b'*' {
            return None;
        }
        let weak = rest.starts_with(b"W/");
        if weak {
            rest = &rest[2..];
        }
        if rest.first() != Some(&b'"') {
            return Some(tags);
        }
        let Some(close) = memchr::memchr(b'"', &rest[1..]) else {
            return Some(tags);
        };
        tags.push((weak, &rest[..close + 2]));
        rest = &rest[close + 2..];
    }
}

fn trim_start(s: &[u8], f: impl Fn(u8) -> bool) -> &[u8] {
    let i = s.iter().position(|&b| !f(b)).unwrap_or(s.len());
    &s[i..]
}

/// Splits `W/"x"` into (weak, `"x"`).
fn split_weak(etag: &[u8]) -> (bool, &[u8]) {
    let etag = trim_ows(etag);
    match etag.strip_prefix(b"W/") {
        Some(t) => (true, t),
        None => (false, etag),
    }
}

/// Whether `If-None-Match` matches the current `etag` (then answer 304 to GET/HEAD), by
/// the weak comparison of RFC 9110 §13.1.2: `W/` prefixes are ignored; `*` matches any.
///
/// `etag` is the full entity-tag as sent in `ETag`, quotes included: `"v1"` or `W/"v1"`.
///
/// # Examples
///
/// ```
/// use rswoole_codec::http1::if_none_match;
/// assert!(if_none_match(br#"W/"a", "b""#, br#""a""#));
/// assert!(if_none_match(b"*", br#""x""#));
/// assert!(!if_none_match(br#""a""#, br#""b""#));
/// ```
pub fn if_none_match(header: &[u8], etag: &[u8]) -> bool {
    let (_, tag) = split_weak(etag);
    match entity_tags(header) {
        None => true,
        Some(tags) => tags.iter().any(|&(_, t)| t == tag),
    }
}

/// Whether `If-Match` matches the current `etag`, by the strong comparison of RFC 9110
/// §13.1.1: both tags must be strong and equal; `*` matches any. When it doesn't, answer
/// 412.
///
/// # Examples
///
/// ```
/// use rswoole_codec::http1::if_match;
/// assert!(if_match(br#""a", "b""#, br#""b""#));
/// assert!(!if_match(br#"W/"a""#, br#""a""#));
/// ```
pub fn if_match(header: &[u8], etag: &[u8]) -> bool {
    let (weak, tag) = split_weak(etag);
    match entity_tags(header) {
        None => true,
        Some(tags) => !weak && tags.iter().any(|&(w, t)| !w && t == tag),
    }
}
