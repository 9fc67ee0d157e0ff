//! deploy/nginx.conf, for real: Debian's nginx in front of examples/http_kit.rs.

use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use crate::util::*;

/// nginx serves the static file itself, proxies the rest, and X-Forwarded-For reaches the
/// handler through `trusted_proxies`.
#[test]
fn nginx_proxy_round_trip() {
    let nginx = ["/usr/sbin/nginx", "/usr/bin/nginx"]
        .into_iter()
        .find(|p| std::path::Path::new(p).exists());
    let Some(nginx) = nginx else {
        assert!(
            std::env::var("CI").is_err(),
            "nginx must be installed in CI (.ci/run installs nginx-light)"
        );
        eprintln!("nginx not installed: skipping (CI installs it)");
        return;
    };
    let app_port = 0;
    let app = ServerProc::start(
        "http_kit",
        &[
            "--addr",
            &format!("127.0.0.1:{app_port}"),
            "--trusted-proxy",
            "127.0.0.1",
        ],
        app_port,
    );
    let app_port = app.port;

    let dir = tempfile::tempdir().unwrap();
    let public = dir.path().join("public");
    std::fs::create_dir(&public).unwrap();
    std::fs::write(public.join("only-in-nginx.txt"), "static from nginx\n").unwrap();
    let listen = free_port();
    let site = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/deploy/nginx.conf"))
        .unwrap()
        .replace(
            "server 127.0.0.1:9501;",
            &format!("server 127.0.0.1:{app_port};"),
        )
        .replace("listen 8080;", &format!("listen 127.0.0.1:{listen};"))
        .replace(
            "root /var/www/rswoole/public;",
            &format!("root {};", public.display()),
        );
    assert!(
        site.contains(&format!("127.0.0.1:{app_port}")) && site.contains(&format!("{listen}")),
        "deploy/nginx.conf changed shape: update this test"
    );
    let d = dir.path().display();
    let main = format!(
        "worker_processes 1;\npid {d}/nginx.pid;\nerror_log {d}/error.log;\nevents {{ worker_connections 256; }}\nhttp {{\n  access_log {d}/access.log;\n  client_body_temp_path {d}/body;\n  proxy_temp_path {d}/proxy;\n  fastcgi_temp_path {d}/fcgi;\n  uwsgi_temp_path {d}/uwsgi;\n  scgi_temp_path {d}/scgi;\n  include /etc/nginx/mime.types;\n  include {d}/site.conf;\n}}\n"
    );
    std::fs::write(dir.path().join("site.conf"), site).unwrap();
    std::fs::write(dir.path().join("nginx.conf"), main).unwrap();
    let mut ng = Command::new(nginx)
        .args([
            "-p",
            &d.to_string(),
            "-c",
            &format!("{d}/nginx.conf"),
            "-g",
            "daemon off; user root;",
        ])
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("start nginx");
    struct Kill(std::process::Child);
    impl Drop for Kill {
        fn drop(&mut self) {
            let _ = self.0.kill();
            let _ = self.0.wait();
        }
    }
    let deadline = Instant::now() + Duration::from_secs(20);
    while std::net::TcpStream::connect(("127.0.0.1", listen)).is_err() {
        if let Ok(Some(st)) = ng.try_wait() {
            let mut err = String::new();
            use std::io::Read;
            ng.stderr.take().unwrap().read_to_string(&mut err).ok();
            panic!(
                "nginx exited {st}: {err}\n{}",
                std::fs::read_to_string(dir.path().join("error.log")).unwrap_or_default()
            );
        }
        assert!(Instant::now() < deadline, "nginx did not listen");
        std::thread::sleep(Duration::from_millis(30));
    }
    let _ng = Kill(ng);

    let r = http_get(listen, "/only-in-nginx.txt");
    assert_eq!((r.status, r.text().as_str()), (200, "static from nginx\n"));
    assert!(r.header("server").is_some_and(|s| s.starts_with("nginx")));
    let r = http_get(listen, "/hello");
    assert_eq!((r.status, r.text().as_str()), (200, "Hello World"));
    let r = http_once(
        listen,
        b"POST /echo HTTP/1.1\r\nHost: t\r\nContent-Length: 5\r\n\r\nhello",
    )
    .unwrap();
    assert_eq!(r.text(), "hello");
    let r = http_once(
        listen,
        b"GET /remote HTTP/1.1\r\nHost: t\r\nX-Forwarded-For: 203.0.113.9\r\n\r\n",
    )
    .unwrap();
    assert_eq!(
        r.text(),
        "203.0.113.9",
        "the client named by X-Forwarded-For, through the trusted proxy"
    );
    drop(app);
}
