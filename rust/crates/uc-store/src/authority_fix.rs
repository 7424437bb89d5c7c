//! etcdctl's maintenance commands (endpoint status, endpoint hashkv,
//! snapshot save, defrag) dial one endpoint each and send it, as given, as
//! the HTTP/2 `:authority` — `http://10.1.0.11:2379` when the operator wrote
//! the scheme. grpc-go accepts that; Rust's h2 rejects the request as
//! malformed. This wraps each client connection: it decodes the first
//! request's headers, and if their `:authority` is not a valid authority it
//! rewrites every header block of the connection with the scheme stripped;
//! otherwise it steps aside and passes the bytes through untouched.

use std::io;
use std::pin::Pin;
use std::task::{Context, Poll};

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::TcpStream;
use tonic::transport::server::{Connected, TcpConnectInfo};

const PREFACE_LEN: usize = 24;
const FRAME_HEADER_LEN: usize = 9;
const HEADERS: u8 = 0x1;
const CONTINUATION: u8 = 0x9;
const END_STREAM: u8 = 0x1;
const END_HEADERS: u8 = 0x4;
const PADDED: u8 = 0x8;
const PRIORITY: u8 = 0x20;
/// SETTINGS_MAX_FRAME_SIZE's initial value; h2's server keeps it.
const MAX_FRAME: usize = 16_384;

enum Mode {
    /// Before the first complete header block.
    Undecided,
    PassThrough,
    Rewrite,
}

/// A header block being collected: the frames as received, and its parts.
struct PendingBlock {
    raw: Vec<u8>,
    stream: u32,
    flags: u8,
    priority: Option<[u8; 5]>,
    fragment: Vec<u8>,
}

pub struct AuthorityFix {
    inner: TcpStream,
    mode: Mode,
    preface_left: usize,
    input: Vec<u8>,
    output: Vec<u8>,
    out_pos: usize,
    pending: Option<PendingBlock>,
    decoder: fluke_hpack::Decoder<'static>,
    encoder: fluke_hpack::Encoder<'static>,
}

impl AuthorityFix {
    pub fn new(inner: TcpStream) -> AuthorityFix {
        AuthorityFix {
            inner,
            mode: Mode::Undecided,
            preface_left: PREFACE_LEN,
            input: Vec::new(),
            output: Vec::new(),
            out_pos: 0,
            pending: None,
            decoder: fluke_hpack::Decoder::new(),
            encoder: fluke_hpack::Encoder::new(),
        }
    }

    /// Moves what can be decided from `input` to `output`.
    fn process(&mut self) -> io::Result<()> {
        if self.preface_left > 0 {
            let n = self.preface_left.min(self.input.len());
            self.output.extend(self.input.drain(..n));
            self.preface_left -= n;
        }
        if self.preface_left > 0 {
            return Ok(());
        }
        loop {
            if let Mode::PassThrough = self.mode {
                self.output.append(&mut self.input);
                return Ok(());
            }
            if self.input.len() < FRAME_HEADER_LEN {
                return Ok(());
            }
            let len = usize::from(self.input[0]) << 16
                | usize::from(self.input[1]) << 8
                | usize::from(self.input[2]);
            if self.input.len() < FRAME_HEADER_LEN + len {
                return Ok(());
            }
            let frame: Vec<u8> = self.input.drain(..FRAME_HEADER_LEN + len).collect();
            self.frame(frame)?;
        }
    }

    fn frame(&mut self, frame: Vec<u8>) -> io::Result<()> {
        let (kind, flags) = (frame[3], frame[4]);
        let stream = u32::from_be_bytes([frame[5], frame[6], frame[7], frame[8]]) & 0x7fff_ffff;
        let payload = &frame[FRAME_HEADER_LEN..];
        match kind {
            HEADERS => {
                let mut body = payload;
                let mut pad = 0;
                if flags & PADDED != 0 {
                    pad = usize::from(*body.first().ok_or_else(|| malformed("padding"))?);
                    body = &body[1..];
                }
                let priority = if flags & PRIORITY != 0 {
                    let p: [u8; 5] = body
                        .get(..5)
                        .and_then(|p| p.try_into().ok())
                        .ok_or_else(|| malformed("priority"))?;
                    body = &body[5..];
                    Some(p)
                } else {
                    None
                };
                let end = body
                    .len()
                    .checked_sub(pad)
                    .ok_or_else(|| malformed("padding"))?;
                let block = PendingBlock {
                    fragment: body[..end].to_vec(),
                    raw: frame.clone(),
                    stream,
                    flags,
                    priority,
                };
                if flags & END_HEADERS != 0 {
                    self.block(block)
                } else {
                    self.pending = Some(block);
                    Ok(())
                }
            }
            CONTINUATION => {
                let Some(mut block) = self.pending.take() else {
                    // Not ours to judge: h2 answers it with a protocol error.
                    self.output.extend_from_slice(&frame);
                    return Ok(());
                };
                block.fragment.extend_from_slice(payload);
                block.raw.extend_from_slice(&frame);
                if flags & END_HEADERS != 0 {
                    self.block(block)
                } else {
                    self.pending = Some(block);
                    Ok(())
                }
            }
            _ => {
                self.output.extend_from_slice(&frame);
                Ok(())
            }
        }
    }

