//! The connection state machine: bytes in, [`WsEvent`]s out, plus the bytes it wants written.
//!
//! [`Connection`] parses frames as they arrive (payloads are unmasked, inflated and UTF-8
//! checked piece by piece, so an invalid text byte fails the connection the moment it is
//! read), reassembles fragmented messages, answers Pings and Close frames on its own, and
//! fails the connection with the right close code on any protocol error. It does no I/O: the
//! caller feeds it what it read and writes out what [`Connection::take_output`] returns.

use bytes::{Buf, Bytes, BytesMut};

use super::close::{parse_close_payload, CloseCode};
use super::deflate::{DeflateConfig, DeflateParams, DeflateStream};
use super::error::WsError;
use super::frame::{check_mask, encode_frame, FrameHeader, MessageKind, OpCode, Role};
use super::mask::apply_mask_at;
use super::utf8::Utf8Validator;

/// Default for [`WsConfig::max_frame_size`]: 16 MiB.
pub const DEFAULT_MAX_FRAME_SIZE: usize = 16 << 20;

/// Default for [`WsConfig::max_message_size`]: 64 MiB.
pub const DEFAULT_MAX_MESSAGE_SIZE: usize = 64 << 20;

/// Settings of a [`Connection`].
///
/// # Default
///
/// `max_frame_size` [`DEFAULT_MAX_FRAME_SIZE`], `max_message_size`
/// [`DEFAULT_MAX_MESSAGE_SIZE`], `auto_pong` on, `deliver_fragments` off, deflate disabled.
///
/// # Examples
///
/// ```
/// use bytes::BytesMut;
/// use rswoole_codec::ws::{CloseCode, Connection, WsConfig, WsError};
///
/// let config = WsConfig { max_message_size: 4, ..WsConfig::default() };
/// let mut conn = Connection::server(config, None);
/// // A masked 5-byte binary message (all-zero mask, so the payload reads as is).
/// let mut src = BytesMut::from(&[0x82, 0x85, 0, 0, 0, 0, 1, 2, 3, 4, 5][..]);
/// assert_eq!(conn.feed(&mut src), Err(WsError::MessageTooLarge));
/// // The connection is failed with a Close frame carrying 1009.
/// assert_eq!(&conn.take_output()[..], &[0x88, 0x02, 0x03, 0xf1]);
/// assert_eq!(WsError::MessageTooLarge.close_code(), CloseCode::MESSAGE_TOO_BIG);
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WsConfig {
    /// The largest frame payload accepted; larger frames fail with 1009.
    pub max_frame_size: usize,
    /// The largest message accepted (after decompression); larger ones fail with 1009.
    pub max_message_size: usize,
    /// Answer each Ping with a Pong automatically (the Ping is still reported).
    pub auto_pong: bool,
    /// Report each data frame as a [`WsEvent::Fragment`] instead of reassembling whole
    /// [`WsEvent::Message`]s. Text fragments may then split a UTF-8 sequence (the message as
    /// a whole is still validated).
    pub deliver_fragments: bool,
    /// permessage-deflate settings: used in negotiation, and here for the compression level
    /// and threshold once negotiated.
    pub deflate: DeflateConfig,
}

impl Default for WsConfig {
    fn default() -> Self {
        WsConfig {
            max_frame_size: DEFAULT_MAX_FRAME_SIZE,
            max_message_size: DEFAULT_MAX_MESSAGE_SIZE,
            auto_pong: true,
            deliver_fragments: false,
            deflate: DeflateConfig::default(),
        }
    }
}

/// The closing-handshake state of a [`Connection`].
///
/// # Examples
///
/// ```
/// use rswoole_codec::ws::{CloseCode, ConnState, Connection, WsConfig};
///
/// let mut conn = Connection::server(WsConfig::default(), None);
/// assert_eq!(conn.state(), ConnState::Open);
/// conn.close(CloseCode::GOING_AWAY, "restart")?;
/// let state = conn.state();
/// assert!(state.is_closing() && state.can_read() && !state.is_open() && !state.is_closed());
/// # Ok::<(), rswoole_codec::ws::WsError>(())
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ConnState {
    /// Messages flow both ways.
    Open,
    /// We sent a Close frame and wait for the peer's. Incoming messages are still reported;
    /// nothing more may be sent.
    Closing,
    /// Close frames went both ways, or the connection was failed. Flush the output, then
    /// close the socket.
    Closed,
}

impl ConnState {
    /// Messages may be sent.
    pub const fn is_open(self) -> bool {
        matches!(self, ConnState::Open)
    }

    /// We sent Close and wait for the peer's.
    pub const fn is_closing(self) -> bool {
        matches!(self, ConnState::Closing)
    }

    /// Nothing more will be read or sent.
    pub const fn is_closed(self) -> bool {
        matches!(self, ConnState::Closed)
    }

    /// Incoming frames are still processed.
    pub const fn can_read(self) -> bool {
        !self.is_closed()
    }
}

