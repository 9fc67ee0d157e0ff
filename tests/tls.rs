//! TLS on the listeners (issue 14): TCP+TLS with framing, https (curl, httpx), wss (Python
//! `websockets`), mixed plain and TLS listeners, bad input, mTLS with the peer's identity,
//! `rswoole reload-certs`, and kill -9 of a worker under TLS connections. Certificates are
//! made here with rcgen (a CA, a server and a client certificate).

use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering::Relaxed};
use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::util::*;

const T: Duration = Duration::from_secs(20);

/// A CA, a server certificate for `localhost`/`127.0.0.1` and a client certificate, as PEM
/// files in a temporary directory.
pub(crate) struct Pki {
    dir: tempfile::TempDir,
    ca_params: rcgen::CertificateParams,
    ca_key: rcgen::KeyPair,
    pub(crate) ca: PathBuf,
    pub(crate) cert: PathBuf,
    pub(crate) key: PathBuf,
    client_cert: PathBuf,
    client_key: PathBuf,
}

impl Pki {
    pub(crate) fn new() -> Pki {
        let dir = tempfile::tempdir().expect("tmp");
        let ca_key = rcgen::KeyPair::generate().expect("key");
        let mut ca_params = rcgen::CertificateParams::new(Vec::<String>::new()).expect("ca");
        ca_params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
        ca_params
            .distinguished_name
            .push(rcgen::DnType::CommonName, "rswoole test CA");
        let ca_cert = ca_params.self_signed(&ca_key).expect("ca cert");
        let p = Pki {
            ca: dir.path().join("ca.pem"),
            cert: dir.path().join("cert.pem"),
            key: dir.path().join("key.pem"),
            client_cert: dir.path().join("client.pem"),
            client_key: dir.path().join("client-key.pem"),
            dir,
            ca_params,
            ca_key,
        };
        std::fs::write(&p.ca, ca_cert.pem()).unwrap();
        let (c, k) = p.issue("server", None);
        std::fs::write(&p.cert, c).unwrap();
        std::fs::write(&p.key, k).unwrap();
        let (c, k) = p.issue("client", None);
        std::fs::write(&p.client_cert, c).unwrap();
        std::fs::write(&p.client_key, k).unwrap();
        p
    }

    /// A certificate (PEM) and its key (PEM) signed by the CA, with common name `cn`, for
    /// `localhost` and `127.0.0.1`; `validity`: (not before, not after) years.
    fn issue(&self, cn: &str, validity: Option<(i32, i32)>) -> (String, String) {
        let key = rcgen::KeyPair::generate().expect("key");
        let mut params =
            rcgen::CertificateParams::new(vec!["localhost".to_string(), "127.0.0.1".to_string()])
                .expect("params");
        params
            .distinguished_name
            .push(rcgen::DnType::CommonName, cn);
        if let Some((from, until)) = validity {
            params.not_before = rcgen::date_time_ymd(from, 1, 1);
            params.not_after = rcgen::date_time_ymd(until, 1, 1);
        }
        let issuer = rcgen::Issuer::from_params(&self.ca_params, &self.ca_key);
        let cert = params.signed_by(&key, &issuer).expect("sign");
        (cert.pem(), key.serialize_pem())
    }

    pub(crate) fn s(p: &Path) -> &str {
        p.to_str().expect("utf-8 path")
    }

    /// `--cert F --key F`.
    pub(crate) fn args(&self) -> Vec<String> {
        vec![
            "--cert".into(),
            Pki::s(&self.cert).into(),
            "--key".into(),
            Pki::s(&self.key).into(),
        ]
    }
}

/// The DER of the first certificate in a PEM file.
fn der_of(pem_file: &Path) -> Vec<u8> {
    use rustls_pki_types::pem::PemObject;
    rustls_pki_types::CertificateDer::from_pem_file(pem_file)
        .expect("pem")
        .to_vec()
}

