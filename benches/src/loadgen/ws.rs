//! A lean WebSocket client connection for the generator's receive path.
//!
//! The generator must cost far less per message than the server it measures. A general
//! WebSocket library allocates and copies every message and wakes the task per frame; here
//! a connection waits until its socket is readable, reads everything available into the
//! worker thread's one large buffer, and hands every complete frame to the caller as a slice
//! of that buffer: no allocation and no copy per message, one syscall for all the frames a
//! read returns, and one receive timestamp for them (they arrived together). Only an
//! incomplete frame at the end of a read is kept, in the connection's own small buffer.
//!
//! The handshake (RFC 6455 §4) is checked like any client checks it (status 101, the
//! `Sec-WebSocket-Accept` digest, the subprotocol); pings are answered, fragmented messages
//! reassembled, close frames reported with their code and echoed. Compression is never
//! offered, so frames with RSV bits set are protocol errors.

use std::cell::RefCell;
use std::io;

use tokio::io::AsyncWriteExt;
use tokio::net::TcpStream;
use tokio_tungstenite::tungstenite::handshake::client::generate_key;
use tokio_tungstenite::tungstenite::handshake::derive_accept_key;

/// Why a connection failed.
#[derive(Debug, thiserror::Error)]
pub enum WsError {
    #[error("i/o: {0}")]
    Io(#[from] io::Error),
    #[error("handshake: {0}")]
    Handshake(String),
    #[error("protocol: {0}")]
    Protocol(&'static str),
}

/// One complete message or control event from the server.
#[derive(Debug)]
pub enum Event<'a> {
    Text(&'a [u8]),
    Binary(&'a [u8]),
    /// The server's close frame: its code and reason, if it gave one.
    Close(Option<(u16, String)>),
}

/// Bytes one read may take: many frames of many connections pass through it, one at a time.
const READ_BUFFER: usize = 256 * 1024;

thread_local! {
    static READ_BUF: RefCell<Vec<u8>> = RefCell::new(vec![0; READ_BUFFER]);
}

/// See the module documentation.
pub struct WsConn {
    stream: TcpStream,
    /// An incomplete frame left over from the previous read.
    partial: Vec<u8>,
    /// A fragmented message being reassembled: its opcode and payload so far.
    fragments: Option<(u8, Vec<u8>)>,
    /// Control replies (pongs, the close echo) to write after the current read.
    replies: Vec<u8>,
    mask_state: u32,
    closed: bool,
}

fn mask_seed() -> u32 {
    let t = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.subsec_nanos())
        .unwrap_or(1);
    t | 1
}

impl WsConn {
    /// Performs the opening handshake for `path` on `host` over `stream`, offering
    /// `protocols` (first preferred); returns the connection and the chosen subprotocol.
    pub async fn handshake(
        mut stream: TcpStream,
        host: &str,
        path: &str,
        protocols: &[String],
    ) -> Result<(WsConn, Option<String>), WsError> {
        let key = generate_key();
        let mut req = format!(
            "GET {path} HTTP/1.1\r\nHost: {host}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
             Sec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: 13\r\n"
        );
        if !protocols.is_empty() {
            req.push_str(&format!(
                "Sec-WebSocket-Protocol: {}\r\n",
                protocols.join(", ")
            ));
        }
        req.push_str("\r\n");
        stream.write_all(req.as_bytes()).await?;
        let mut head = Vec::with_capacity(512);
        let end = loop {
            stream.readable().await?;
            let mut chunk = [0u8; 1024];
            match stream.try_read(&mut chunk) {
                Ok(0) => return Err(WsError::Handshake("connection closed".into())),
                Ok(n) => head.extend_from_slice(&chunk[..n]),
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => continue,
                Err(e) => return Err(e.into()),
            }
            if let Some(i) = head.windows(4).position(|w| w == b"\r\n\r\n") {
                break i + 4;
            }
            if head.len() > 16 * 1024 {
                return Err(WsError::Handshake("response head over 16 KiB".into()));
            }
        };
        let text = String::from_utf8_lossy(&head[..end]).into_owned();
        let mut lines = text.split("\r\n");
        let status = lines.next().unwrap_or_default();
        if !status.starts_with("HTTP/1.1 101") {
            return Err(WsError::Handshake(format!("unexpected status: {status}")));
        }
        let mut accept = None;
        let mut chosen = None;
        for l in lines {
            if let Some((name, value)) = l.split_once(':') {
                let value = value.trim();
                if name.eq_ignore_ascii_case("sec-websocket-accept") {
                    accept = Some(value.to_string());
                } else if name.eq_ignore_ascii_case("sec-websocket-protocol") {
                    chosen = Some(value.to_string());
                } else if name.eq_ignore_ascii_case("sec-websocket-extensions") {
                    return Err(WsError::Handshake(format!(
                        "extension not offered: {value}"
                    )));
                }
            }
        }
        if accept.as_deref() != Some(derive_accept_key(key.as_bytes()).as_str()) {
            return Err(WsError::Handshake("bad Sec-WebSocket-Accept".into()));
        }
        if let Some(p) = &chosen {
            if !protocols.contains(p) {
                return Err(WsError::Handshake(format!("subprotocol not offered: {p}")));
            }
        }
        let conn = WsConn {
            stream,
            partial: head[end..].to_vec(),
            fragments: None,
            replies: Vec::new(),
            mask_state: mask_seed(),
            closed: false,
        };
        Ok((conn, chosen))
    }

    /// The socket (for TCP-state inspection).
    pub fn stream(&self) -> &TcpStream {
        &self.stream
    }

    fn next_mask(&mut self) -> [u8; 4] {
        // xorshift32: masks need not be secret here, only present.
        let mut x = self.mask_state;
        x ^= x << 13;
        x ^= x >> 17;
        x ^= x << 5;
        self.mask_state = x;
        x.to_le_bytes()
    }

    fn encode(&mut self, opcode: u8, payload: &[u8], out_to_replies: bool) -> Vec<u8> {
        let mask = self.next_mask();
        let mut f = Vec::with_capacity(payload.len() + 14);
        f.push(0x80 | opcode);
        match payload.len() {
            n if n < 126 => f.push(0x80 | n as u8),
            n if n <= u16::MAX as usize => {
                f.push(0x80 | 126);
                f.extend_from_slice(&(n as u16).to_be_bytes());
            }
            n => {
                f.push(0x80 | 127);
                f.extend_from_slice(&(n as u64).to_be_bytes());
            }
        }
        f.extend_from_slice(&mask);
        f.extend(payload.iter().enumerate().map(|(i, b)| b ^ mask[i & 3]));
        if out_to_replies {
            self.replies.extend_from_slice(&f);
            Vec::new()
        } else {
            f
        }
    }

    /// Sends one text message.
    pub async fn send_text(&mut self, text: &str) -> io::Result<()> {
        let f = self.encode(0x1, text.as_bytes(), false);
        self.stream.write_all(&f).await
    }

    /// Sends a close frame (best effort: the peer may be gone).
    pub async fn close(&mut self, code: u16) {
        if self.closed {
            return;
        }
        self.closed = true;
        let f = self.encode(0x8, &code.to_be_bytes(), false);
        let _ = self.stream.write_all(&f).await;
    }

    /// Waits until the socket is readable.
    pub async fn readable(&self) -> io::Result<()> {
        self.stream.readable().await
    }

    /// Reads what the socket has (without waiting) and calls `each` for every complete
    /// message, then writes any control replies. Returns `Ok(false)` at the end of the
    /// connection (EOF or after a close frame).
    pub async fn read_available(
        &mut self,
        mut each: impl FnMut(Event<'_>),
    ) -> Result<bool, WsError> {
        let open = READ_BUF.with(|b| {
            let mut buf = b.borrow_mut();
            let n = match self.stream.try_read(&mut buf) {
                Ok(0) => return Ok(false),
                Ok(n) => n,
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return Ok(true),
                Err(e) => return Err(WsError::Io(e)),
            };
            if self.partial.is_empty() {
                let used = self.frames(&buf[..n], &mut each)?;
                self.partial.extend_from_slice(&buf[used..n]);
            } else {
                let mut data = std::mem::take(&mut self.partial);
                data.extend_from_slice(&buf[..n]);
                let used = self.frames(&data, &mut each)?;
                data.drain(..used);
                self.partial = data;
            }
            Ok(!self.closed)
        })?;
        if !self.replies.is_empty() {
            let r = std::mem::take(&mut self.replies);
            // The peer may already be gone after a close; that is the end anyway.
            let _ = self.stream.write_all(&r).await;
        }
        Ok(open)
    }

    /// Handles every complete frame at the start of `data`; returns the bytes consumed.
    fn frames(&mut self, data: &[u8], each: &mut impl FnMut(Event<'_>)) -> Result<usize, WsError> {
        let mut at = 0;
        while !self.closed {
            let rest = &data[at..];
            if rest.len() < 2 {
                break;
            }
            let (b0, b1) = (rest[0], rest[1]);
            if b1 & 0x80 != 0 {
                return Err(WsError::Protocol("masked server frame"));
            }
            if b0 & 0x70 != 0 {
                return Err(WsError::Protocol("RSV bits without an extension"));
            }
            let (len, head) = match b1 & 0x7f {
                126 if rest.len() >= 4 => (u16::from_be_bytes([rest[2], rest[3]]) as usize, 4),
                127 if rest.len() >= 10 => (
                    u64::from_be_bytes(rest[2..10].try_into().expect("8 bytes")) as usize,
                    10,
                ),
                126 | 127 => break,
                n => (n as usize, 2),
            };
            if rest.len() < head + len {
                break;
            }
            let payload = &rest[head..head + len];
            at += head + len;
            let fin = b0 & 0x80 != 0;
            match b0 & 0x0f {
                op @ (0x1 | 0x2) if fin && self.fragments.is_none() => each(if op == 0x1 {
                    Event::Text(payload)
                } else {
                    Event::Binary(payload)
                }),
                op @ (0x1 | 0x2) if self.fragments.is_none() => {
                    self.fragments = Some((op, payload.to_vec()));
                }
                0x0 => {
                    let Some((op, buf)) = self.fragments.as_mut() else {
                        return Err(WsError::Protocol("continuation without a message"));
                    };
                    buf.extend_from_slice(payload);
                    if fin {
                        let (op, buf) = (*op, std::mem::take(buf));
                        self.fragments = None;
                        each(if op == 0x1 {
                            Event::Text(&buf)
                        } else {
                            Event::Binary(&buf)
                        });
                    }
                }
                0x1 | 0x2 => return Err(WsError::Protocol("new message inside a fragmented one")),
                0x9 => {
                    let p = payload.to_vec();
                    self.encode(0xA, &p, true);
                }
                0xA => {}
                0x8 => {
                    let close = (payload.len() >= 2).then(|| {
                        (
                            u16::from_be_bytes([payload[0], payload[1]]),
                            String::from_utf8_lossy(&payload[2..]).into_owned(),
                        )
                    });
                    let code = close.as_ref().map_or(1000, |c| c.0);
                    each(Event::Close(close));
                    // Echo the close, as RFC 6455 asks.
                    self.encode(0x8, &code.to_be_bytes(), true);
                    self.closed = true;
                }
                _ => return Err(WsError::Protocol("unknown opcode")),
            }
        }
        Ok(at)
    }
}