/// What [`Connection::feed`] reports.
///
/// # Examples
///
/// ```
/// use bytes::BytesMut;
/// use rswoole_codec::ws::{CloseCode, ConnState, Connection, WsConfig, WsEvent};
///
/// let mut conn = Connection::server(WsConfig::default(), None);
/// // A masked Close frame from the client: code 1000, reason "bye" (all-zero mask).
/// let mut src = BytesMut::from(&[0x88, 0x85, 0, 0, 0, 0, 0x03, 0xe8, b'b', b'y', b'e'][..]);
/// let event = conn.feed(&mut src)?;
/// assert_eq!(event, Some(WsEvent::Close { code: CloseCode::NORMAL, reason: "bye".into() }));
/// assert_eq!(conn.state(), ConnState::Closed);
/// assert_eq!(&conn.take_output()[..], &[0x88, 0x02, 0x03, 0xe8]); // answered
/// # Ok::<(), rswoole_codec::ws::WsError>(())
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum WsEvent {
    /// A complete (reassembled, decompressed, UTF-8-checked if text) message.
    Message {
        /// Text or binary.
        kind: MessageKind,
        /// The payload.
        data: Bytes,
    },
    /// One data frame's payload, when [`WsConfig::deliver_fragments`] is on.
    Fragment {
        /// The kind of the message this frame belongs to.
        kind: MessageKind,
        /// This frame's (decompressed) payload.
        data: Bytes,
        /// The last frame of the message.
        fin: bool,
    },
    /// A Ping; already answered if [`WsConfig::auto_pong`] is on.
    Ping(Bytes),
    /// A Pong.
    Pong(Bytes),
    /// The peer's Close frame; already answered if we had not sent one. `code` is
    /// [`CloseCode::NO_STATUS`] when the frame had no payload.
    Close {
        /// The peer's close code.
        code: CloseCode,
        /// The peer's (UTF-8) reason.
        reason: String,
    },
}

#[derive(Debug, Clone, Copy)]
struct PayloadState {
    fin: bool,
    mask: Option<[u8; 4]>,
    remaining: u64,
    offset: usize,
}

#[derive(Debug, Clone, Copy)]
enum ReadState {
    Header,
    /// Inside a data frame's payload.
    Payload(PayloadState),
}

/// What a data frame header leads to.
enum Step {
    Event(WsEvent),
    /// Wait for more bytes; the header was left in `src`.
    NeedMore,
    /// The payload state is set up; go on reading.
    Continue,
}

/// The most capacity reserved ahead for a binary frame still arriving; the caller's buffer
/// grows past it as bytes come, so a peer's claimed length alone cannot make us allocate.
const WAIT_RESERVE_MAX: usize = 1 << 20;

/// From this size on, a message handed out of the caller's buffer without a copy leaves that
/// buffer with an allocation of its own (the rest of the bytes, usually none, are copied).
const DETACH_FROM: usize = 64 * 1024;

#[derive(Debug)]
struct Message {
    kind: MessageKind,
    compressed: bool,
    buf: Vec<u8>,
    /// Bytes already handed out as fragments.
    delivered: usize,
    /// Compressed bytes received (bounded by [`deflate_wire_bound`] of `max_message_size`).
    wire_len: usize,
    /// `buf.len()` when the current frame began: a compressed frame may inflate to at most
    /// `max_frame_size` bytes.
    frame_start: usize,
}

/// The most wire bytes a compressed payload of `n` bytes can take: deflate with fixed Huffman
/// codes spends at most 9 bits per literal byte, plus block headers (a compressor that does
/// worse wastes space no honest peer would). Compressed frames and messages are refused only
/// past this bound on the wire; what counts against `max_frame_size` and `max_message_size`
/// is the size after inflating, so the limits mean the same with or without compression.
///
/// # Examples
///
/// ```
/// use rswoole_codec::ws::conn::deflate_wire_bound;
/// assert_eq!(deflate_wire_bound(0), 1024);
/// assert_eq!(deflate_wire_bound(8 << 20), (9 << 20) + 1024);
/// ```
pub const fn deflate_wire_bound(n: usize) -> usize {
    n.saturating_add(n / 8).saturating_add(1024)
}

/// An I/O-free WebSocket connection (after the handshake), for either [`Role`].
///
/// Feed it the bytes read from the socket with [`feed`](Self::feed) until it returns
/// `Ok(None)`; send with [`send_message`](Self::send_message) and friends; write out
/// [`take_output`](Self::take_output). On `Err`, a Close frame with the error's close code is
/// already in the output: flush it, then close the socket.
///
/// # Examples
///
/// ```
/// use bytes::BytesMut;
/// use rswoole_codec::ws::{Connection, MessageKind, WsConfig, WsEvent};
///
/// let mut conn = Connection::server(WsConfig::default(), None);
/// // A masked "Hello" from a client (RFC 6455 §5.7), then a Ping.
/// let mut src = BytesMut::from(&[0x81, 0x85, 0x37, 0xfa, 0x21, 0x3d,
///                                0x7f, 0x9f, 0x4d, 0x51, 0x58,
///                                0x89, 0x80, 1, 2, 3, 4][..]);
/// let Some(WsEvent::Message { kind, data }) = conn.feed(&mut src).unwrap() else { panic!() };
/// assert_eq!((kind, &data[..]), (MessageKind::Text, &b"Hello"[..]));
/// assert!(matches!(conn.feed(&mut src).unwrap(), Some(WsEvent::Ping(_))));
/// assert_eq!(conn.feed(&mut src).unwrap(), None);
///
/// conn.send_message(MessageKind::Text, &data).unwrap(); // echo
/// let out = conn.take_output();
/// assert_eq!(&out[..], &[0x8a, 0x00, 0x81, 0x05, b'H', b'e', b'l', b'l', b'o']);
/// ```
#[derive(Debug)]
pub struct Connection {
    role: Role,
    config: WsConfig,
    state: ConnState,
    read: ReadState,
    msg: Option<Message>,
    utf8: Utf8Validator,
    deflate: Option<DeflateStream>,
    /// What the handshake negotiated (kept to rebuild the connection elsewhere).
    deflate_params: Option<DeflateParams>,
    out: BytesMut,
    mask_rng: u64,
}

