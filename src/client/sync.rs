//! [`SyncClient`]: the blocking client.

use std::io::{self, Read, Write};
use std::net::{Shutdown, SocketAddr, TcpStream, ToSocketAddrs, UdpSocket};
use std::time::{Duration, Instant};

use bytes::Bytes;

use super::error::{ClientError, ClientResult};
use super::framer::Framer;
use super::{ClientConfig, SockType, READ_SIZE};

#[derive(Debug)]
enum Sock {
    Tcp(TcpStream),
    Udp(UdpSocket),
    Tls(Box<rustls::StreamOwned<rustls::ClientConnection, TcpStream>>),
}

/// A blocking TCP or UDP client (Swoole's synchronous `Swoole\Client`).
///
/// Every call blocks the calling thread for at most the client's timeout. Not for use inside
/// an async runtime's worker thread: use [`Client`](super::Client) there.
///
/// # Examples
/// The seed's client for `examples/tcp_echo.rs`:
/// ```no_run
/// use std::time::Duration;
/// use rswoole::client::SyncClient;
///
/// # fn main() -> Result<(), rswoole::client::ClientError> {
/// let mut client = SyncClient::connect("127.0.0.1:9501", Duration::from_millis(500))?;
/// client.send(b"hello world\n")?;
/// let reply = client.recv()?; // raw: what one read returned
/// println!("{}", String::from_utf8_lossy(&reply));
/// client.close();
/// # Ok(())
/// # }
/// ```
#[derive(Debug)]
pub struct SyncClient {
    sock: Option<Sock>,
    framer: Framer,
    timeout: Duration,
    peer: SocketAddr,
}

/// Resolves `addr`, failing with [`ClientError::Io`] if it yields nothing.
pub(crate) fn resolve(addr: impl ToSocketAddrs) -> ClientResult<Vec<SocketAddr>> {
    let v: Vec<SocketAddr> = addr.to_socket_addrs().map_err(ClientError::Io)?.collect();
    if v.is_empty() {
        return Err(ClientError::Io(io::Error::new(
            io::ErrorKind::InvalidInput,
            "address resolves to nothing",
        )));
    }
    Ok(v)
}

fn nonzero(t: Duration) -> Duration {
    t.max(Duration::from_millis(1))
}

impl SyncClient {
    /// Connects a raw TCP client to `addr` within `timeout` (which also bounds later sends and
    /// receives).
    ///
    /// # Errors
    /// [`ClientError::Timeout`], or [`ClientError::Io`] (refused, unreachable, bad address).
    ///
    /// # Examples
    ///
    /// ```
    /// use std::time::Duration;
    /// use rswoole::client::SyncClient;
    ///
    /// # let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    /// # let addr = listener.local_addr().unwrap(); // a local echo server
    /// # std::thread::spawn(move || {
    /// #     for mut s in listener.incoming().flatten() {
    /// #         std::thread::spawn(move || {
    /// #             let mut r = s.try_clone().unwrap();
    /// #             let _ = std::io::copy(&mut r, &mut s);
    /// #         });
    /// #     }
    /// # });
    /// let mut client = SyncClient::connect(addr, Duration::from_secs(1))?; // e.g. "127.0.0.1:9501"
    /// client.send(b"ping")?;
    /// assert_eq!(&client.recv()?[..], b"ping"); // raw: what one read got
    /// # Ok::<(), rswoole::client::ClientError>(())
    /// ```
    pub fn connect(addr: impl ToSocketAddrs, timeout: Duration) -> ClientResult<SyncClient> {
        SyncClient::connect_with(SockType::Tcp, addr, timeout, ClientConfig::default())
    }

