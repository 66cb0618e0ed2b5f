//! Subscribers on plain TCP (`--raw-subscribers`), so the generator is never what limits a
//! fan-out measurement: the WebSocket handshake is one fixed request, and the server's frames
//! (unmasked, RFC 6455 §5.2) are read into one reused buffer and handed to the caller in place —
//! no allocation, no UTF-8 check, no copy per frame. Only what a subscriber needs is handled:
//! text and continuation frames, ping (answered), close.

use anyhow::{bail, Context};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// A subscriber connection after its handshake.
pub struct RawConn {
    stream: TcpStream,
    buf: Vec<u8>,
    start: usize,
    end: usize,
}

/// `ws://host:port/path` → (`host:port`, `/path`).
fn split_url(url: &str) -> anyhow::Result<(&str, &str)> {
    let rest = url.strip_prefix("ws://").context("--raw-subscribers needs a ws:// URL")?;
    Ok(match rest.find('/') {
        Some(i) => (&rest[..i], &rest[i..]),
        None => (rest, "/"),
    })
}

/// A masked client frame (the mask is all zeros: the payload goes as it is).
fn client_frame(opcode: u8, payload: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(payload.len() + 14);
    out.push(0x80 | opcode);
    match payload.len() {
        n if n < 126 => out.push(0x80 | n as u8),
        n if n <= u16::MAX as usize => {
            out.push(0x80 | 126);
            out.extend_from_slice(&(n as u16).to_be_bytes());
        }
        n => {
            out.push(0x80 | 127);
            out.extend_from_slice(&(n as u64).to_be_bytes());
        }
    }
    out.extend_from_slice(&[0, 0, 0, 0]);
    out.extend_from_slice(payload);
    out
}

/// A standard upgrade request (RFC 6455 §4.1): a fresh key of 16 random bytes, base64. Strict
/// servers (Node's `ws`, which the original runs on) refuse any other key with `400`.
fn upgrade_request(host: &str, path: &str) -> String {
    let key = tokio_tungstenite::tungstenite::handshake::client::generate_key();
    format!(
        "GET {path} HTTP/1.1\r\nHost: {host}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
         Sec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: 13\r\n\r\n"
    )
}

impl RawConn {
    /// Connects and upgrades.
    pub async fn connect(url: &str) -> anyhow::Result<RawConn> {
        let (host, path) = split_url(url)?;
        let mut stream = TcpStream::connect(host).await.with_context(|| format!("connect {host}"))?;
        stream.set_nodelay(true)?;
        let request = upgrade_request(host, path);
        stream.write_all(request.as_bytes()).await?;
        let mut conn = RawConn { stream, buf: vec![0; 64 * 1024], start: 0, end: 0 };
        loop {
            if let Some(i) = conn.buf[..conn.end].windows(4).position(|w| w == b"\r\n\r\n") {
                if !conn.buf.starts_with(b"HTTP/1.1 101") {
                    bail!("the upgrade was refused: {}", String::from_utf8_lossy(&conn.buf[..i]));
                }
                conn.start = i + 4;
                return Ok(conn);
            }
            conn.fill().await?;
        }
    }

    /// Sends a text frame.
    pub async fn send_text(&mut self, text: &str) -> anyhow::Result<()> {
        self.stream.write_all(&client_frame(0x1, text.as_bytes())).await?;
        Ok(())
    }

    /// Reads more bytes after what is buffered (moving the unread part to the front first, and
    /// growing the buffer only for a frame larger than it).
    async fn fill(&mut self) -> anyhow::Result<()> {
        if self.start > 0 && self.start == self.end {
            self.start = 0;
            self.end = 0;
        }
        if self.end == self.buf.len() {
            if self.start > 0 {
                self.buf.copy_within(self.start..self.end, 0);
                self.end -= self.start;
                self.start = 0;
            } else {
                self.buf.resize(self.buf.len() * 2, 0);
            }
        }
        let n = self.stream.read(&mut self.buf[self.end..]).await?;
        if n == 0 {
            bail!("connection closed");
        }
        self.end += n;
        Ok(())
    }

    /// Calls `on_text` with the payload of every text frame until `on_text` returns `false` or
    /// the connection closes.
    pub async fn read_texts(&mut self, mut on_text: impl FnMut(&[u8]) -> bool) -> anyhow::Result<()> {
        loop {
            let avail = &self.buf[self.start..self.end];
            let header = match avail {
                [_, b1, ..] if b1 & 0x7f < 126 => Some((2, (b1 & 0x7f) as usize)),
                [_, b1, a, b, ..] if b1 & 0x7f == 126 => Some((4, u16::from_be_bytes([*a, *b]) as usize)),
                [_, b1, rest @ ..] if b1 & 0x7f == 127 && rest.len() >= 8 => {
                    let mut len = [0u8; 8];
                    len.copy_from_slice(&rest[..8]);
                    Some((10, u64::from_be_bytes(len) as usize))
                }
                _ => None,
            };
            let Some((head, len)) = header.filter(|(head, len)| avail.len() >= head + len) else {
                self.fill().await?;
                continue;
            };
            let opcode = avail[0] & 0x0f;
            let (from, to) = (self.start + head, self.start + head + len);
            self.start = to;
            match opcode {
                0x0 | 0x1 if !on_text(&self.buf[from..to]) => return Ok(()),
                0x8 => return Ok(()),
                0x9 => {
                    let pong = client_frame(0xA, &self.buf[from..to]);
                    self.stream.write_all(&pong).await?;
                }
                _ => {}
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn frames_are_masked_with_the_length_in_the_form_its_size_needs() {
        assert_eq!(client_frame(1, b"hi"), vec![0x81, 0x82, 0, 0, 0, 0, b'h', b'i']);
        let mid = client_frame(1, &[b'x'; 300]);
        assert_eq!(&mid[..4], &[0x81, 0x80 | 126, 1, 44]);
        let big = client_frame(1, &vec![b'x'; 70_000]);
        assert_eq!(&big[..2], &[0x81, 0x80 | 127]);
        assert_eq!(big.len(), 70_000 + 14);
        assert_eq!(split_url("ws://127.0.0.1:3200/ws").unwrap(), ("127.0.0.1:3200", "/ws"));
        assert!(split_url("http://x").is_err());
    }

    #[test]
    fn the_upgrade_request_carries_a_key_of_sixteen_bytes_as_strict_servers_require() {
        let request = upgrade_request("127.0.0.1:3200", "/ws");
        let key = request.lines().find_map(|l| l.strip_prefix("Sec-WebSocket-Key: ")).unwrap();
        // Node's `ws` accepts exactly /^[+/0-9A-Za-z]{22}==$/.
        assert_eq!(key.len(), 24, "{key}");
        assert!(key.ends_with("==") && key[..22].bytes().all(|b| b.is_ascii_alphanumeric() || b == b'+' || b == b'/'));
        assert_ne!(key, upgrade_request("h", "/").lines().find_map(|l| l.strip_prefix("Sec-WebSocket-Key: ")).unwrap());
        assert!(request.starts_with("GET /ws HTTP/1.1\r\nHost: 127.0.0.1:3200\r\n") && request.ends_with("\r\n\r\n"));
    }
}