impl Connection {
    /// A server-side connection; `deflate` is what the handshake negotiated
    /// ([`Accept::deflate`](super::Accept::deflate)).
    ///
    /// # Examples
    ///
    /// ```
    /// use rswoole_codec::ws::{Connection, Role, WsConfig};
    /// let conn = Connection::server(WsConfig::default(), None); // no deflate negotiated
    /// assert_eq!(conn.role(), Role::Server);
    /// assert!(!conn.is_compressed());
    /// ```
    pub fn server(config: WsConfig, deflate: Option<DeflateParams>) -> Self {
        Self::new(Role::Server, config, deflate, 0)
    }

    /// A client-side connection. Masking keys come from a xorshift generator seeded with
    /// `mask_seed`; pass a random seed (masking keys must be unpredictable to the network,
    /// RFC 6455 §10.3).
    ///
    /// # Examples
    ///
    /// A client's frames are masked; a server connection reads them back:
    ///
    /// ```
    /// use rswoole_codec::ws::{Connection, MessageKind, WsConfig, WsEvent};
    ///
    /// let mut client = Connection::client(WsConfig::default(), None, 0x9e37_79b9_7f4a_7c15);
    /// client.send_message(MessageKind::Text, b"hi")?;
    /// let mut wire = client.take_output();
    /// assert_eq!(wire[1] & 0x80, 0x80); // the MASK bit
    ///
    /// let mut server = Connection::server(WsConfig::default(), None);
    /// let event = server.feed(&mut wire)?;
    /// assert_eq!(event, Some(WsEvent::Message { kind: MessageKind::Text, data: "hi".into() }));
    /// # Ok::<(), rswoole_codec::ws::WsError>(())
    /// ```
    pub fn client(config: WsConfig, deflate: Option<DeflateParams>, mask_seed: u64) -> Self {
        Self::new(Role::Client, config, deflate, mask_seed)
    }

    fn new(role: Role, config: WsConfig, deflate: Option<DeflateParams>, seed: u64) -> Self {
        let deflate_params = deflate;
        let deflate = deflate.map(|p| DeflateStream::new(role, &p, &config.deflate));
        Connection {
            role,
            config,
            state: ConnState::Open,
            read: ReadState::Header,
            msg: None,
            utf8: Utf8Validator::new(),
            deflate,
            deflate_params,
            out: BytesMut::new(),
            mask_rng: seed | 1,
        }
    }

    /// This connection's role.
    pub fn role(&self) -> Role {
        self.role
    }

    /// The closing-handshake state.
    pub fn state(&self) -> ConnState {
        self.state
    }

    /// Whether permessage-deflate is active.
    pub fn is_compressed(&self) -> bool {
        self.deflate.is_some()
    }

    /// The permessage-deflate parameters the handshake negotiated (`None`: no compression).
    ///
    /// # Examples
    ///
    /// ```
    /// use rswoole_codec::ws::{Connection, DeflateParams, WsConfig};
    /// let params = DeflateParams { server_no_context_takeover: true, ..DeflateParams::default() };
    /// let conn = Connection::server(WsConfig::default(), Some(params));
    /// assert_eq!(conn.deflate_params(), Some(params));
    /// ```
    pub fn deflate_params(&self) -> Option<DeflateParams> {
        self.deflate_params
    }

    /// Whether the connection is between messages: open, no frame taken in part (the bytes
    /// the caller still holds are at most an unparsed partial frame), no fragmented message
    /// being reassembled and no output waiting in [`take_output`](Self::take_output). Together
    /// with [`carries_context`](Self::carries_context) false, this is when the connection's
    /// whole state is its configuration, [`deflate_params`](Self::deflate_params) and the
    /// caller's unparsed bytes: a new `Connection` built from them continues it (a server
    /// moving a live connection to another process does so).
    ///
    /// # Examples
    ///
    /// ```
    /// use bytes::BytesMut;
    /// use rswoole_codec::ws::{Connection, WsConfig};
    ///
    /// let mut conn = Connection::server(WsConfig::default(), None);
    /// assert!(conn.is_between_messages());
    /// // The first of two fragments (masked, all-zero key): a message is being reassembled.
    /// let mut src = BytesMut::from(&[0x01, 0x82, 0, 0, 0, 0, b'H', b'e'][..]);
    /// assert_eq!(conn.feed(&mut src)?, None);
    /// assert!(!conn.is_between_messages());
    /// src.extend_from_slice(&[0x80, 0x81, 0, 0, 0, 0, b'y']);
    /// assert!(conn.feed(&mut src)?.is_some());
    /// assert!(conn.is_between_messages());
    /// # Ok::<(), rswoole_codec::ws::WsError>(())
    /// ```
    pub fn is_between_messages(&self) -> bool {
        self.state.is_open()
            && matches!(self.read, ReadState::Header)
            && self.msg.is_none()
            && self.out.is_empty()
    }

