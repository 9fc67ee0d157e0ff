//! WebSocket settings (`Settings::websocket`).

use std::time::Duration;

use crate::base::error::Error;

/// Default for [`WebSocketSettings::max_frame_size`]: 16 MiB.
pub const DEFAULT_MAX_FRAME_SIZE: usize = rswoole_codec::ws::conn::DEFAULT_MAX_FRAME_SIZE;

/// Default for [`WebSocketSettings::max_message_size`]: 64 MiB.
pub const DEFAULT_MAX_MESSAGE_SIZE: usize = rswoole_codec::ws::conn::DEFAULT_MAX_MESSAGE_SIZE;

/// Default for [`WebSocketSettings::pong_timeout`].
pub const DEFAULT_PONG_TIMEOUT: Duration = Duration::from_secs(10);

/// Default for [`WebSocketSettings::close_timeout`].
pub const DEFAULT_CLOSE_TIMEOUT: Duration = Duration::from_secs(5);

/// WebSocket settings (`Settings::websocket`).
///
/// # Examples
/// ```
/// use std::time::Duration;
/// use rswoole::{websocket::WebSocketSettings, Settings};
/// let s = Settings::default().websocket(WebSocketSettings::default().ping_interval(Some(Duration::from_secs(30))));
/// assert!(s.websocket.compression);
/// ```
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct WebSocketSettings {
    /// Negotiate permessage-deflate with clients that offer it. Default `true`.
    pub compression: bool,
    /// Messages shorter than this are sent uncompressed. Default 64.
    pub compression_threshold: usize,
    /// zlib level for compressed messages (0–9). Default 1.
    pub compression_level: u32,
    /// Let permessage-deflate keep its LZ77 window from one message to the next, in both
    /// directions. Default `false`, as in Swoole and uWebSockets: the server answers every
    /// offer with `server_no_context_takeover; client_no_context_takeover` (RFC 7692 §7.1.1:
    /// a server may ask it of any client), so no connection carries compression state
    /// between messages: no zlib window held per connection while it is idle, and every
    /// compressed connection can move to a new binary on `rswoole upgrade`. `true` gives
    /// better ratios on chatty connections, at up to 2 × 32 KiB of windows (plus zlib's
    /// state) per connection, and such a connection drains on upgrade instead of moving.
    pub compression_context_takeover: bool,
    /// Largest frame payload accepted, exactly: a frame of this many bytes passes, one byte
    /// more closes the connection with 1009. A compressed frame counts its inflated size (on
    /// the wire it may be up to an eighth larger, plus 1 KiB, for data that does not
    /// compress). Default [`DEFAULT_MAX_FRAME_SIZE`].
    pub max_frame_size: usize,
    /// Largest message, all its frames together, exactly (inflated size if compressed);
    /// larger ones close with 1009. A reply to a message this large needs
    /// `buffer_output_size` above it too. Default [`DEFAULT_MAX_MESSAGE_SIZE`].
    pub max_message_size: usize,
    /// Ping a connection that was silent this long; `None` (default) never pings.
    pub ping_interval: Option<Duration>,
    /// A pinged connection that sends nothing for this long is closed (`on_close` runs).
    /// Default [`DEFAULT_PONG_TIMEOUT`].
    pub pong_timeout: Duration,
    /// After [`Handle::disconnect`](crate::Handle::disconnect), how long to wait for the client's Close before cutting
    /// the connection. Default [`DEFAULT_CLOSE_TIMEOUT`].
    pub close_timeout: Duration,
    /// Give Ping and Pong frames to `on_message` too (they are answered automatically
    /// either way). Default `false`.
    pub deliver_control_frames: bool,
}