fn sha256_hex(der: &[u8]) -> String {
    ring::digest::digest(&ring::digest::SHA256, der)
        .as_ref()
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

type Tls = rustls::StreamOwned<rustls::ClientConnection, TcpStream>;

/// A TLS client to 127.0.0.1:`port` trusting `ca`, as `localhost`; with `client` (cert, key)
/// it presents that certificate. The handshake is done when this returns.
#[allow(deprecated)]
fn tls_connect(port: u16, ca: &Path, client: Option<(&Path, &Path)>) -> Tls {
    use rustls_pki_types::pem::PemObject;
    let mut roots = rustls::RootCertStore::empty();
    for c in rustls_pki_types::CertificateDer::pem_file_iter(ca).expect("ca") {
        roots.add(c.expect("ca cert")).expect("add ca");
    }
    let b = rustls::ClientConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .expect("versions")
    .with_root_certificates(roots);
    let cfg = match client {
        None => b.with_no_client_auth(),
        Some((c, k)) => {
            let chain = rustls_pki_types::CertificateDer::pem_file_iter(c)
                .expect("client cert")
                .collect::<Result<Vec<_>, _>>()
                .expect("client cert");
            let key = rustls_pki_types::PrivateKeyDer::from_pem_file(k).expect("client key");
            b.with_client_auth_cert(chain, key).expect("client auth")
        }
    };
    let conn = rustls::ClientConnection::new(Arc::new(cfg), "localhost".try_into().expect("name"))
        .expect("client");
    let sock = connect(port);
    let mut s = rustls::StreamOwned::new(conn, sock);
    while s.conn.is_handshaking() {
        s.conn.complete_io(&mut s.sock).expect("TLS handshake");
    }
    s
}

/// Reads up to and including `\n`.
fn tls_line(s: &mut Tls) -> String {
    let mut out = Vec::new();
    let mut b = [0u8; 1];
    while s.read(&mut b).expect("TLS read") == 1 {
        out.push(b[0]);
        if b[0] == b'\n' {
            break;
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// The leaf certificate the server presented on `s`.
fn served(s: &Tls) -> Vec<u8> {
    s.conn.peer_certificates().expect("server certificates")[0].to_vec()
}

fn testkit(pki: &Pki, mode: &str, extra: &[&str]) -> ServerProc {
    let mut args: Vec<String> = vec![
        "--addr".into(),
        "127.0.0.1:0".into(),
        "--mode".into(),
        mode.into(),
        "--worker-num".into(),
        "2".into(),
    ];
    args.extend(pki.args());
    args.extend(extra.iter().map(|s| s.to_string()));
    let refs: Vec<&str> = args.iter().map(String::as_str).collect();
    ServerProc::start("testkit", &refs, 0)
}

fn example(pki: &Pki, name: &str, mode: &str, extra: &[&str]) -> ServerProc {
    let mut args: Vec<String> = vec![
        "--host".into(),
        "127.0.0.1".into(),
        "--port".into(),
        "0".into(),
        "--mode".into(),
        mode.into(),
        "--worker-num".into(),
        "2".into(),
    ];
    args.extend(pki.args());
    args.extend(extra.iter().map(|s| s.to_string()));
    let refs: Vec<&str> = args.iter().map(String::as_str).collect();
    ServerProc::start(name, &refs, 0)
}

/// TCP+TLS with EOF framing in both modes, next to a plain listener on the same server: a
/// framed echo over TLS (several messages in one record, one message split over records, a
/// 1 MiB message), `connection_info` says TLS on one listener and plain on the other.
#[test]
fn tls_tcp_framed_echo_and_mixed_listeners_both_modes() {
    let pki = Pki::new();
    for mode in ["process", "base"] {
        let srv = testkit(
            &pki,
            mode,
            &[
                "--framing",
                "eof",
                "--package-max-length",
                "4000000",
                "--listen",
                "tcp:127.0.0.1:0",
            ],
        );
        let (tls_port, plain_port) = (srv.addrs[0].port(), srv.addrs[1].port());
        let mut c = tls_connect(tls_port, &pki.ca, None);
        c.write_all(b"one\r\ntwo\r\nthr").unwrap();
        c.flush().unwrap();
        c.write_all(b"ee\r\n").unwrap();
        for want in ["one", "two", "three"] {
            let l = tls_line(&mut c);
            assert!(
                l.starts_with('w') && l.ends_with(&format!(":{want}\r\n")),
                "{mode}: {l:?}"
            );
        }
        let big = "x".repeat(1 << 20);
        c.write_all(format!("{big}\r\n").as_bytes()).unwrap();
        let l = tls_line(&mut c);
        assert_eq!(l.len(), (1 << 20) + 5, "{mode}: 1 MiB echo");
        c.write_all(b"info\r\n").unwrap();
        let l = tls_line(&mut c);
        assert!(
            l.contains("listener=0") && l.contains("tls=true peer=none"),
            "{mode}: {l}"
        );
        // The plain listener of the same server speaks plain TCP.
        let mut p = connect(plain_port);
        p.write_all(b"info\r\n").unwrap();
        let l = read_line(&mut p);
        assert!(
            l.contains("listener=1") && l.contains("tls=false"),
            "{mode}: {l}"
        );
        p.write_all(b"hi\r\n").unwrap();
        assert!(read_line(&mut p).ends_with(":hi\r\n"));
        // Closing with close_notify: the server's on_close runs once.
        c.conn.send_close_notify();
        c.flush().unwrap();
        drop(c);
        srv.wait_stdout("close ", 1, T);
    }
}

/// https through curl (`--cacert`, keep-alive over several URLs) and httpx, in both modes.
#[test]
fn tls_https_curl_and_httpx_both_modes() {
    let pki = Pki::new();
    for mode in ["process", "base"] {
        let srv = example(&pki, "http_hello", mode, &[]);
        let port = srv.port;
        let url = format!("https://localhost:{port}");
        let out = Command::new("curl")
            .args([
                "-sS",
                "--cacert",
                Pki::s(&pki.ca),
                "--resolve",
                &format!("localhost:{port}:127.0.0.1"),
                &format!("{url}/a"),
                &format!("{url}/b"),
                &format!("{url}/c"),
            ])
            .output()
            .expect("curl");
        assert!(
            out.status.success(),
            "{mode}: curl: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        assert_eq!(
            String::from_utf8_lossy(&out.stdout),
            "Hello World".repeat(3),
            "{mode}"
        );
        // Without the CA curl refuses the server: the certificate is the one given.
        let out = Command::new("curl")
            .args(["-sS", &format!("https://127.0.0.1:{port}/")])
            .output()
            .unwrap();
        assert!(!out.status.success(), "{mode}: curl trusted an unknown CA");
        let py = format!(
            "import httpx\nwith httpx.Client(verify='{ca}') as c:\n  for i in range(5):\n    r = c.get('https://localhost:{port}/x')\n    assert r.status_code == 200 and r.text == 'Hello World', r\n  print(r.http_version, 'ok')\n",
            ca = Pki::s(&pki.ca)
        );
        assert_eq!(run_py(&py), "HTTP/1.1 ok\n", "{mode}");
    }
}

/// wss: Python `websockets` over TLS to ws_echo, in both modes.
#[test]
fn tls_wss_python_websockets_both_modes() {
    let pki = Pki::new();
    for mode in ["process", "base"] {
        let srv = example(&pki, "ws_echo", mode, &[]);
        let py = format!(
            "import asyncio, ssl, websockets\nasync def main():\n  ctx = ssl.create_default_context(cafile='{ca}')\n  async with websockets.connect('wss://localhost:{port}/', ssl=ctx) as ws:\n    for m in ['hello', 'x' * 100000]:\n      await ws.send(m)\n      r = await ws.recv()\n      assert r == m, len(r)\n    await ws.send(b'\\x00\\x01')\n    assert await ws.recv() == b'\\x00\\x01'\n  print('ok')\nasyncio.run(main())\n",
            ca = Pki::s(&pki.ca),
            port = srv.port
        );
        assert_eq!(run_py(&py), "ok\n", "{mode}");
    }
}

/// Reads until EOF or an error; returns what came (bounded by the socket's read timeout).
fn read_to_close(s: &mut TcpStream, limit: Duration) -> (Vec<u8>, Duration) {
    let t0 = Instant::now();
    s.set_read_timeout(Some(limit)).unwrap();
    let mut out = Vec::new();
    let mut buf = [0u8; 4096];
    loop {
        match s.read(&mut buf) {
            Ok(0) | Err(_) => return (out, t0.elapsed()),
            Ok(n) => out.extend_from_slice(&buf[..n]),
        }
    }
}

/// Bad input on a TLS port, each answered with a clean close while the server goes on
/// serving others and no worker is disturbed: plain HTTP, garbage bytes, a client that
/// never finishes its handshake (cut by the handshake timeout), a client that leaves in the
/// middle of its handshake, and (mTLS required) a client without a certificate.
#[test]
fn tls_bad_input_closes_cleanly_and_the_rest_is_served() {
    let pki = Pki::new();
    for mode in ["process", "base"] {
        let srv = testkit(
            &pki,
            mode,
            &["--handshake-timeout-ms", "600", "--framing", "eof"],
        );
        let port = srv.port;
        let workers = srv.wait_titles("rswoole: worker", 2, T);
        // A TLS client that stays connected through all of it.
        let mut good = tls_connect(port, &pki.ca, None);
        let check = |good: &mut Tls, what: &str| {
            good.write_all(format!("{what}\r\n").as_bytes()).unwrap();
            let l = tls_line(good);
            assert!(
                l.ends_with(&format!(":{what}\r\n")),
                "{mode}: after {what}: {l:?}"
            );
            let mut fresh = tls_connect(port, &pki.ca, None);
            fresh.write_all(b"fresh\r\n").unwrap();
            assert!(tls_line(&mut fresh).ends_with(":fresh\r\n"));
        };
        // Plain HTTP: closed (with a TLS alert at most), not answered in HTTP.
        let mut s = connect(port);
        s.write_all(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n").unwrap();
        let (got, _) = read_to_close(&mut s, T);
        assert!(!got.starts_with(b"HTTP/"), "{mode}: answered plain HTTP");
        assert!(got.len() < 64, "{mode}: {got:?}");
        check(&mut good, "after-http");
        // Garbage that looks like nothing.
        let mut s = connect(port);
        s.write_all(&[0x16, 0x03, 0x01, 0xff, 0xff, 1, 2, 3])
            .unwrap();
        s.write_all(&vec![0xAB; 70000]).unwrap_or(());
        let (got, _) = read_to_close(&mut s, T);
        assert!(got.len() < 64, "{mode}: {got:?}");
        check(&mut good, "after-garbage");
        // A handshake that never starts: cut by the 600 ms handshake timeout.
        let mut s = connect(port);
        let (got, took) = read_to_close(&mut s, T);
        assert!(got.is_empty(), "{mode}: {got:?}");
        assert!(
            took >= Duration::from_millis(500) && took < Duration::from_secs(10),
            "{mode}: stalled handshake closed after {took:?}"
        );
        // A ClientHello and nothing more: cut by the timeout too.
        let mut s = connect(port);
        let hello = client_hello_bytes();
        s.write_all(&hello).unwrap();
        let (_, took) = read_to_close(&mut s, T);
        assert!(took < Duration::from_secs(10), "{mode}: {took:?}");
        // A client that leaves in the middle of its handshake.
        let mut s = connect(port);
        s.write_all(&hello[..hello.len() / 2]).unwrap();
        drop(s);
        check(&mut good, "after-stalls");
        // None of these reached the application: no connect line for them (the two good
        // clients of each `check` and the long-lived one: 1 + 3).
        let out = srv.stdout();
        assert_eq!(out.matches("connect ").count(), 4, "{mode}:\n{out}");
        assert_eq!(
            srv.with_title("rswoole: worker"),
            workers,
            "{mode}: workers changed"
        );
        assert!(!srv.stderr().contains("panicked"), "{}", srv.stderr());
    }
    // mTLS required: a client without a certificate fails its handshake (openssl s_client).
    let ca = pki.ca.to_str().unwrap().to_string();
    let srv = testkit(&pki, "process", &["--client-ca", &ca, "--framing", "eof"]);
    // stdin stays open: s_client sends a line and waits for the server's answer, which is
    // TLS 1.3's "certificate required" alert (sent once the client's Finished arrives).
    let mut child = Command::new("openssl")
        .args([
            "s_client",
            "-connect",
            &format!("127.0.0.1:{}", srv.port),
            "-CAfile",
            &ca,
        ])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("openssl");
    let mut stdin = child.stdin.take().expect("stdin");
    stdin.write_all(b"x\r\n").unwrap();
    let deadline = Instant::now() + T;
    let status = loop {
        if let Some(st) = child.try_wait().unwrap() {
            break st;
        }
        assert!(
            Instant::now() < deadline,
            "s_client without a certificate was not refused"
        );
        std::thread::sleep(Duration::from_millis(20));
    };
    drop(stdin);
    let mut text = String::new();
    child
        .stderr
        .take()
        .unwrap()
        .read_to_string(&mut text)
        .unwrap();
    child
        .stdout
        .take()
        .unwrap()
        .read_to_string(&mut text)
        .unwrap();
    assert!(!status.success(), "{text}");
    assert!(text.contains("certificate required"), "{text}");
    assert!(
        !text.contains(":x\r"),
        "answered without a certificate: {text}"
    );
    let mut with = tls_connect(srv.port, &pki.ca, Some((&pki.client_cert, &pki.client_key)));
    with.write_all(b"x\r\n").unwrap();
    assert!(tls_line(&mut with).ends_with(":x\r\n"));
    assert_eq!(srv.stdout().matches("connect ").count(), 1);
}

/// The first bytes a TLS client sends (its ClientHello), from a rustls client.
#[allow(deprecated)]
fn client_hello_bytes() -> Vec<u8> {
    let cfg = rustls::ClientConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .unwrap()
    .with_root_certificates(rustls::RootCertStore::empty())
    .with_no_client_auth();
    let mut c =
        rustls::ClientConnection::new(Arc::new(cfg), "localhost".try_into().unwrap()).unwrap();
    let mut out = Vec::new();
    c.write_tls(&mut out).unwrap();
    out
}

/// mTLS: the verified client certificate's SHA-256 is in `connection_info` (TCP) and in the
/// HTTP request (`/tls` of http_kit, through curl `--cert`), in both modes; with
/// `--client-cert-optional` a client without one gets in, with no peer.
#[test]
fn tls_mtls_peer_identity_both_modes() {
    let pki = Pki::new();
    let ca = Pki::s(&pki.ca).to_string();
    let want = sha256_hex(&der_of(&pki.client_cert));
    for mode in ["process", "base"] {
        let srv = testkit(&pki, mode, &["--client-ca", &ca, "--framing", "eof"]);
        let mut c = tls_connect(srv.port, &pki.ca, Some((&pki.client_cert, &pki.client_key)));
        c.write_all(b"info\r\n").unwrap();
        let l = tls_line(&mut c);
        assert!(l.contains(&format!("tls=true peer={want}")), "{mode}: {l}");

        let mut args: Vec<String> = vec![
            "--addr".into(),
            "127.0.0.1:0".into(),
            "--mode".into(),
            mode.into(),
            "--client-ca".into(),
            ca.clone(),
            "--client-cert-optional".into(),
        ];
        args.extend(pki.args());
        let refs: Vec<&str> = args.iter().map(String::as_str).collect();
        let http = ServerProc::start("http_kit", &refs, 0);
        let port = http.port;
        let curl = |cert: bool| {
            let mut a = vec![
                "-sS".to_string(),
                "--cacert".into(),
                ca.clone(),
                "--resolve".into(),
                format!("localhost:{port}:127.0.0.1"),
            ];
            if cert {
                a.extend([
                    "--cert".into(),
                    Pki::s(&pki.client_cert).into(),
                    "--key".into(),
                    Pki::s(&pki.client_key).into(),
                ]);
            }
            a.push(format!("https://localhost:{port}/tls"));
            let o = Command::new("curl").args(&a).output().expect("curl");
            assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
            String::from_utf8_lossy(&o.stdout).into_owned()
        };
        assert_eq!(curl(true), format!("tls=true peer={want}"), "{mode}");
        assert_eq!(curl(false), "tls=true peer=none", "{mode}");
    }
}

/// The leaf certificate `openssl s_client` is served on `port`, as DER.
fn s_client_leaf(port: u16) -> Vec<u8> {
    use rustls_pki_types::pem::PemObject;
    let out = Command::new("openssl")
        .args(["s_client", "-connect", &format!("127.0.0.1:{port}")])
        .stdin(std::process::Stdio::null())
        .output()
        .expect("openssl");
    let text = String::from_utf8_lossy(&out.stdout);
    rustls_pki_types::CertificateDer::from_pem_slice(text.as_bytes())
        .unwrap_or_else(|e| panic!("no certificate in s_client's output ({e}):\n{text}"))
        .to_vec()
}

/// `rswoole reload-certs`: new handshakes get the new certificate at once (openssl
/// s_client), connections opened before keep working, a bad key or an expired certificate
/// is refused with the reason and a non-zero exit while the served certificate stays, and
/// requests sent all along never fail. Both modes (Base: every worker serves the new one).
#[test]
fn tls_reload_certs_live_both_modes() {
    for mode in ["process", "base"] {
        let pki = Pki::new();
        let pid_file = pki.dir.path().join("srv.pid");
        let pf = Pki::s(&pid_file).to_string();
        let srv = example(&pki, "http_hello", mode, &["--pid-file", &pf]);
        let port = srv.port;
        let old = der_of(&pki.cert);
        assert_eq!(s_client_leaf(port), old, "{mode}");
        let mut before = tls_connect(port, &pki.ca, None);
        assert_eq!(served(&before), old);
        // Continuous requests on fresh connections during the swaps.
        let stop = Arc::new(AtomicBool::new(false));
        let (ok, failed) = (Arc::new(AtomicU64::new(0)), Arc::new(AtomicU64::new(0)));
        let load = {
            let (stop, ok, failed, ca) = (stop.clone(), ok.clone(), failed.clone(), pki.ca.clone());
            std::thread::spawn(move || {
                let mut errors = Vec::new();
                while !stop.load(Relaxed) {
                    let r = std::panic::catch_unwind(|| {
                        let mut c = tls_connect(port, &ca, None);
                        c.write_all(b"GET /x HTTP/1.1\r\nHost: l\r\nConnection: close\r\n\r\n")
                            .unwrap();
                        let mut body = Vec::new();
                        let _ = c.read_to_end(&mut body);
                        String::from_utf8_lossy(&body).ends_with("Hello World")
                    });
                    match r {
                        Ok(true) => ok.fetch_add(1, Relaxed),
                        other => {
                            errors.push(format!("{other:?}"));
                            failed.fetch_add(1, Relaxed)
                        }
                    };
                }
                errors
            })
        };
        let wait_load = |n: u64| {
            let deadline = Instant::now() + T;
            let start = ok.load(Relaxed);
            while ok.load(Relaxed) < start + n {
                assert!(Instant::now() < deadline, "the load does not get through");
                std::thread::sleep(Duration::from_millis(5));
            }
        };
        wait_load(5);
        // A renewed certificate (a new key too), written over the same files.
        let (c, k) = pki.issue("renewed", None);
        std::fs::write(&pki.cert, &c).unwrap();
        std::fs::write(&pki.key, &k).unwrap();
        let new = der_of(&pki.cert);
        assert_ne!(new, old);
        let out = cli(&["reload-certs", "--pid-file", &pf]);
        assert!(
            out.status.success(),
            "{mode}: reload-certs failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        assert!(
            String::from_utf8_lossy(&out.stdout).contains(&sha256_hex(&new)),
            "{}",
            String::from_utf8_lossy(&out.stdout)
        );
        // Base mode: each worker loads it before its next handshake; several handshakes
        // reach both workers.
        for _ in 0..6 {
            assert_eq!(
                s_client_leaf(port),
                new,
                "{mode}: the old certificate is still served"
            );
        }
        wait_load(5);
        // The connection made before still works, with its old session.
        before
            .write_all(b"GET /y HTTP/1.1\r\nHost: l\r\n\r\n")
            .unwrap();
        let l = tls_line(&mut before);
        assert!(l.starts_with("HTTP/1.1 200"), "{mode}: {l}");
        // A key that is not the certificate's: refused, reason given, the new one stays.
        let (_, other_key) = pki.issue("other", None);
        std::fs::write(&pki.key, &other_key).unwrap();
        let out = cli(&["reload-certs", "--pid-file", &pf]);
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(
            !out.status.success(),
            "{mode}: a mismatched key was accepted"
        );
        assert!(err.contains("does not match"), "{mode}: {err}");
        // An expired certificate (with its own key): refused too.
        let (c, k) = pki.issue("expired", Some((2001, 2002)));
        std::fs::write(&pki.cert, &c).unwrap();
        std::fs::write(&pki.key, &k).unwrap();
        let out = cli(&["reload-certs", "--pid-file", &pf]);
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(
            !out.status.success() && err.contains("expired"),
            "{mode}: {err}"
        );
        // A missing file: refused.
        std::fs::remove_file(&pki.key).unwrap();
        let out = cli(&["reload-certs", "--pid-file", &pf]);
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(
            !out.status.success() && err.contains("cannot read"),
            "{mode}: {err}"
        );
        for _ in 0..6 {
            assert_eq!(
                s_client_leaf(port),
                new,
                "{mode}: a refused reload changed the certificate"
            );
        }
        wait_load(5);
        stop.store(true, Relaxed);
        let errors = load.join().expect("load thread");
        assert_eq!(
            failed.load(Relaxed),
            0,
            "{mode}: failed requests: {errors:?}"
        );
        assert!(
            srv.stderr().contains("reload-certs refused"),
            "{mode}: not logged"
        );
    }
}

/// Process mode: kill -9 of a worker leaves TLS connections open (the master holds them and
/// their TLS state); they keep being served by the replacement.
#[test]
fn tls_worker_kill9_keeps_tls_connections_process_mode() {
    let pki = Pki::new();
    let srv = testkit(&pki, "process", &["--framing", "eof"]);
    let workers = srv.wait_titles("rswoole: worker", 2, T);
    let mut clients: Vec<Tls> = (0..8)
        .map(|_| tls_connect(srv.port, &pki.ca, None))
        .collect();
    for (i, c) in clients.iter_mut().enumerate() {
        c.write_all(format!("a{i}\r\n").as_bytes()).unwrap();
        assert!(tls_line(c).ends_with(&format!(":a{i}\r\n")));
    }
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(workers[0]),
        nix::sys::signal::Signal::SIGKILL,
    )
    .expect("kill -9");
    let deadline = Instant::now() + T;
    loop {
        let now = srv.with_title("rswoole: worker");
        if now.len() == 2 && !now.contains(&workers[0]) {
            break;
        }
        assert!(Instant::now() < deadline, "worker not restarted: {now:?}");
        std::thread::sleep(Duration::from_millis(20));
    }
    for (i, c) in clients.iter_mut().enumerate() {
        c.write_all(format!("b{i}\r\n").as_bytes()).unwrap();
        let l = tls_line(c);
        assert!(l.ends_with(&format!(":b{i}\r\n")), "client {i}: {l:?}");
    }
    assert!(
        !srv.stdout().contains("close "),
        "a TLS connection was closed"
    );
}

/// The clients over TLS: `SyncClient::connect_tls` and `Client::connect_tls` with EOF framing
/// (as plain), a client certificate for mTLS (its identity reaches the server), and a server
/// whose certificate the client does not trust: `ClientError::Tls`.
#[test]
fn tls_clients_sync_and_tokio_framed() {
    use rswoole::client::{Client, ClientConfig, ClientError, ClientTls, SyncClient};
    let pki = Pki::new();
    let ca = Pki::s(&pki.ca).to_string();
    let srv = testkit(
        &pki,
        "base",
        &[
            "--framing",
            "eof",
            "--client-ca",
            &ca,
            "--client-cert-optional",
        ],
    );
    let addr = format!("127.0.0.1:{}", srv.port);
    let config = || ClientConfig {
        framing: rswoole::Framing::Eof {
            eof: b"\r\n".to_vec(),
            split: true,
        },
        ..Default::default()
    };
    let tls = ClientTls::new("localhost").ca_file(&pki.ca);
    let mut c = SyncClient::connect_tls(&addr, T, config(), &tls).expect("sync TLS client");
    c.send_frame(b"a").unwrap();
    c.send(b"b\r\nc\r\n").unwrap();
    for want in ["a", "b", "c"] {
        let m = c.recv().expect("framed reply");
        assert!(m.ends_with(format!(":{want}\r\n").as_bytes()), "{m:?}");
    }
    c.close();
    let mtls = tls.clone().client_cert(&pki.client_cert, &pki.client_key);
    let mut c = SyncClient::connect_tls(&addr, T, config(), &mtls).expect("mTLS client");
    c.send_frame(b"info").unwrap();
    let m = String::from_utf8_lossy(&c.recv().unwrap()).into_owned();
    assert!(
        m.contains(&format!("peer={}", sha256_hex(&der_of(&pki.client_cert)))),
        "{m}"
    );
    // Not trusted: the server's CA is not the one given.
    let other = Pki::new();
    let wrong = ClientTls::new("localhost").ca_file(&other.ca);
    match SyncClient::connect_tls(&addr, T, config(), &wrong) {
        Err(ClientError::Tls(e)) => assert!(e.contains("certificate"), "{e}"),
        other => panic!("untrusted server accepted: {other:?}"),
    }
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        let mut c = Client::connect_tls(&addr, T, config(), &tls)
            .await
            .expect("tokio TLS client");
        c.send(b"x\r\ny\r\n").await.unwrap();
        for want in ["x", "y"] {
            let m = c.recv().await.expect("framed reply");
            assert!(m.ends_with(format!(":{want}\r\n").as_bytes()), "{m:?}");
        }
        c.close().await;
        assert!(matches!(
            Client::connect_tls(&addr, T, config(), &wrong).await,
            Err(ClientError::Tls(_))
        ));
    });
}

/// A TLS client to `port` trusting `ca` with the client certificate `client` that sends one
/// line and reads the echo: `Err` with the reason if the handshake or the echo fails (a
/// TLS 1.3 server refuses a client certificate after the client's handshake is done, with
/// an alert instead of the echo).
#[allow(deprecated)]
fn try_mtls_echo(port: u16, ca: &Path, client: (&Path, &Path)) -> Result<String, String> {
    use rustls_pki_types::pem::PemObject;
    let mut roots = rustls::RootCertStore::empty();
    for c in rustls_pki_types::CertificateDer::pem_file_iter(ca).expect("ca") {
        roots.add(c.expect("ca cert")).expect("add ca");
    }
    let chain = rustls_pki_types::CertificateDer::pem_file_iter(client.0)
        .expect("client cert")
        .collect::<Result<Vec<_>, _>>()
        .expect("client cert");
    let key = rustls_pki_types::PrivateKeyDer::from_pem_file(client.1).expect("client key");
    let cfg = rustls::ClientConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .expect("versions")
    .with_root_certificates(roots)
    .with_client_auth_cert(chain, key)
    .expect("client auth");
    let conn = rustls::ClientConnection::new(Arc::new(cfg), "localhost".try_into().expect("name"))
        .expect("client");
    let sock = connect(port);
    sock.set_read_timeout(Some(T)).unwrap();
    let mut s = rustls::StreamOwned::new(conn, sock);
    while s.conn.is_handshaking() {
        s.conn
            .complete_io(&mut s.sock)
            .map_err(|e| format!("handshake: {e}"))?;
    }
    s.write_all(b"x\r\n").map_err(|e| format!("write: {e}"))?;
    let mut out = Vec::new();
    let mut b = [0u8; 1];
    loop {
        match s.read(&mut b) {
            Ok(1) => {
                out.push(b[0]);
                if b[0] == b'\n' {
                    break;
                }
            }
            Ok(_) => return Err(format!("closed after {out:?}")),
            Err(e) => return Err(format!("read: {e}")),
        }
    }
    Ok(String::from_utf8_lossy(&out).into_owned())
}

/// `reload-certs` re-reads the client CA too: after the CA file is replaced by another CA, a
/// new handshake with a client certificate of the old CA is refused and one of the new CA
/// gets in; a connection made before keeps working; a CA file that is not PEM is refused
/// with the reason and the new CA stays. Process mode (the master's handshakes) and Base mode
/// (each worker's).
#[test]
fn tls_reload_client_ca_live_both_modes() {
    for mode in ["process", "base"] {
        let pki = Pki::new();
        let other = Pki::new();
        let pid_file = pki.dir.path().join("ca.pid");
        let pf = Pki::s(&pid_file).to_string();
        let ca_file = pki.dir.path().join("client-ca.pem");
        std::fs::copy(&pki.ca, &ca_file).unwrap();
        let srv = testkit(
            &pki,
            mode,
            &[
                "--client-ca",
                Pki::s(&ca_file),
                "--framing",
                "eof",
                "--pid-file",
                &pf,
            ],
        );
        let old_client = (pki.client_cert.as_path(), pki.client_key.as_path());
        let new_client = (other.client_cert.as_path(), other.client_key.as_path());
        // Before: the old CA's client gets in, the other CA's is refused.
        for _ in 0..4 {
            let l = try_mtls_echo(srv.port, &pki.ca, old_client).expect("old CA's client");
            assert!(l.ends_with(":x\r\n"), "{mode}: {l:?}");
            assert!(
                try_mtls_echo(srv.port, &pki.ca, new_client).is_err(),
                "{mode}: a client of another CA got in"
            );
        }
        let mut before = tls_connect(srv.port, &pki.ca, Some(old_client));
        before.write_all(b"a\r\n").unwrap();
        assert!(tls_line(&mut before).ends_with(":a\r\n"));
        // Switch the client CA.
        std::fs::copy(&other.ca, &ca_file).unwrap();
        let out = cli(&["reload-certs", "--pid-file", &pf]);
        let stdout = String::from_utf8_lossy(&out.stdout);
        assert!(
            out.status.success(),
            "{mode}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        assert!(stdout.contains("client CA"), "{mode}: {stdout}");
        // Several handshakes reach every Base-mode worker.
        for _ in 0..6 {
            let e = try_mtls_echo(srv.port, &pki.ca, old_client);
            assert!(
                e.is_err(),
                "{mode}: the old CA's client still gets in: {e:?}"
            );
            let l = try_mtls_echo(srv.port, &pki.ca, new_client).expect("new CA's client");
            assert!(l.ends_with(":x\r\n"), "{mode}: {l:?}");
        }
        // The connection made under the old CA is untouched.
        before.write_all(b"b\r\n").unwrap();
        assert!(tls_line(&mut before).ends_with(":b\r\n"), "{mode}");
        // A CA file that is not PEM: refused with the reason, the new CA stays.
        std::fs::write(&ca_file, "not a certificate\n").unwrap();
        let out = cli(&["reload-certs", "--pid-file", &pf]);
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(!out.status.success(), "{mode}: a bad CA file was accepted");
        assert!(
            err.contains("client-ca.pem") && err.contains("no CERTIFICATE"),
            "{mode}: {err}"
        );
        for _ in 0..4 {
            assert!(
                try_mtls_echo(srv.port, &pki.ca, new_client).is_ok(),
                "{mode}"
            );
            assert!(
                try_mtls_echo(srv.port, &pki.ca, old_client).is_err(),
                "{mode}"
            );
        }
        before.write_all(b"c\r\n").unwrap();
        assert!(tls_line(&mut before).ends_with(":c\r\n"), "{mode}");
    }
}

/// The leaf certificate served to a new handshake on `port` (a rustls client trusting `ca`).
fn leaf_now(port: u16, ca: &Path) -> Vec<u8> {
    served(&tls_connect(port, ca, None))
}

/// Waits until new handshakes on `port` get `want` (a few in a row, to reach every Base-mode
/// worker).
fn wait_leaf(port: u16, ca: &Path, want: &[u8], what: &str) {
    let deadline = Instant::now() + T;
    let mut in_a_row = 0;
    while in_a_row < 6 {
        if leaf_now(port, ca) == want {
            in_a_row += 1;
        } else {
            in_a_row = 0;
            assert!(
                Instant::now() < deadline,
                "{what}: the new certificate is not served"
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

/// Reloading without the CLI. `SIGRTMIN+1` to the master reloads the files (the renewed
/// certificate is served to new handshakes); with `--watch-certs` a change of the files alone
/// does: a half-written certificate is refused (logged, the current one keeps serving) and
/// the complete one is picked up once written. Open connections keep working. Both modes.
#[test]
fn tls_reload_on_signal_and_file_watch_both_modes() {
    for mode in ["process", "base"] {
        let pki = Pki::new();
        let pid_file = pki.dir.path().join("w.pid");
        let srv = testkit(
            &pki,
            mode,
            &[
                "--framing",
                "eof",
                "--watch-certs",
                "0.1",
                "--pid-file",
                Pki::s(&pid_file),
            ],
        );
        let first = der_of(&pki.cert);
        assert_eq!(leaf_now(srv.port, &pki.ca), first, "{mode}");
        let mut before = tls_connect(srv.port, &pki.ca, None);
        before.write_all(b"a\r\n").unwrap();
        assert!(tls_line(&mut before).ends_with(":a\r\n"));

        // The watch: a half-written certificate (its key already new) is refused.
        let (c, k) = pki.issue("watched", None);
        std::fs::write(&pki.key, &k).unwrap();
        std::fs::write(&pki.cert, &c[..c.len() / 2]).unwrap();
        srv.wait_stderr("certificate files changed but are refused", 1, T);
        for _ in 0..4 {
            assert_eq!(
                leaf_now(srv.port, &pki.ca),
                first,
                "{mode}: a half file served"
            );
        }
        // The rest of it arrives: served without any command.
        std::fs::write(&pki.cert, &c).unwrap();
        let watched = der_of(&pki.cert);
        wait_leaf(srv.port, &pki.ca, &watched, mode);
        assert!(srv.stderr().contains("certificate files changed; reloaded"));

        // The signal: the files replaced by a rename, the same second; SIGRTMIN+1 reloads
        // them (the watch may get there first: either way it is served).
        let (c, k) = pki.issue("signalled", None);
        let tmp_c = pki.dir.path().join("c.tmp");
        let tmp_k = pki.dir.path().join("k.tmp");
        std::fs::write(&tmp_c, &c).unwrap();
        std::fs::write(&tmp_k, &k).unwrap();
        std::fs::rename(&tmp_k, &pki.key).unwrap();
        std::fs::rename(&tmp_c, &pki.cert).unwrap();
        rtmin1(&pid_file);
        let signalled = der_of(&pki.cert);
        wait_leaf(srv.port, &pki.ca, &signalled, mode);

        before.write_all(b"b\r\n").unwrap();
        assert!(tls_line(&mut before).ends_with(":b\r\n"), "{mode}");
        assert!(alive(srv.pid()), "{mode}: the master died");
    }

    // Without the watch, only the signal reloads: a server whose files changed keeps the
    // old certificate until it gets SIGRTMIN+1.
    let pki = Pki::new();
    let pid_file = pki.dir.path().join("s.pid");
    let srv = testkit(
        &pki,
        "process",
        &["--framing", "eof", "--pid-file", Pki::s(&pid_file)],
    );
    let first = der_of(&pki.cert);
    let (c, k) = pki.issue("renewed", None);
    std::fs::write(&pki.cert, &c).unwrap();
    std::fs::write(&pki.key, &k).unwrap();
    // Not a wait for anything: time in which a (wrong) reload could happen.
    std::thread::sleep(Duration::from_millis(300));
    assert_eq!(leaf_now(srv.port, &pki.ca), first);
    rtmin1(&pid_file);
    wait_leaf(srv.port, &pki.ca, &der_of(&pki.cert), "signal");
    srv.wait_stderr("certificates reloaded (SIGRTMIN+1)", 1, T);
}

/// Sends `SIGRTMIN+1` to the master named by `pid_file` (`Master::send("reload-certs")`
/// signals, as `kill -s RTMIN+1 $(cat F)` would).
fn rtmin1(pid_file: &Path) {
    let m = rswoole::control::Master::open(pid_file).expect("master");
    m.send("reload-certs").expect("SIGRTMIN+1");
}