    /// Whether compression state carries over from one message to the next (permessage-deflate
    /// with context takeover in either direction): then the LZ77 windows are part of the
    /// connection's state, and [`is_between_messages`](Self::is_between_messages) is not enough
    /// to rebuild it from its parameters.
    ///
    /// # Examples
    ///
    /// ```
    /// use rswoole_codec::ws::{Connection, DeflateConfig, DeflateParams, WsConfig};
    ///
    /// let config = WsConfig { deflate: DeflateConfig { enabled: true, ..DeflateConfig::default() }, ..WsConfig::default() };
    /// let takeover = Connection::server(config.clone(), Some(DeflateParams::default()));
    /// assert!(takeover.carries_context());
    /// let fresh = DeflateParams {
    ///     server_no_context_takeover: true,
    ///     client_no_context_takeover: true,
    ///     ..DeflateParams::default()
    /// };
    /// assert!(!Connection::server(config, Some(fresh)).carries_context());
    /// assert!(!Connection::server(WsConfig::default(), None).carries_context());
    /// ```
    pub fn carries_context(&self) -> bool {
        self.deflate.as_ref().is_some_and(|d| d.carries_context())
    }

    /// Consumes bytes from `src` and returns the next event.
    ///
    /// `Ok(None)` means "need more bytes": everything usable was consumed (a partial frame
    /// header is left in `src`; partial data payloads are taken into the connection). Call
    /// again after each `Ok(Some(_))`, since `src` may hold more events. Once the state is
    /// [`Closed`](ConnState::Closed), input is discarded and `Ok(None)` returned.
    ///
    /// # Errors
    ///
    /// Any [`WsError`] protocol violation. The connection is then failed: a Close frame with
    /// [`WsError::close_code`] is queued in the output (unless one was already sent) and the
    /// state is [`Closed`](ConnState::Closed).
    ///
    /// # Examples
    ///
    /// ```
    /// use bytes::BytesMut;
    /// use rswoole_codec::ws::{Connection, MessageKind, WsConfig, WsError, WsEvent};
    ///
    /// let mut conn = Connection::server(WsConfig::default(), None);
    /// // A fragmented masked text message: "He" + "llo" (all-zero masks), in two reads.
    /// let mut src = BytesMut::from(&[0x01, 0x82, 0, 0, 0, 0, b'H', b'e', 0x80][..]);
    /// assert_eq!(conn.feed(&mut src)?, None); // first fragment taken, second header partial
    /// src.extend_from_slice(&[0x83, 0, 0, 0, 0, b'l', b'l', b'o']);
    /// let message = conn.feed(&mut src)?;
    /// assert_eq!(message, Some(WsEvent::Message { kind: MessageKind::Text, data: "Hello".into() }));
    ///
    /// // An unmasked client frame is a protocol error.
    /// let mut bad = BytesMut::from(&[0x81, 0x01, b'x'][..]);
    /// assert_eq!(conn.feed(&mut bad), Err(WsError::UnmaskedFrame));
    /// # Ok::<(), WsError>(())
    /// ```
    pub fn feed(&mut self, src: &mut BytesMut) -> Result<Option<WsEvent>, WsError> {
        match self.read_event(src) {
            Ok(ev) => Ok(ev),
            Err(e) => {
                self.fail(e);
                Err(e)
            }
        }
    }

    /// Fails the connection with `err`'s close code: queues the Close frame (if none was sent
    /// yet) and moves to [`Closed`](ConnState::Closed). For applications that find a problem
    /// the codec cannot (e.g. [`WsError::InvalidUtf8`] in a JSON payload) — or use
    /// [`close`](Self::close) with a code such as [`CloseCode::UNSUPPORTED_DATA`].
    ///
    /// # Examples
    ///
    /// ```
    /// use rswoole_codec::ws::{ConnState, Connection, WsConfig, WsError};
    ///
    /// let mut conn = Connection::server(WsConfig::default(), None);
    /// // The application found invalid UTF-8 inside a JSON payload.
    /// conn.fail(WsError::InvalidUtf8);
    /// assert_eq!(conn.state(), ConnState::Closed);
    /// assert_eq!(&conn.take_output()[..], &[0x88, 0x02, 0x03, 0xef]); // Close 1007
    /// ```
    pub fn fail(&mut self, err: WsError) {
        if self.state.is_open() {
            self.write_control(OpCode::Close, &err.close_code().as_u16().to_be_bytes());
        }
        self.state = ConnState::Closed;
        self.read = ReadState::Header;
        if self.msg.take().is_some_and(|m| m.compressed) {
            if let Some(d) = &mut self.deflate {
                d.abort_message();
            }
        }
    }