    /// A UDP client whose datagrams go to `addr` (bound to an ephemeral local port and
    /// connected, so only `addr`'s replies are received).
    ///
    /// # Errors
    /// [`ClientError::Io`] if `addr` does not resolve or the socket cannot be made.
    ///
    /// # Examples
    ///
    /// ```
    /// use std::time::Duration;
    /// use rswoole::client::SyncClient;
    ///
    /// # let echo = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
    /// # let addr = echo.local_addr().unwrap(); // a local UDP echo server
    /// # std::thread::spawn(move || {
    /// #     let mut buf = [0u8; 2048];
    /// #     while let Ok((n, from)) = echo.recv_from(&mut buf) {
    /// #         let _ = echo.send_to(&buf[..n], from);
    /// #     }
    /// # });
    /// let mut client = SyncClient::connect_udp(addr, Duration::from_secs(1))?;
    /// client.send(b"one datagram")?;
    /// assert_eq!(&client.recv()?[..], b"one datagram");
    /// # Ok::<(), rswoole::client::ClientError>(())
    /// ```
    pub fn connect_udp(addr: impl ToSocketAddrs, timeout: Duration) -> ClientResult<SyncClient> {
        SyncClient::connect_with(SockType::Udp, addr, timeout, ClientConfig::default())
    }

    /// Connects with any socket type and framing.
    ///
    /// # Errors
    /// As [`connect`](Self::connect), and [`ClientError::Config`] for framing settings that
    /// cannot work.
    ///
    /// # Examples
    ///
    /// ```
    /// use std::time::Duration;
    /// use rswoole::client::{ClientConfig, SyncClient};
    /// use rswoole::{Framing, SockType};
    ///
    /// # let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    /// # let addr = listener.local_addr().unwrap(); // a local echo server
    /// # std::thread::spawn(move || {
    /// #     for mut s in listener.incoming().flatten() {
    /// #         std::thread::spawn(move || {
    /// #             let mut r = s.try_clone().unwrap();
    /// #             let _ = std::io::copy(&mut r, &mut s);
    /// #         });
    /// #     }
    /// # });
    /// let config = ClientConfig {
    ///     framing: Framing::Eof { eof: b"\r\n".to_vec(), split: true },
    ///     ..Default::default()
    /// };
    /// let mut client = SyncClient::connect_with(SockType::Tcp, addr, Duration::from_secs(1), config)?;
    /// client.send(b"a\r\nb\r\n")?; // two lines in one write...
    /// assert_eq!(&client.recv()?[..], b"a\r\n"); // ...come back one message at a time
    /// assert_eq!(&client.recv()?[..], b"b\r\n");
    /// # Ok::<(), rswoole::client::ClientError>(())
    /// ```
    pub fn connect_with(
        sock_type: SockType,
        addr: impl ToSocketAddrs,
        timeout: Duration,
        config: ClientConfig,
    ) -> ClientResult<SyncClient> {
        let framer = Framer::new(&config)?;
        let timeout = nonzero(timeout);
        let mut last = None;
        for a in resolve(addr)? {
            let r = match sock_type {
                SockType::Tcp => TcpStream::connect_timeout(&a, timeout).and_then(|s| {
                    s.set_nodelay(true)?;
                    Ok(Sock::Tcp(s))
                }),
                SockType::Udp => {
                    let local: SocketAddr = if a.is_ipv4() {
                        ([0, 0, 0, 0], 0).into()
                    } else {
                        (std::net::Ipv6Addr::UNSPECIFIED, 0).into()
                    };
                    UdpSocket::bind(local).and_then(|s| {
                        s.connect(a)?;
                        Ok(Sock::Udp(s))
                    })
                }
            };
            match r {
                Ok(sock) => {
                    return Ok(SyncClient {
                        sock: Some(sock),
                        framer,
                        timeout,
                        peer: a,
                    })
                }
                Err(e) => last = Some(e),
            }
        }
        Err(last.map(ClientError::from).unwrap_or(ClientError::Closed))
    }