    /// A complete header block: decided, then passed or rewritten.
    fn block(&mut self, block: PendingBlock) -> io::Result<()> {
        let headers = self
            .decoder
            .decode(&block.fragment)
            .map_err(|e| malformed(&format!("header block: {e:?}")))?;
        if let Mode::Undecided = self.mode {
            let bad = headers.iter().any(|(name, value)| {
                name.as_slice() == b":authority"
                    && ::http::uri::Authority::try_from(value.as_slice()).is_err()
            });
            if !bad {
                self.mode = Mode::PassThrough;
                self.output.extend_from_slice(&block.raw);
                return Ok(());
            }
            tracing::debug!("client sends its endpoint URL as :authority; rewriting its headers");
            self.mode = Mode::Rewrite;
        }
        let fixed: Vec<(Vec<u8>, Vec<u8>)> = headers
            .into_iter()
            .map(|(name, value)| {
                if name.as_slice() == b":authority" {
                    (name, strip_scheme(&value))
                } else {
                    (name, value)
                }
            })
            .collect();
        let encoded = self
            .encoder
            .encode(fixed.iter().map(|(n, v)| (n.as_slice(), v.as_slice())));
        self.write_block(&block, &encoded);
        Ok(())
    }

    /// HEADERS (and CONTINUATION frames beyond the frame size) carrying
    /// `encoded`, without padding.
    fn write_block(&mut self, block: &PendingBlock, encoded: &[u8]) {
        let priority_len = block.priority.map_or(0, |_| 5);
        let first = encoded.len().min(MAX_FRAME - priority_len);
        let (head, mut rest) = encoded.split_at(first);
        let mut flags = block.flags & (END_STREAM | PRIORITY);
        if rest.is_empty() {
            flags |= END_HEADERS;
        }
        let mut payload = Vec::with_capacity(priority_len + head.len());
        if let Some(p) = block.priority {
            payload.extend_from_slice(&p);
        }
        payload.extend_from_slice(head);
        self.write_frame(HEADERS, flags, block.stream, &payload);
        while !rest.is_empty() {
            let n = rest.len().min(MAX_FRAME);
            let (chunk, tail) = rest.split_at(n);
            rest = tail;
            let flags = if rest.is_empty() { END_HEADERS } else { 0 };
            self.write_frame(CONTINUATION, flags, block.stream, chunk);
        }
    }

    fn write_frame(&mut self, kind: u8, flags: u8, stream: u32, payload: &[u8]) {
        let len = payload.len();
        self.output.extend_from_slice(&[
            (len >> 16) as u8,
            (len >> 8) as u8,
            len as u8,
            kind,
            flags,
        ]);
        self.output.extend_from_slice(&stream.to_be_bytes());
        self.output.extend_from_slice(payload);
    }
}

fn strip_scheme(value: &[u8]) -> Vec<u8> {
    let text = String::from_utf8_lossy(value);
    let rest = text
        .strip_prefix("http://")
        .or_else(|| text.strip_prefix("https://"))
        .unwrap_or(&text);
    rest.trim_end_matches('/').as_bytes().to_vec()
}

fn malformed(what: &str) -> io::Error {
    io::Error::new(
        io::ErrorKind::InvalidData,
        format!("malformed HTTP/2 {what}"),
    )
}

impl AsyncRead for AuthorityFix {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        loop {
            if this.out_pos < this.output.len() {
                let n = buf.remaining().min(this.output.len() - this.out_pos);
                buf.put_slice(&this.output[this.out_pos..this.out_pos + n]);
                this.out_pos += n;
                if this.out_pos == this.output.len() {
                    this.output.clear();
                    this.out_pos = 0;
                }
                return Poll::Ready(Ok(()));
            }
            if let Mode::PassThrough = this.mode {
                if this.input.is_empty() {
                    return Pin::new(&mut this.inner).poll_read(cx, buf);
                }
            }
            let mut chunk = [0u8; 16 * 1024];
            let mut read = ReadBuf::new(&mut chunk);
            match Pin::new(&mut this.inner).poll_read(cx, &mut read) {
                Poll::Pending => return Poll::Pending,
                Poll::Ready(Err(err)) => return Poll::Ready(Err(err)),
                Poll::Ready(Ok(())) => {
                    if read.filled().is_empty() {
                        // End of stream: whatever is buffered was incomplete.
                        return Poll::Ready(Ok(()));
                    }
                    this.input.extend_from_slice(read.filled());
                    this.process()?;
                }
            }
        }
    }
}

impl AsyncWrite for AuthorityFix {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.get_mut().inner).poll_write(cx, buf)
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().inner).poll_flush(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().inner).poll_shutdown(cx)
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.get_mut().inner).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }
}

impl Connected for AuthorityFix {
    type ConnectInfo = TcpConnectInfo;

    fn connect_info(&self) -> Self::ConnectInfo {
        self.inner.connect_info()
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn schemes_are_stripped_from_authorities() {
        assert_eq!(strip_scheme(b"http://10.1.0.11:2379"), b"10.1.0.11:2379");
        assert_eq!(strip_scheme(b"https://h:1/"), b"h:1");
        assert_eq!(strip_scheme(b"10.1.0.11:2379"), b"10.1.0.11:2379");
        assert!(::http::uri::Authority::try_from(&b"http://10.1.0.11:2379"[..]).is_err());
        assert!(::http::uri::Authority::try_from(&b"10.1.0.11:2379"[..]).is_ok());
    }
}