    fn read_event(&mut self, src: &mut BytesMut) -> Result<Option<WsEvent>, WsError> {
        loop {
            if self.state.is_closed() {
                src.clear();
                return Ok(None);
            }
            match self.read {
                ReadState::Header => {
                    let Some((h, hlen)) = FrameHeader::parse(src)? else {
                        return Ok(None);
                    };
                    check_mask(self.role, &h)?;
                    if h.rsv2 || h.rsv3 {
                        return Err(WsError::ReservedBits);
                    }
                    if h.opcode.is_control() {
                        if h.rsv1 {
                            return Err(WsError::ReservedBits);
                        }
                        let total = hlen + h.payload_len as usize;
                        if src.len() < total {
                            return Ok(None);
                        }
                        src.advance(hlen);
                        let mut payload = src.split_to(h.payload_len as usize);
                        if let Some(key) = h.mask {
                            apply_mask_at(&mut payload, key, 0);
                        }
                        if let Some(ev) = self.on_control(h.opcode, payload)? {
                            return Ok(Some(ev));
                        }
                        continue;
                    }
                    match self.on_data_header(&h, hlen, src)? {
                        Step::Event(ev) => return Ok(Some(ev)),
                        Step::NeedMore => return Ok(None),
                        Step::Continue => {}
                    }
                }
                ReadState::Payload(mut ps) => {
                    let n = ps.remaining.min(src.len() as u64) as usize;
                    if n > 0 {
                        let chunk = &mut src[..n];
                        if let Some(key) = ps.mask {
                            apply_mask_at(chunk, key, ps.offset);
                        }
                        self.on_data(chunk)?;
                        src.advance(n);
                        ps.remaining -= n as u64;
                        ps.offset += n;
                    }
                    if ps.remaining > 0 {
                        self.read = ReadState::Payload(ps);
                        return Ok(None);
                    }
                    self.read = ReadState::Header;
                    if let Some(ev) = self.on_frame_end(ps.fin)? {
                        return Ok(Some(ev));
                    }
                }
            }
        }
    }

    /// A data frame header: sequencing, RSV1 and size checks, then either the whole-frame
    /// fast path, waiting for the rest of a binary frame, or streaming its payload.
    fn on_data_header(
        &mut self,
        h: &FrameHeader,
        hlen: usize,
        src: &mut BytesMut,
    ) -> Result<Step, WsError> {
        let continuation = h.opcode == OpCode::Continuation;
        match (&self.msg, continuation) {
            (None, true) => return Err(WsError::UnexpectedContinuation),
            (Some(_), false) => return Err(WsError::ExpectedContinuation),
            _ => {}
        }
        if h.rsv1 && (self.deflate.is_none() || continuation) {
            return Err(WsError::ReservedBits);
        }
        let (compressed, so_far) = match &self.msg {
            Some(m) if m.compressed => (true, m.wire_len),
            Some(m) => (false, m.delivered + m.buf.len()),
            None => (h.rsv1, 0),
        };
        // Uncompressed: the payload is the frame. Compressed: the wire size is only bounded
        // here; the inflated size is checked exactly against the limits as it inflates.
        let (frame_max, message_max) = if compressed {
            (
                deflate_wire_bound(self.config.max_frame_size),
                deflate_wire_bound(self.config.max_message_size),
            )
        } else {
            (self.config.max_frame_size, self.config.max_message_size)
        };
        if h.payload_len > frame_max as u64 {
            return Err(WsError::FrameTooLarge);
        }
        let len = h.payload_len as usize;
        if so_far.saturating_add(len) > message_max {
            return Err(WsError::MessageTooLarge);
        }
        let kind = match h.opcode {
            OpCode::Text => MessageKind::Text,
            OpCode::Binary => MessageKind::Binary,
            _ => self.msg.as_ref().map_or(MessageKind::Binary, |m| m.kind),
        };

        let single = h.fin && !continuation && !compressed;
        if single && kind == MessageKind::Binary && src.len() < hlen + len {
            // An unfragmented binary message: wait for all of it (nothing to validate on the
            // way) and hand it out without copying. Header stays in `src`, re-parsed later.
            src.reserve((hlen + len - src.len()).min(WAIT_RESERVE_MAX));
            return Ok(Step::NeedMore);
        }
        // Fast path: a whole, uncompressed, unfragmented message already buffered.
        if single && src.len() >= hlen + len {
            src.advance(hlen);
            let mut data = src.split_to(len);
            if len >= DETACH_FROM {
                // The message now shares its allocation with what `src` keeps (the caller
                // reads on into it): give `src` its own, so that the message alone owns its
                // memory — freed whole when the message is dropped, and reusable without a
                // copy by whoever holds it last.
                *src = BytesMut::from(&src[..]);
            }
            if let Some(key) = h.mask {
                apply_mask_at(&mut data, key, 0);
            }
            if kind == MessageKind::Text && std::str::from_utf8(&data).is_err() {
                return Err(WsError::InvalidUtf8);
            }
            let data = data.freeze();
            return Ok(Step::Event(if self.config.deliver_fragments {
                WsEvent::Fragment {
                    kind,
                    data,
                    fin: true,
                }
            } else {
                WsEvent::Message { kind, data }
            }));
        }

        src.advance(hlen);
        let msg = self.msg.get_or_insert_with(|| Message {
            kind,
            compressed,
            buf: Vec::new(),
            delivered: 0,
            wire_len: 0,
            frame_start: 0,
        });
        msg.frame_start = msg.buf.len();
        if !continuation {
            self.utf8.reset();
        }
        msg.wire_len += len;
        if !compressed {
            msg.buf.reserve(len.min(1 << 20));
        }
        self.read = ReadState::Payload(PayloadState {
            fin: h.fin,
            mask: h.mask,
            remaining: h.payload_len,
            offset: 0,
        });
        Ok(Step::Continue)
    }

