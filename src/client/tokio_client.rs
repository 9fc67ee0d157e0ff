//! [`Client`]: the async (tokio) client.

use std::io;
use std::net::SocketAddr;
use std::time::Duration;

use bytes::Bytes;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpStream, ToSocketAddrs, UdpSocket};

use super::error::{ClientError, ClientResult};
use super::framer::Framer;
use super::{ClientConfig, SockType, READ_SIZE};

#[derive(Debug)]
enum Sock {
    Tcp(TcpStream),
    Tls(Box<tokio_rustls::client::TlsStream<TcpStream>>),
    Udp(UdpSocket),
}

/// An async TCP or UDP client (Swoole's coroutine `Swoole\Coroutine\Client`), for tokio.
///
/// The same calls as [`SyncClient`](super::SyncClient), as futures; each is bounded by the
/// client's timeout. Dropping a `recv` future in the middle of a frame loses nothing: what was
/// read stays buffered for the next `recv`.
///
/// # Examples
/// ```no_run
/// use std::time::Duration;
/// use rswoole::client::{Client, ClientConfig};
/// use rswoole::{Framing, SockType};
///
/// # #[allow(dead_code)]
/// # async fn demo() -> Result<(), rswoole::client::ClientError> {
/// let config = ClientConfig {
///     framing: Framing::Eof { eof: b"\r\n".to_vec(), split: true },
///     ..Default::default()
/// };
/// let mut client =
///     Client::connect_with(SockType::Tcp, "127.0.0.1:9501", Duration::from_secs(1), config)
///         .await?;
/// client.send_frame(b"hello").await?; // sends "hello\r\n"
/// let line = client.recv().await?;    // "Server: hello\r\n"
/// println!("{}", String::from_utf8_lossy(&line));
/// client.close().await;
/// # Ok(())
/// # }
/// ```
#[derive(Debug)]
pub struct Client {
    sock: Option<Sock>,
    framer: Framer,
    timeout: Duration,
    peer: SocketAddr,
    scratch: Box<[u8]>,
}

async fn within<T>(
    t: Duration,
    f: impl std::future::Future<Output = io::Result<T>>,
) -> ClientResult<T> {
    match tokio::time::timeout(t, f).await {
        Ok(r) => r.map_err(ClientError::from),
        Err(_) => Err(ClientError::Timeout),
    }
}