    /// A TLS connection to `addr` (see [`ClientTls`](super::ClientTls)), framed by `config`
    /// as a plain one; the handshake is done (within `timeout`) when it returns.
    ///
    /// # Errors
    /// [`ClientError::Tls`] if the files are bad or the handshake fails (the server's
    /// certificate does not verify), [`ClientError::Timeout`], or the connect errors.
    ///
    /// # Examples
    ///
    /// ```no_run
    /// use std::time::Duration;
    /// use rswoole::client::{ClientConfig, ClientTls, SyncClient};
    /// use rswoole::Framing;
    ///
    /// # fn main() -> Result<(), rswoole::client::ClientError> {
    /// let config = ClientConfig { framing: Framing::Eof { eof: b"\r\n".to_vec(), split: true }, ..Default::default() };
    /// let tls = ClientTls::new("localhost").ca_file("ca.pem");
    /// let mut c = SyncClient::connect_tls("127.0.0.1:9443", Duration::from_secs(1), config, &tls)?;
    /// c.send_frame(b"hello")?;
    /// println!("{:?}", c.recv()?);
    /// # Ok(())
    /// # }
    /// ```
    pub fn connect_tls(
        addr: impl ToSocketAddrs,
        timeout: Duration,
        config: ClientConfig,
        tls: &super::ClientTls,
    ) -> ClientResult<SyncClient> {
        let (cfg, name) = tls.build()?;
        let mut c = SyncClient::connect_with(SockType::Tcp, addr, timeout, config)?;
        let Some(Sock::Tcp(tcp)) = c.sock.take() else {
            return Err(ClientError::Closed);
        };
        let conn = rustls::ClientConnection::new(cfg, name)
            .map_err(|e| ClientError::Tls(e.to_string()))?;
        let mut s = rustls::StreamOwned::new(conn, tcp);
        let deadline = Instant::now() + c.timeout;
        while s.conn.is_handshaking() {
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return Err(ClientError::Timeout);
            }
            s.sock.set_read_timeout(Some(left))?;
            s.sock.set_write_timeout(Some(left))?;
            if let Err(e) = s.conn.complete_io(&mut s.sock) {
                return Err(match e.kind() {
                    io::ErrorKind::InvalidData => ClientError::Tls(e.to_string()),
                    _ => ClientError::from(e),
                });
            }
        }
        c.sock = Some(Sock::Tls(Box::new(s)));
        Ok(c)
    }

    /// Changes the timeout of later sends and receives.
    ///
    /// # Examples
    ///
    /// ```
    /// use std::time::Duration;
    /// use rswoole::client::{ClientError, SyncClient};
    ///
    /// # let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    /// # let addr = listener.local_addr().unwrap();
    /// let mut client = SyncClient::connect(addr, Duration::from_secs(1))?; // a server that never answers
    /// client.set_timeout(Duration::from_millis(50));
    /// assert!(matches!(client.recv(), Err(ClientError::Timeout)));
    /// assert!(!client.is_closed()); // still usable after a timeout
    /// # Ok::<(), rswoole::client::ClientError>(())
    /// ```
    pub fn set_timeout(&mut self, timeout: Duration) {
        self.timeout = nonzero(timeout);
    }

    /// The server's address.
    ///
    /// # Examples
    ///
    /// ```
    /// use std::time::Duration;
    /// use rswoole::client::SyncClient;
    ///
    /// # let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    /// # let addr = listener.local_addr().unwrap(); // a local echo server
    /// # std::thread::spawn(move || {
    /// #     for mut s in listener.incoming().flatten() {
    /// #         std::thread::spawn(move || {
    /// #             let mut r = s.try_clone().unwrap();
    /// #             let _ = std::io::copy(&mut r, &mut s);
    /// #         });
    /// #     }
    /// # });
    /// let client = SyncClient::connect(addr, Duration::from_secs(1))?;
    /// assert_eq!(client.peer_addr(), addr);
    /// assert!(client.local_addr().unwrap().ip().is_loopback());
    /// # Ok::<(), rswoole::client::ClientError>(())
    /// ```
    pub fn peer_addr(&self) -> SocketAddr {
        self.peer
    }

    /// The local address, if still open.
    pub fn local_addr(&self) -> Option<SocketAddr> {
        match self.sock.as_ref()? {
            Sock::Tcp(s) => s.local_addr().ok(),
            Sock::Udp(s) => s.local_addr().ok(),
            Sock::Tls(s) => s.sock.local_addr().ok(),
        }
    }

    /// Whether [`close`](Self::close) was called or the connection ended.
    pub fn is_closed(&self) -> bool {
        self.sock.is_none()
    }

    /// Sends `data` as is (TCP: all of it; UDP: one datagram).
    ///
    /// # Errors
    /// [`ClientError::Closed`], [`ClientError::Timeout`], [`ClientError::Io`].
    ///
    /// # Examples
    ///
    /// ```
    /// use std::time::Duration;
    /// use rswoole::client::SyncClient;
    ///
    /// # let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    /// # let addr = listener.local_addr().unwrap(); // a local echo server
    /// # std::thread::spawn(move || {
    /// #     for mut s in listener.incoming().flatten() {
    /// #         std::thread::spawn(move || {
    /// #             let mut r = s.try_clone().unwrap();
    /// #             let _ = std::io::copy(&mut r, &mut s);
    /// #         });
    /// #     }
    /// # });
    /// let mut client = SyncClient::connect(addr, Duration::from_secs(1))?;
    /// client.send(b"\x00\x03abc")?; // as is: bring your own header with raw framing
    /// assert_eq!(&client.recv()?[..], b"\x00\x03abc");
    /// # Ok::<(), rswoole::client::ClientError>(())
    /// ```
    pub fn send(&mut self, data: &[u8]) -> ClientResult<()> {
        let timeout = self.timeout;
        let r = match self.sock.as_mut().ok_or(ClientError::Closed)? {
            Sock::Tcp(s) => s
                .set_write_timeout(Some(timeout))
                .and_then(|()| s.write_all(data)),
            Sock::Udp(s) => s
                .set_write_timeout(Some(timeout))
                .and_then(|()| s.send(data).map(|_| ())),
            Sock::Tls(s) => s
                .sock
                .set_write_timeout(Some(timeout))
                .and_then(|()| s.write_all(data))
                .and_then(|()| s.flush()),
        };
        self.check(r)
    }

    /// Sends `body` framed by the client's [`ClientConfig::framing`]: with the length header
    /// (length framing) or the EOF (EOF framing) added; as is for raw or a custom length
    /// function.
    ///
    /// # Errors
    /// As [`send`](Self::send), and [`ClientError::Frame`] if `body` cannot be framed (too
    /// long for the length field, or it contains the EOF).
    ///
    /// # Examples
    ///
    /// ```
    /// use std::time::Duration;
    /// use rswoole::client::{ClientConfig, SyncClient};
    /// use rswoole::{Framing, LengthSpec, LengthType, SockType};
    ///
    /// # let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    /// # let addr = listener.local_addr().unwrap(); // a local echo server
    /// # std::thread::spawn(move || {
    /// #     for mut s in listener.incoming().flatten() {
    /// #         std::thread::spawn(move || {
    /// #             let mut r = s.try_clone().unwrap();
    /// #             let _ = std::io::copy(&mut r, &mut s);
    /// #         });
    /// #     }
    /// # });
    /// let config = ClientConfig {
    ///     framing: Framing::Length(LengthSpec::new(LengthType::U32Be, 0, 4)),
    ///     ..Default::default()
    /// };
    /// let mut client = SyncClient::connect_with(SockType::Tcp, addr, Duration::from_secs(1), config)?;
    /// client.send_frame(b"hello")?; // the 4-byte length header is added
    /// assert_eq!(&client.recv()?[..], b"\0\0\0\x05hello");
    /// # Ok::<(), rswoole::client::ClientError>(())
    /// ```
    pub fn send_frame(&mut self, body: &[u8]) -> ClientResult<()> {
        let packet = self.framer.encode(body)?;
        self.send(&packet)
    }

    /// Receives one message: TCP with framing, one whole frame (header and EOF included);
    /// raw TCP, what one read returned (at most [`READ_SIZE`]); UDP, one datagram.
    ///
    /// # Errors
    /// [`ClientError::Timeout`] if nothing whole arrived within the timeout (what arrived is
    /// kept), [`ClientError::Closed`] if the peer closed (a partial frame is dropped),
    /// [`ClientError::Frame`] for a bad frame (the client is closed), [`ClientError::Io`].
    ///
    /// # Examples
    ///
    /// ```
    /// use std::time::Duration;
    /// use rswoole::client::{ClientConfig, ClientError, SyncClient};
    /// use rswoole::{Framing, SockType};
    ///
    /// # let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    /// # let addr = listener.local_addr().unwrap(); // a local echo server
    /// # std::thread::spawn(move || {
    /// #     for mut s in listener.incoming().flatten() {
    /// #         std::thread::spawn(move || {
    /// #             let mut r = s.try_clone().unwrap();
    /// #             let _ = std::io::copy(&mut r, &mut s);
    /// #         });
    /// #     }
    /// # });
    /// let config = ClientConfig {
    ///     framing: Framing::Eof { eof: b"\r\n".to_vec(), split: true },
    ///     ..Default::default()
    /// };
    /// let mut client = SyncClient::connect_with(SockType::Tcp, addr, Duration::from_secs(1), config)?;
    /// client.set_timeout(Duration::from_millis(100));
    /// client.send(b"hel")?;
    /// assert!(matches!(client.recv(), Err(ClientError::Timeout))); // half a message: kept
    /// client.send(b"lo\r\n")?;
    /// assert_eq!(&client.recv()?[..], b"hello\r\n");
    /// # Ok::<(), rswoole::client::ClientError>(())
    /// ```
    pub fn recv(&mut self) -> ClientResult<Bytes> {
        let deadline = Instant::now() + self.timeout;
        let mut scratch = [0u8; READ_SIZE];
        loop {
            match self.framer.next() {
                Ok(Some(m)) => return Ok(m),
                Ok(None) => {}
                Err(e) => {
                    self.close();
                    return Err(e.into());
                }
            }
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return Err(ClientError::Timeout);
            }
            let r = match self.sock.as_mut().ok_or(ClientError::Closed)? {
                Sock::Tcp(s) => s
                    .set_read_timeout(Some(left))
                    .and_then(|()| s.read(&mut scratch)),
                Sock::Tls(s) => s
                    .sock
                    .set_read_timeout(Some(left))
                    .and_then(|()| s.read(&mut scratch)),
                Sock::Udp(s) => {
                    let r = s
                        .set_read_timeout(Some(left))
                        .and_then(|()| s.recv(&mut scratch));
                    return Ok(Bytes::copy_from_slice(&scratch[..self.check(r)?]));
                }
            };
            match self.check(r)? {
                0 => {
                    self.close();
                    return Err(ClientError::Closed);
                }
                n if self.framer.is_raw() => return Ok(Bytes::copy_from_slice(&scratch[..n])),
                n => self.framer.buf.extend_from_slice(&scratch[..n]),
            }
        }
    }

    /// Closes the connection (TCP: shuts both directions down). Later calls fail with
    /// [`ClientError::Closed`]. Closing twice is harmless.
    ///
    /// # Examples
    ///
    /// ```
    /// use std::time::Duration;
    /// use rswoole::client::{ClientError, SyncClient};
    ///
    /// # let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    /// # let addr = listener.local_addr().unwrap(); // a local echo server
    /// # std::thread::spawn(move || {
    /// #     for mut s in listener.incoming().flatten() {
    /// #         std::thread::spawn(move || {
    /// #             let mut r = s.try_clone().unwrap();
    /// #             let _ = std::io::copy(&mut r, &mut s);
    /// #         });
    /// #     }
    /// # });
    /// let mut client = SyncClient::connect(addr, Duration::from_secs(1))?;
    /// client.close();
    /// assert!(client.is_closed());
    /// assert!(matches!(client.send(b"late"), Err(ClientError::Closed)));
    /// client.close(); // harmless
    /// # Ok::<(), rswoole::client::ClientError>(())
    /// ```
    pub fn close(&mut self) {
        match self.sock.take() {
            Some(Sock::Tcp(s)) => {
                let _ = s.shutdown(Shutdown::Both);
            }
            Some(Sock::Tls(mut s)) => {
                s.conn.send_close_notify();
                let _ = s.flush();
                let _ = s.sock.shutdown(Shutdown::Both);
            }
            _ => {}
        }
        self.framer.buf.clear();
    }

    /// Maps an I/O result; a "closed" outcome closes the client.
    fn check<T>(&mut self, r: io::Result<T>) -> ClientResult<T> {
        r.map_err(|e| {
            let e = ClientError::from(e);
            if matches!(e, ClientError::Closed) {
                self.close();
            }
            e
        })
    }
}