    /// The next piece of a data frame's payload, already unmasked.
    fn on_data(&mut self, chunk: &[u8]) -> Result<(), WsError> {
        let msg = self.msg.as_mut().expect("payload state implies a message");
        let text = msg.kind == MessageKind::Text;
        if msg.compressed {
            let deflate = self.deflate.as_mut().expect("compressed implies deflate");
            let before = msg.buf.len();
            let (limit, too_large) = inflate_limit(msg, &self.config);
            let inflated = deflate
                .decompress(chunk, &mut msg.buf, limit)
                .map_err(too_large);
            // Validate what did inflate before reporting an inflate error, so the error does
            // not depend on how the input was split into reads.
            if text {
                self.utf8.feed(&msg.buf[before..])?;
            }
            inflated?;
        } else {
            if text {
                self.utf8.feed(chunk)?;
            }
            msg.buf.extend_from_slice(chunk);
        }
        Ok(())
    }

    fn on_frame_end(&mut self, fin: bool) -> Result<Option<WsEvent>, WsError> {
        let msg = self.msg.as_mut().expect("payload state implies a message");
        if fin {
            let text = msg.kind == MessageKind::Text;
            if msg.compressed {
                let deflate = self.deflate.as_mut().expect("compressed implies deflate");
                let before = msg.buf.len();
                let (limit, too_large) = inflate_limit(msg, &self.config);
                let inflated = deflate
                    .finish_message(&mut msg.buf, limit)
                    .map_err(too_large);
                if text {
                    self.utf8.feed(&msg.buf[before..])?;
                }
                inflated?;
            }
            if text {
                self.utf8.finish()?;
            }
            let msg = self.msg.take().expect("checked above");
            let (kind, data) = (msg.kind, Bytes::from(msg.buf));
            return Ok(Some(if self.config.deliver_fragments {
                WsEvent::Fragment {
                    kind,
                    data,
                    fin: true,
                }
            } else {
                WsEvent::Message { kind, data }
            }));
        }
        if self.config.deliver_fragments {
            let data = std::mem::take(&mut msg.buf);
            msg.delivered += data.len();
            return Ok(Some(WsEvent::Fragment {
                kind: msg.kind,
                data: Bytes::from(data),
                fin: false,
            }));
        }
        Ok(None)
    }

    fn on_control(
        &mut self,
        opcode: OpCode,
        payload: BytesMut,
    ) -> Result<Option<WsEvent>, WsError> {
        match opcode {
            OpCode::Ping => {
                if self.config.auto_pong && self.state.is_open() {
                    self.write_control(OpCode::Pong, &payload);
                }
                Ok(Some(WsEvent::Ping(payload.freeze())))
            }
            OpCode::Pong => Ok(Some(WsEvent::Pong(payload.freeze()))),
            _ => {
                let (code, reason) = parse_close_payload(&payload)?;
                let reason = reason.to_owned();
                if self.state.is_open() {
                    if code == CloseCode::NO_STATUS {
                        self.write_control(OpCode::Close, &[]);
                    } else {
                        self.write_control(OpCode::Close, &code.as_u16().to_be_bytes());
                    }
                }
                self.state = ConnState::Closed;
                self.msg = None;
                Ok(Some(WsEvent::Close { code, reason }))
            }
        }
    }

    fn next_mask(&mut self) -> Option<[u8; 4]> {
        match self.role {
            Role::Server => None,
            Role::Client => {
                // xorshift64*
                let mut x = self.mask_rng;
                x ^= x >> 12;
                x ^= x << 25;
                x ^= x >> 27;
                self.mask_rng = x;
                let r = x.wrapping_mul(0x2545_f491_4f6c_dd1d);
                Some(((r >> 32) as u32).to_ne_bytes())
            }
        }
    }

    fn write_control(&mut self, opcode: OpCode, payload: &[u8]) {
        let mask = self.next_mask();
        encode_frame(&mut self.out, true, false, opcode, payload, mask);
    }