impl Client {
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
    /// use rswoole::client::Client;
    ///
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), rswoole::client::ClientError> {
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
    ///     let mut client = Client::connect(addr, Duration::from_secs(1)).await?; // e.g. "127.0.0.1:9501"
    ///     client.send(b"ping").await?;
    ///     assert_eq!(&client.recv().await?[..], b"ping");
    /// # Ok(())
    /// # }
    /// ```
    pub async fn connect(addr: impl ToSocketAddrs, timeout: Duration) -> ClientResult<Client> {
        Client::connect_with(SockType::Tcp, addr, timeout, ClientConfig::default()).await
    }

    /// A UDP client whose datagrams go to `addr`.
    ///
    /// # Errors
    /// [`ClientError::Io`] if `addr` does not resolve or the socket cannot be made.
    ///
    /// # Examples
    ///
    /// ```
    /// use std::time::Duration;
    /// use rswoole::client::Client;
    ///
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), rswoole::client::ClientError> {
    /// # let echo = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
    /// # let addr = echo.local_addr().unwrap(); // a local UDP echo server
    /// # std::thread::spawn(move || {
    /// #     let mut buf = [0u8; 2048];
    /// #     while let Ok((n, from)) = echo.recv_from(&mut buf) {
    /// #         let _ = echo.send_to(&buf[..n], from);
    /// #     }
    /// # });
    ///     let mut client = Client::connect_udp(addr, Duration::from_secs(1)).await?;
    ///     client.send(b"datagram").await?;
    ///     assert_eq!(&client.recv().await?[..], b"datagram");
    /// # Ok(())
    /// # }
    /// ```
    pub async fn connect_udp(addr: impl ToSocketAddrs, timeout: Duration) -> ClientResult<Client> {
        Client::connect_with(SockType::Udp, addr, timeout, ClientConfig::default()).await
    }

    /// A TLS connection to `addr` (see [`ClientTls`](super::ClientTls)), framed by `config`
    /// as a plain one; the handshake is done (within `timeout`) when it returns.
    ///
    /// # Errors
    /// [`ClientError::Tls`] if the files are bad or the handshake fails,
    /// [`ClientError::Timeout`], or the connect errors.
    ///
    /// # Examples
    ///
    /// ```no_run
    /// use std::time::Duration;
    /// use rswoole::client::{Client, ClientConfig, ClientTls};
    ///
    /// # #[allow(dead_code)]
    /// # async fn run() -> Result<(), rswoole::client::ClientError> {
    /// let tls = ClientTls::new("localhost").ca_file("ca.pem");
    /// let mut c = Client::connect_tls("127.0.0.1:9443", Duration::from_secs(1), ClientConfig::default(), &tls).await?;
    /// c.send(b"hello").await?;
    /// println!("{:?}", c.recv().await?);
    /// # Ok(())
    /// # }
    /// ```
    pub async fn connect_tls(
        addr: impl ToSocketAddrs,
        timeout: Duration,
        config: ClientConfig,
        tls: &super::ClientTls,
    ) -> ClientResult<Client> {
        let (cfg, name) = tls.build()?;
        let mut c = Client::connect_with(SockType::Tcp, addr, timeout, config).await?;
        let Some(Sock::Tcp(tcp)) = c.sock.take() else {
            return Err(ClientError::Closed);
        };
        let connector = tokio_rustls::TlsConnector::from(cfg);
        let s = match tokio::time::timeout(c.timeout, connector.connect(name, tcp)).await {
            Err(_) => return Err(ClientError::Timeout),
            Ok(Err(e)) if e.kind() == io::ErrorKind::InvalidData => {
                return Err(ClientError::Tls(e.to_string()))
            }
            Ok(Err(e)) => return Err(ClientError::from(e)),
            Ok(Ok(s)) => s,
        };
        c.sock = Some(Sock::Tls(Box::new(s)));
        Ok(c)
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
    /// use rswoole::client::{Client, ClientConfig};
    /// use rswoole::{Framing, SockType};
    ///
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), rswoole::client::ClientError> {
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
    ///     let config = ClientConfig {
    ///         framing: Framing::Eof { eof: b"\r\n".to_vec(), split: true },
    ///         ..Default::default()
    ///     };
    ///     let mut client = Client::connect_with(SockType::Tcp, addr, Duration::from_secs(1), config).await?;
    ///     client.send(b"a\r\nb\r\n").await?;
    ///     assert_eq!(&client.recv().await?[..], b"a\r\n");
    ///     assert_eq!(&client.recv().await?[..], b"b\r\n");
    /// # Ok(())
    /// # }
    /// ```
    pub async fn connect_with(
        sock_type: SockType,
        addr: impl ToSocketAddrs,
        timeout: Duration,
        config: ClientConfig,
    ) -> ClientResult<Client> {
        let framer = Framer::new(&config)?;
        let timeout = timeout.max(Duration::from_millis(1));
        let (sock, peer) = match sock_type {
            SockType::Tcp => {
                let s = within(timeout, TcpStream::connect(addr)).await?;
                s.set_nodelay(true).map_err(ClientError::Io)?;
                let peer = s.peer_addr().map_err(ClientError::Io)?;
                (Sock::Tcp(s), peer)
            }
            SockType::Udp => {
                let peer = within(timeout, tokio::net::lookup_host(addr))
                    .await?
                    .next()
                    .ok_or_else(|| {
                        ClientError::Io(io::Error::new(
                            io::ErrorKind::InvalidInput,
                            "address resolves to nothing",
                        ))
                    })?;
                let local: SocketAddr = if peer.is_ipv4() {
                    ([0, 0, 0, 0], 0).into()
                } else {
                    (std::net::Ipv6Addr::UNSPECIFIED, 0).into()
                };
                let s = UdpSocket::bind(local).await.map_err(ClientError::Io)?;
                s.connect(peer).await.map_err(ClientError::Io)?;
                (Sock::Udp(s), peer)
            }
        };
        Ok(Client {
            sock: Some(sock),
            framer,
            timeout,
            peer,
            scratch: vec![0u8; READ_SIZE].into_boxed_slice(),
        })
    }

    /// Changes the timeout of later sends and receives.
    ///
    /// # Examples
    ///
    /// ```
    /// use std::time::Duration;
    /// use rswoole::client::{Client, ClientError};
    ///
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), rswoole::client::ClientError> {
    /// # let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    /// # let addr = listener.local_addr().unwrap();
    ///     let mut client = Client::connect(addr, Duration::from_secs(1)).await?; // never answers
    ///     client.set_timeout(Duration::from_millis(50));
    ///     assert!(matches!(client.recv().await, Err(ClientError::Timeout)));
    ///     assert_eq!(client.peer_addr(), addr);
    /// # Ok(())
    /// # }
    /// ```
    pub fn set_timeout(&mut self, timeout: Duration) {
        self.timeout = timeout.max(Duration::from_millis(1));
    }

    /// The server's address.
    pub fn peer_addr(&self) -> SocketAddr {
        self.peer
    }

    /// The local address, if still open.
    pub fn local_addr(&self) -> Option<SocketAddr> {
        match self.sock.as_ref()? {
            Sock::Tcp(s) => s.local_addr().ok(),
            Sock::Udp(s) => s.local_addr().ok(),
            Sock::Tls(s) => s.get_ref().0.local_addr().ok(),
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
    /// use rswoole::client::Client;
    ///
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), rswoole::client::ClientError> {
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
    ///     let mut client = Client::connect(addr, Duration::from_secs(1)).await?;
    ///     client.send(b"as is").await?;
    ///     assert_eq!(&client.recv().await?[..], b"as is");
    /// # Ok(())
    /// # }
    /// ```
    pub async fn send(&mut self, data: &[u8]) -> ClientResult<()> {
        let t = self.timeout;
        let r = match self.sock.as_mut().ok_or(ClientError::Closed)? {
            Sock::Tcp(s) => within(t, s.write_all(data)).await,
            Sock::Tls(s) => {
                within(t, async {
                    s.write_all(data).await?;
                    s.flush().await
                })
                .await
            }
            Sock::Udp(s) => within(t, s.send(data)).await.map(|_| ()),
        };
        self.check(r)
    }

    /// Sends `body` framed by the client's [`ClientConfig::framing`] (length header or EOF
    /// added; as is for raw or a custom length function).
    ///
    /// # Errors
    /// As [`send`](Self::send), and [`ClientError::Frame`] if `body` cannot be framed.
    ///
    /// # Examples
    ///
    /// ```
    /// use std::time::Duration;
    /// use rswoole::client::{Client, ClientConfig};
    /// use rswoole::{Framing, SockType};
    ///
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), rswoole::client::ClientError> {
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
    ///     let config = ClientConfig {
    ///         framing: Framing::Eof { eof: b"\r\n".to_vec(), split: true },
    ///         ..Default::default()
    ///     };
    ///     let mut client = Client::connect_with(SockType::Tcp, addr, Duration::from_secs(1), config).await?;
    ///     client.send_frame(b"hello").await?; // "hello\r\n"
    ///     assert_eq!(&client.recv().await?[..], b"hello\r\n");
    ///     assert!(client.send_frame(b"a\r\nb").await.is_err()); // the EOF inside the body
    /// # Ok(())
    /// # }
    /// ```
    pub async fn send_frame(&mut self, body: &[u8]) -> ClientResult<()> {
        let packet = self.framer.encode(body)?;
        self.send(&packet).await
    }

    /// Receives one message (see [`SyncClient::recv`](super::SyncClient::recv)).
    ///
    /// # Errors
    /// [`ClientError::Timeout`] (what arrived is kept), [`ClientError::Closed`],
    /// [`ClientError::Frame`] (the client is closed), [`ClientError::Io`].
    ///
    /// # Examples
    ///
    /// ```
    /// use std::time::Duration;
    /// use rswoole::client::{Client, ClientConfig, ClientError};
    /// use rswoole::{Framing, SockType};
    ///
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), rswoole::client::ClientError> {
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
    ///     let config = ClientConfig {
    ///         framing: Framing::Eof { eof: b"\r\n".to_vec(), split: true },
    ///         ..Default::default()
    ///     };
    ///     let mut client = Client::connect_with(SockType::Tcp, addr, Duration::from_secs(1), config).await?;
    ///     client.set_timeout(Duration::from_millis(100));
    ///     client.send(b"hel").await?;
    ///     assert!(matches!(client.recv().await, Err(ClientError::Timeout))); // kept
    ///     client.send(b"lo\r\n").await?;
    ///     assert_eq!(&client.recv().await?[..], b"hello\r\n");
    /// # Ok(())
    /// # }
    /// ```
    pub async fn recv(&mut self) -> ClientResult<Bytes> {
        let t = self.timeout;
        match tokio::time::timeout(t, self.recv_inner()).await {
            Ok(r) => r,
            Err(_) => Err(ClientError::Timeout),
        }
    }

    async fn recv_inner(&mut self) -> ClientResult<Bytes> {
        loop {
            match self.framer.next() {
                Ok(Some(m)) => return Ok(m),
                Ok(None) => {}
                Err(e) => {
                    self.sock = None;
                    self.framer.buf.clear();
                    return Err(e.into());
                }
            }
            let r = match self.sock.as_mut().ok_or(ClientError::Closed)? {
                Sock::Tcp(s) => s.read(&mut self.scratch).await,
                Sock::Tls(s) => s.read(&mut self.scratch).await,
                Sock::Udp(s) => {
                    let r = s.recv(&mut self.scratch).await;
                    let n = self.check(r.map_err(ClientError::from))?;
                    return Ok(Bytes::copy_from_slice(&self.scratch[..n]));
                }
            };
            match self.check(r.map_err(ClientError::from))? {
                0 => {
                    self.sock = None;
                    self.framer.buf.clear();
                    return Err(ClientError::Closed);
                }
                n if self.framer.is_raw() => return Ok(Bytes::copy_from_slice(&self.scratch[..n])),
                n => self.framer.buf.extend_from_slice(&self.scratch[..n]),
            }
        }
    }

    /// Closes the connection (TCP: sends FIN). Later calls fail with [`ClientError::Closed`].
    ///
    /// # Examples
    ///
    /// ```
    /// use std::time::Duration;
    /// use rswoole::client::{Client, ClientError};
    ///
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), rswoole::client::ClientError> {
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
    ///     let mut client = Client::connect(addr, Duration::from_secs(1)).await?;
    ///     client.close().await;
    ///     assert!(client.is_closed());
    ///     assert!(matches!(client.send(b"late").await, Err(ClientError::Closed)));
    /// # Ok(())
    /// # }
    /// ```
    pub async fn close(&mut self) {
        match self.sock.take() {
            Some(Sock::Tcp(mut s)) => {
                let _ = tokio::time::timeout(self.timeout, s.shutdown()).await;
            }
            Some(Sock::Tls(mut s)) => {
                let _ = tokio::time::timeout(self.timeout, s.shutdown()).await;
            }
            _ => {}
        }
        self.framer.buf.clear();
    }

    fn check<T>(&mut self, r: ClientResult<T>) -> ClientResult<T> {
        if matches!(r, Err(ClientError::Closed)) {
            self.sock = None;
            self.framer.buf.clear();
        }
        r
    }
}
