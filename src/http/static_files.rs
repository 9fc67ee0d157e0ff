//! Static files: `document_root` + `enable_static_handler`, and `Response::sendfile`.
//! MIME types from the extension, `ETag` / `Last-Modified` / 304, `Range` (206/416), and no
//! way out of the root: `..` segments (also percent-encoded) are refused and the resolved path
//! (symlinks followed) must stay under the canonical root.

use std::path::{Component, Path, PathBuf};
use std::time::SystemTime;

use rswoole_codec::http1::{self, RangeOutcome};

use super::response::{HttpError, Response};

/// Where a request path points under `root`, or `Err(())` for an escape attempt.
fn resolve(root: &Path, url_path: &str) -> Result<Option<PathBuf>, ()> {
    let decoded = http1::percent_decode_str(url_path);
    if decoded.contains('\0') || decoded.contains('\\') {
        return Err(());
    }
    let rel = Path::new(decoded.trim_start_matches('/'));
    for c in rel.components() {
        match c {
            Component::Normal(_) | Component::CurDir => {}
            _ => return Err(()),
        }
    }
    let Ok(root) = root.canonicalize() else {
        return Ok(None);
    };
    let mut p = root.join(rel);
    if p.is_dir() {
        p = p.join("index.html");
    }
    let Ok(real) = p.canonicalize() else {
        return Ok(None);
    };
    if !real.starts_with(&root) {
        return Err(());
    }
    Ok(real.is_file().then_some(real))
}

/// Serves the request for `method` and (percent-decoded) `path` from the document root if
/// it names a file there. Returns true if answered.
pub(crate) fn try_static(
    method: &str,
    path: &str,
    resp: &mut Response,
    root: &Path,
) -> Result<bool, HttpError> {
    if method != "GET" && method != "HEAD" {
        return Ok(false);
    }
    match resolve(root, path) {
        Err(()) => {
            resp.status(403)?;
            resp.header("content-type", "text/plain")?;
            resp.end("403 Forbidden\n")?;
            Ok(true)
        }
        Ok(None) => Ok(false),
        Ok(Some(p)) => {
            send_file(resp, &p)?;
            Ok(true)
        }
    }
}

pub(crate) fn send_file(resp: &mut Response, path: &Path) -> Result<(), HttpError> {
    let err = |source| HttpError::File {
        path: path.display().to_string(),
        source,
    };
    let meta = std::fs::metadata(path).map_err(err)?;
    let size = meta.len();
    let mtime = meta.modified().unwrap_or(SystemTime::UNIX_EPOCH);
    let secs = mtime
        .duration_since(SystemTime::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0);
    let etag = format!("\"{size:x}-{secs:x}\"");
    let (range, inm, ims) = {
        let i = resp.inner.borrow();
        (
            i.range.clone(),
            i.if_none_match.clone(),
            i.if_modified_since.clone(),
        )
    };
    if !resp.has_header("content-type") {
        let mime = mime_guess::from_path(path).first_or_octet_stream();
        let ct = if mime.type_() == "text" {
            format!("{mime}; charset=utf-8")
        } else {
            mime.to_string()
        };
        resp.header("content-type", &ct)?;
    }
    resp.header("etag", &etag)?;
    resp.header("last-modified", &httpdate::fmt_http_date(mtime))?;
    resp.header("accept-ranges", "bytes")?;
    let not_modified = match (&inm, &ims) {
        (Some(inm), _) => http1::if_none_match(inm, etag.as_bytes()),
        (None, Some(ims)) => httpdate::parse_http_date(ims)
            .map(|t| {
                secs <= t
                    .duration_since(SystemTime::UNIX_EPOCH)
                    .map(|d| d.as_secs())
                    .unwrap_or(0)
            })
            .unwrap_or(false),
        _ => false,
    };
    if not_modified {
        resp.status(304)?;
        return resp.end_raw(b"");
    }
    let whole = || std::fs::read(path).map_err(err);
    match range.map(|r| http1::parse_range(&r, size)) {
        Some(RangeOutcome::Satisfiable(r)) => {
            use std::io::{Read, Seek, SeekFrom};
            let mut f = std::fs::File::open(path).map_err(err)?;
            f.seek(SeekFrom::Start(r.start)).map_err(err)?;
            let mut buf = vec![0u8; r.len() as usize];
            f.read_exact(&mut buf).map_err(err)?;
            resp.status(206)?;
            resp.header("content-range", &r.content_range())?;
            resp.end_raw(&buf)
        }
        Some(RangeOutcome::Unsatisfiable) => {
            resp.status(416)?;
            resp.header("content-range", &http1::unsatisfied_range(size))?;
            resp.end_raw(b"")
        }
        _ => {
            let body = whole()?;
            resp.end_raw(&body)
        }
    }
}