    /// Encodes one message as a single frame into `dst`, compressed if deflate was negotiated
    /// and the message reaches the threshold.
    ///
    /// # Errors
    ///
    /// [`WsError::Closed`] once a Close frame was sent.
    ///
    /// # Examples
    ///
    /// Encode once, write to many connections (a broadcast):
    ///
    /// ```
    /// use bytes::BytesMut;
    /// use rswoole_codec::ws::{Connection, MessageKind, WsConfig};
    ///
    /// let mut conn = Connection::server(WsConfig::default(), None);
    /// let mut frame = BytesMut::new();
    /// conn.encode_message(MessageKind::Binary, &[1, 2, 3], &mut frame)?;
    /// assert_eq!(&frame[..], &[0x82, 0x03, 1, 2, 3]);
    /// assert!(!conn.has_output()); // nothing queued on the connection itself
    /// # Ok::<(), rswoole_codec::ws::WsError>(())
    /// ```
    pub fn encode_message(
        &mut self,
        kind: MessageKind,
        data: &[u8],
        dst: &mut BytesMut,
    ) -> Result<(), WsError> {
        if !self.state.is_open() {
            return Err(WsError::Closed);
        }
        let mask = self.next_mask();
        match &mut self.deflate {
            Some(d) if d.should_compress(data.len()) => {
                let payload = d.compress(data);
                encode_frame(dst, true, true, kind.opcode(), payload, mask);
            }
            _ => encode_frame(dst, true, false, kind.opcode(), data, mask),
        }
        Ok(())
    }

    /// Like [`encode_message`](Self::encode_message), without copying a payload that goes on
    /// the wire as it is (an uncompressed, unmasked frame: the server's side): then only the
    /// frame header is written to `dst` and `true` returned, and the caller sends `data` right
    /// after it (a vectored write), so a large message is not copied into a frame first.
    /// Otherwise (compressed, or masked) the whole frame is written to `dst` and `false`
    /// returned.
    ///
    /// # Errors
    ///
    /// [`WsError::Closed`] once a Close frame was sent.
    ///
    /// # Examples
    ///
    /// ```
    /// use bytes::BytesMut;
    /// use rswoole_codec::ws::{Connection, MessageKind, WsConfig};
    ///
    /// let mut conn = Connection::server(WsConfig::default(), None);
    /// let data = vec![7u8; 70_000];
    /// let mut head = BytesMut::new();
    /// assert!(conn.encode_message_head(MessageKind::Binary, &data, &mut head)?);
    /// // The header of a 70,000-byte binary frame; the payload follows it unchanged.
    /// assert_eq!(&head[..], &[0x82, 127, 0, 0, 0, 0, 0, 0x01, 0x11, 0x70]);
    /// # Ok::<(), rswoole_codec::ws::WsError>(())
    /// ```
    pub fn encode_message_head(
        &mut self,
        kind: MessageKind,
        data: &[u8],
        dst: &mut BytesMut,
    ) -> Result<bool, WsError> {
        if !self.state.is_open() {
            return Err(WsError::Closed);
        }
        let as_is = self.role == Role::Server
            && !self
                .deflate
                .as_ref()
                .is_some_and(|d| d.should_compress(data.len()));
        if !as_is {
            self.encode_message(kind, data, dst)?;
            return Ok(false);
        }
        FrameHeader::whole(kind.opcode(), data.len() as u64).encode(dst);
        Ok(true)
    }

    /// Like [`encode_message`](Self::encode_message), into the connection's output buffer.
    ///
    /// # Errors
    ///
    /// [`WsError::Closed`] once a Close frame was sent.
    ///
    /// # Examples
    ///
    /// ```
    /// use rswoole_codec::ws::{CloseCode, Connection, MessageKind, WsConfig, WsError};
    ///
    /// let mut conn = Connection::server(WsConfig::default(), None);
    /// conn.send_message(MessageKind::Text, b"hi")?;
    /// assert_eq!(&conn.take_output()[..], b"\x81\x02hi");
    /// conn.close(CloseCode::NORMAL, "")?;
    /// assert_eq!(conn.send_message(MessageKind::Text, b"late"), Err(WsError::Closed));
    /// # Ok::<(), WsError>(())
    /// ```
    pub fn send_message(&mut self, kind: MessageKind, data: &[u8]) -> Result<(), WsError> {
        let mut out = std::mem::take(&mut self.out);
        let r = self.encode_message(kind, data, &mut out);
        self.out = out;
        r
    }

    /// Queues a Ping.
    ///
    /// # Errors
    ///
    /// [`WsError::ControlFrameTooLong`] over 125 bytes; [`WsError::Closed`] once a Close frame
    /// was sent.
    ///
    /// # Examples
    ///
    /// ```
    /// use rswoole_codec::ws::{Connection, WsConfig, WsError};
    ///
    /// let mut conn = Connection::server(WsConfig::default(), None);
    /// conn.send_ping(b"t=1")?;
    /// assert_eq!(&conn.take_output()[..], b"\x89\x03t=1");
    /// assert_eq!(conn.send_ping(&[0; 126]), Err(WsError::ControlFrameTooLong));
    /// # Ok::<(), WsError>(())
    /// ```
    pub fn send_ping(&mut self, data: &[u8]) -> Result<(), WsError> {
        self.send_control(OpCode::Ping, data)
    }