impl Default for WebSocketSettings {
    fn default() -> Self {
        WebSocketSettings {
            compression: true,
            compression_threshold: rswoole_codec::ws::deflate::DEFAULT_DEFLATE_THRESHOLD,
            compression_level: rswoole_codec::ws::deflate::DEFAULT_DEFLATE_LEVEL,
            compression_context_takeover: false,
            max_frame_size: DEFAULT_MAX_FRAME_SIZE,
            max_message_size: DEFAULT_MAX_MESSAGE_SIZE,
            ping_interval: None,
            pong_timeout: DEFAULT_PONG_TIMEOUT,
            close_timeout: DEFAULT_CLOSE_TIMEOUT,
            deliver_control_frames: false,
        }
    }
}

impl WebSocketSettings {
    /// Sets [`compression`](Self::compression), for building the settings in one expression.
    #[must_use]
    pub fn compression(mut self, compression: bool) -> Self {
        self.compression = compression;
        self
    }

    /// Sets [`compression_context_takeover`](Self::compression_context_takeover), for building
    /// the settings in one expression:
    /// `WebSocketSettings::default().compression_context_takeover(true)`.
    #[must_use]
    pub fn compression_context_takeover(mut self, takeover: bool) -> Self {
        self.compression_context_takeover = takeover;
        self
    }

    /// Sets [`compression_threshold`](Self::compression_threshold), for building the settings in one expression.
    #[must_use]
    pub fn compression_threshold(mut self, compression_threshold: usize) -> Self {
        self.compression_threshold = compression_threshold;
        self
    }

    /// Sets [`compression_level`](Self::compression_level), for building the settings in one expression.
    #[must_use]
    pub fn compression_level(mut self, compression_level: u32) -> Self {
        self.compression_level = compression_level;
        self
    }

    /// Sets [`max_frame_size`](Self::max_frame_size), for building the settings in one expression.
    #[must_use]
    pub fn max_frame_size(mut self, max_frame_size: usize) -> Self {
        self.max_frame_size = max_frame_size;
        self
    }

    /// Sets [`max_message_size`](Self::max_message_size), for building the settings in one expression.
    #[must_use]
    pub fn max_message_size(mut self, max_message_size: usize) -> Self {
        self.max_message_size = max_message_size;
        self
    }

    /// Sets [`ping_interval`](Self::ping_interval), for building the settings in one expression.
    #[must_use]
    pub fn ping_interval(mut self, ping_interval: Option<Duration>) -> Self {
        self.ping_interval = ping_interval;
        self
    }

    /// Sets [`pong_timeout`](Self::pong_timeout), for building the settings in one expression.
    #[must_use]
    pub fn pong_timeout(mut self, pong_timeout: Duration) -> Self {
        self.pong_timeout = pong_timeout;
        self
    }

    /// Sets [`close_timeout`](Self::close_timeout), for building the settings in one expression.
    #[must_use]
    pub fn close_timeout(mut self, close_timeout: Duration) -> Self {
        self.close_timeout = close_timeout;
        self
    }

    /// Sets [`deliver_control_frames`](Self::deliver_control_frames), for building the settings in one expression.
    #[must_use]
    pub fn deliver_control_frames(mut self, deliver_control_frames: bool) -> Self {
        self.deliver_control_frames = deliver_control_frames;
        self
    }
}

impl WebSocketSettings {
    /// Checks the values at start (nothing is clamped silently).
    pub(crate) fn validate(&self) -> Result<(), Error> {
        let bad = |name, reason: String| Err(Error::InvalidSetting { name, reason });
        if self.compression_level > 9 {
            return bad(
                "websocket.compression_level",
                format!("{} is not a zlib level (0-9)", self.compression_level),
            );
        }
        if self.max_frame_size == 0 || self.max_message_size == 0 {
            return bad(
                "websocket.max_frame_size",
                "max_frame_size and max_message_size must be at least 1 byte".into(),
            );
        }
        if self.ping_interval.is_some_and(|d| d.is_zero()) {
            return bad(
                "websocket.ping_interval",
                "zero: use None to never ping".into(),
            );
        }
        if self.pong_timeout.is_zero() || self.close_timeout.is_zero() {
            return bad(
                "websocket.pong_timeout",
                "pong_timeout and close_timeout must be above zero".into(),
            );
        }
        Ok(())
    }
}