    /// Queues an unsolicited Pong (a heartbeat).
    ///
    /// # Errors
    ///
    /// As [`send_ping`](Self::send_ping).
    ///
    /// # Examples
    ///
    /// ```
    /// use rswoole_codec::ws::{Connection, WsConfig};
    ///
    /// let mut conn = Connection::server(WsConfig::default(), None);
    /// conn.send_pong(b"")?;
    /// assert_eq!(&conn.take_output()[..], &[0x8a, 0x00]);
    /// # Ok::<(), rswoole_codec::ws::WsError>(())
    /// ```
    pub fn send_pong(&mut self, data: &[u8]) -> Result<(), WsError> {
        self.send_control(OpCode::Pong, data)
    }

    fn send_control(&mut self, opcode: OpCode, data: &[u8]) -> Result<(), WsError> {
        if !self.state.is_open() {
            return Err(WsError::Closed);
        }
        if data.len() > 125 {
            return Err(WsError::ControlFrameTooLong);
        }
        self.write_control(opcode, data);
        Ok(())
    }

    /// Starts the closing handshake: queues a Close frame with `code` and `reason` and moves
    /// to [`Closing`](ConnState::Closing). [`CloseCode::NO_STATUS`] sends an empty Close.
    ///
    /// # Errors
    ///
    /// [`WsError::Closed`] if a Close was already sent; [`WsError::InvalidCloseCode`] for a
    /// code that may not be sent; [`WsError::ControlFrameTooLong`] if the reason is over
    /// 123 bytes.
    ///
    /// # Examples
    ///
    /// ```
    /// use rswoole_codec::ws::{CloseCode, ConnState, Connection, WsConfig, WsError};
    ///
    /// let mut conn = Connection::server(WsConfig::default(), None);
    /// assert_eq!(conn.close(CloseCode(999), ""), Err(WsError::InvalidCloseCode));
    /// conn.close(CloseCode::NORMAL, "bye")?;
    /// assert_eq!(conn.state(), ConnState::Closing); // until the peer's Close arrives
    /// assert_eq!(&conn.take_output()[..], b"\x88\x05\x03\xe8bye");
    /// assert_eq!(conn.close(CloseCode::NORMAL, ""), Err(WsError::Closed));
    /// # Ok::<(), WsError>(())
    /// ```
    pub fn close(&mut self, code: CloseCode, reason: &str) -> Result<(), WsError> {
        if !self.state.is_open() {
            return Err(WsError::Closed);
        }
        if code == CloseCode::NO_STATUS {
            self.write_control(OpCode::Close, &[]);
        } else {
            if !code.is_sendable() {
                return Err(WsError::InvalidCloseCode);
            }
            if reason.len() > 123 {
                return Err(WsError::ControlFrameTooLong);
            }
            let mut payload = [0u8; 125];
            payload[..2].copy_from_slice(&code.as_u16().to_be_bytes());
            payload[2..2 + reason.len()].copy_from_slice(reason.as_bytes());
            self.write_control(OpCode::Close, &payload[..2 + reason.len()]);
        }
        self.state = ConnState::Closing;
        Ok(())
    }

    /// Whether there are bytes to write.
    pub fn has_output(&self) -> bool {
        !self.out.is_empty()
    }

    /// Takes the bytes to write (replies, pongs, closes, sent messages).
    ///
    /// # Examples
    ///
    /// ```
    /// use rswoole_codec::ws::{Connection, MessageKind, WsConfig};
    ///
    /// let mut conn = Connection::server(WsConfig::default(), None);
    /// conn.send_message(MessageKind::Text, b"a")?;
    /// assert!(conn.has_output());
    /// let out = conn.take_output(); // write these bytes to the socket
    /// assert_eq!(&out[..], b"\x81\x01a");
    /// assert!(!conn.has_output());
    /// # Ok::<(), rswoole_codec::ws::WsError>(())
    /// ```
    pub fn take_output(&mut self) -> BytesMut {
        self.out.split()
    }

    /// The output buffer itself, for callers that write part of it and `advance` past it.
    ///
    /// # Examples
    ///
    /// A short write: drop what the socket took, keep the rest for later.
    ///
    /// ```
    /// use bytes::Buf;
    /// use rswoole_codec::ws::{Connection, MessageKind, WsConfig};
    ///
    /// let mut conn = Connection::server(WsConfig::default(), None);
    /// conn.send_message(MessageKind::Binary, &[9; 10])?;
    /// let written = 4; // what `write` returned
    /// conn.output_mut().advance(written);
    /// assert_eq!(conn.output_mut().len(), 12 - written);
    /// # Ok::<(), rswoole_codec::ws::WsError>(())
    /// ```
    pub fn output_mut(&mut self) -> &mut BytesMut {
        &mut self.out
    }
}

/// How far `msg.buf` may grow while inflating the current frame: the message limit, or the
/// frame limit if that comes first; and the error to report when it is passed.
fn inflate_limit(msg: &Message, config: &WsConfig) -> (usize, fn(WsError) -> WsError) {
    let message_limit = config.max_message_size.saturating_sub(msg.delivered);
    let frame_limit = msg.frame_start.saturating_add(config.max_frame_size);
    if frame_limit < message_limit {
        (frame_limit, |e| match e {
            WsError::MessageTooLarge => WsError::FrameTooLarge,
            e => e,
        })
    } else {
        (message_limit, |e| e)
    }
}
