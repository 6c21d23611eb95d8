//! A small HTTP/1.1 client for `http://` probes: one GET, its request bytes
//! built once per target, an optional kept connection, one reusable read
//! buffer, `httparse` for the answer's head. It costs a fraction of a general
//! client's work per probe (no URL parse, header map or pool per request),
//! which matters at one /readyz poll per second per gateway.
//!
//! What it does not do, and need not for a probe: TLS (https goes through
//! reqwest), proxies, redirects, retries (but one: see [`Endpoint::get`]),
//! compression, pipelining. The caller enforces the probe timeout by dropping
//! the future; a connection is kept only after a complete, well-framed answer
//! that left no stray byte behind, so an interrupted exchange is never reused.

use std::io;
use std::net::{IpAddr, SocketAddr};
use std::time::{Duration, Instant};

use tokio::net::TcpStream;

use super::client::{Answer, Failure, Reason};
use crate::config::Token;

const USER_AGENT: &str = concat!("openclaw-gateway-exporter/", env!("CARGO_PKG_VERSION"));
/// The first read; an answer of /readyz (about 600 bytes with its head) fits.
const READ_SIZE: usize = 2048;
/// A read buffer grown larger than this by a big answer is let go afterwards.
const KEEP_CAPACITY: usize = 8 * 1024;
/// The longest head (status line and headers) accepted, as hyper's default.
const MAX_HEAD: usize = 64 * 1024;
const MAX_HEADERS: usize = 64;
/// The longest chunk-size line, and the most trailer bytes.
const MAX_LINE: usize = 4096;

/// Where to send one target's probes, and its kept connection.
pub struct Endpoint {
    host: Host,
    port: u16,
    /// The request up to, not including, the Authorization header.
    head: Vec<u8>,
    /// The whole request, for `token`.
    request: Vec<u8>,
    /// The token `request` carries. A secret: never logged or shown.
    token: Option<String>,
    /// An idle connection, and since when.
    kept: Option<(TcpStream, Instant)>,
    buf: Vec<u8>,
}

/// The host to connect to: an address is used as is, a name resolved on
/// each connection (tokio tries each address in turn, as reqwest does).
#[derive(Debug)]
enum Host {
    Ip(IpAddr),
    Name(String),
}

impl std::fmt::Debug for Endpoint {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Endpoint")
            .field("host", &self.host)
            .field("port", &self.port)
            .field("kept", &self.kept.is_some())
            .finish_non_exhaustive()
    }
}

/// Why an exchange failed: `Stale` when a kept connection turned out closed
/// before any byte of an answer (the server's keep-alive ended it).
enum Error {
    Stale,
    Failed(Failure),
}

fn fail(reason: Reason, status: Option<u16>) -> Error {
    Error::Failed(Failure::new(reason, status))
}

/// How the body of an answer ends.
#[derive(Debug, Clone, Copy, PartialEq)]
enum Framing {
    None,
    Length(u64),
    Chunked,
    Close,
}

#[derive(Debug, PartialEq)]
struct Head {
    status: u16,
    len: usize,
    framing: Framing,
    /// Whether the connection may carry another request afterwards.
    reusable: bool,
}

impl Endpoint {
    /// `None` unless `url` is a plain `http://` URL without credentials in
    /// it; those stay with reqwest.
    pub fn new(url: &str) -> Option<Endpoint> {
        let url = url::Url::parse(url).ok()?;
        if url.scheme() != "http" || !url.username().is_empty() || url.password().is_some() {
            return None;
        }
        let host = match url.host()? {
            url::Host::Ipv4(a) => Host::Ip(IpAddr::V4(a)),
            url::Host::Ipv6(a) => Host::Ip(IpAddr::V6(a)),
            url::Host::Domain(d) => Host::Name(d.to_string()),
        };
        let port = url.port_or_known_default()?;
        let mut authority = url.host_str()?.to_string();
        if let Some(p) = url.port() {
            authority.push_str(&format!(":{p}"));
        }
        let mut target = url.path().to_string();
        if let Some(q) = url.query() {
            target.push('?');
            target.push_str(q);
        }
        let head = format!(
            "GET {target} HTTP/1.1\r\nHost: {authority}\r\nUser-Agent: {USER_AGENT}\r\nAccept: application/json\r\n"
        )
        .into_bytes();
        let mut request = head.clone();
        request.extend_from_slice(b"\r\n");
        Some(Endpoint {
            host,
            port,
            head,
            request,
            token: None,
            kept: None,
            buf: Vec::new(),
        })
    }

    /// GET the target, with `token` as a bearer token when given, reading at
    /// most `cap` bytes of body. With `keep`, the connection is kept for the
    /// next probe if it is used again within `keep`; a kept connection the
    /// server has closed meanwhile is replaced once by a fresh one, so the
    /// end of a keep-alive is not a failed probe.
    pub async fn get(
        &mut self,
        token: Option<&Token>,
        cap: usize,
        keep: Option<Duration>,
    ) -> Result<Answer, Failure> {
        self.set_token(token)?;
        let kept = self
            .kept
            .take()
            .filter(|(_, since)| keep.is_some_and(|idle| since.elapsed() < idle));
        let result = match kept {
            Some((stream, _)) => match self.exchange(stream, cap).await {
                Err(Error::Stale) => self.fresh(cap).await,
                other => other,
            },
            None => self.fresh(cap).await,
        };
        // A probe that connects afresh (liveness, every 10 s) keeps no
        // buffer between probes either; a kept connection keeps a small one.
        if keep.is_none() || self.buf.capacity() > KEEP_CAPACITY {
            self.buf = Vec::new();
        }
        match result {
            Ok((answer, stream)) => {
                if keep.is_some() {
                    self.kept = stream.map(|s| (s, Instant::now()));
                }
                Ok(answer)
            }
            Err(Error::Stale) => Err(Failure::new(Reason::ConnectError, None)),
            Err(Error::Failed(f)) => Err(f),
        }
    }

    /// Rebuild the request when the token changed. A token that cannot be a
    /// header value fails the probe, as it did with reqwest.
    fn set_token(&mut self, token: Option<&Token>) -> Result<(), Failure> {
        let token = token.map(Token::expose);
        if self.token.as_deref() == token {
            return Ok(());
        }
        if token.is_some_and(|t| t.bytes().any(|b| (b < b' ' && b != b'\t') || b == 0x7f)) {
            return Err(Failure::new(Reason::ConnectError, None));
        }
        self.request.clear();
        self.request.extend_from_slice(&self.head);
        if let Some(t) = token {
            self.request.extend_from_slice(b"Authorization: Bearer ");
            self.request.extend_from_slice(t.as_bytes());
            self.request.extend_from_slice(b"\r\n");
        }
        self.request.extend_from_slice(b"\r\n");
        self.token = token.map(str::to_string);
        Ok(())
    }

    async fn fresh(&mut self, cap: usize) -> Result<(Answer, Option<TcpStream>), Error> {
        let connected = match &self.host {
            Host::Ip(ip) => TcpStream::connect(SocketAddr::new(*ip, self.port)).await,
            Host::Name(name) => TcpStream::connect((name.as_str(), self.port)).await,
        };
        let stream = connected.map_err(|e| match e.kind() {
            io::ErrorKind::ConnectionRefused => fail(Reason::ConnectRefused, None),
            _ => fail(Reason::ConnectError, None),
        })?;
        match self.exchange(stream, cap).await {
            Err(Error::Stale) => Err(fail(Reason::ConnectError, None)),
            other => other,
        }
    }

    /// Send the request on `stream` and read the answer; the stream comes
    /// back when it can carry the next request.
    async fn exchange(
        &mut self,
        mut stream: TcpStream,
        cap: usize,
    ) -> Result<(Answer, Option<TcpStream>), Error> {
        write_all(&stream, &self.request)
            .await
            .map_err(|_| Error::Stale)?;
        self.buf.clear();
        let mut received = false;
        let head = loop {
            if let Some(head) = parse_head(&self.buf).map_err(Error::Failed)? {
                if (100..200).contains(&head.status) && head.status != 101 {
                    // An interim answer (100 Continue, 103 Early Hints).
                    self.buf.drain(..head.len);
                    continue;
                }
                break head;
            }
            if self.buf.len() >= MAX_HEAD {
                return Err(fail(Reason::ConnectError, None));
            }
            match read_more(&mut stream, &mut self.buf).await {
                Ok(n) if n > 0 => received = true,
                _ if received => return Err(fail(Reason::ConnectError, None)),
                _ => return Err(Error::Stale),
            }
        };
        let status = Some(head.status);
        let (body, clean) = match head.framing {
            Framing::None => (Vec::new(), self.buf.len() == head.len),
            Framing::Length(n) => {
                if n > cap as u64 {
                    return Err(fail(Reason::TooLarge, status));
                }
                let end = head.len + n as usize;
                while self.buf.len() < end {
                    match read_more(&mut stream, &mut self.buf).await {
                        Ok(n) if n > 0 => {}
                        _ => return Err(fail(Reason::BadBody, status)),
                    }
                }
                (self.buf[head.len..end].to_vec(), self.buf.len() == end)
            }
            Framing::Chunked => {
                let mut body = Vec::new();
                let clean = read_chunked(&mut stream, &mut self.buf, head.len, cap, &mut body)
                    .await
                    .map_err(|reason| fail(reason, status))?;
                (body, clean)
            }
            Framing::Close => {
                loop {
                    if self.buf.len() - head.len > cap {
                        return Err(fail(Reason::TooLarge, status));
                    }
                    match read_more(&mut stream, &mut self.buf).await {
                        Ok(0) => break,
                        Ok(_) => {}
                        Err(_) => return Err(fail(Reason::BadBody, status)),
                    }
                }
                (self.buf[head.len..].to_vec(), false)
            }
        };
        let answer = Answer {
            status: head.status,
            body,
        };
        Ok((answer, (head.reusable && clean).then_some(stream)))
    }
}

/// Parse the head at the start of `buf`: `None` while incomplete. A head
/// that is not HTTP/1.x, or frames its body ambiguously, is a connect error
/// (as hyper calls it: no answer arrived).
fn parse_head(buf: &[u8]) -> Result<Option<Head>, Failure> {
    let bad = || Failure::new(Reason::ConnectError, None);
    let mut headers = [httparse::EMPTY_HEADER; MAX_HEADERS];
    let mut response = httparse::Response::new(&mut headers);
    let len = match response.parse(buf) {
        Ok(httparse::Status::Complete(len)) => len,
        Ok(httparse::Status::Partial) => return Ok(None),
        Err(_) => return Err(bad()),
    };
    let status = response.code.ok_or_else(bad)?;
    let mut reusable = response.version == Some(1);
    let mut length: Option<u64> = None;
    let mut chunked = None;
    for h in response.headers.iter() {
        let value = std::str::from_utf8(h.value).map_err(|_| bad())?.trim();
        if h.name.eq_ignore_ascii_case("content-length") {
            let n = parse_decimal(value).ok_or_else(bad)?;
            if length.is_some_and(|m| m != n) {
                return Err(bad());
            }
            length = Some(n);
        } else if h.name.eq_ignore_ascii_case("transfer-encoding") {
            // Chunked only when it is the last coding applied.
            let last = value.rsplit(',').next().unwrap_or("").trim();
            chunked = Some(last.eq_ignore_ascii_case("chunked"));
        } else if h.name.eq_ignore_ascii_case("connection")
            && value
                .split(',')
                .any(|t| t.trim().eq_ignore_ascii_case("close"))
        {
            reusable = false;
        }
    }
    let framing = if (100..200).contains(&status) || status == 204 || status == 304 {
        Framing::None
    } else {
        match (chunked, length) {
            (Some(true), length) => {
                // Chunked wins over a length, but such a peer is not trusted twice.
                reusable &= length.is_none();
                Framing::Chunked
            }
            // A coding we do not decode: read it to the close.
            (Some(false), _) => Framing::Close,
            (None, Some(n)) => Framing::Length(n),
            (None, None) => Framing::Close,
        }
    };
    if framing == Framing::Close || status == 101 {
        reusable = false;
    }
    Ok(Some(Head {
        status,
        len,
        framing,
        reusable,
    }))
}

fn parse_decimal(s: &str) -> Option<u64> {
    if s.is_empty() || s.len() > 19 || !s.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    s.parse().ok()
}

/// A chunk-size line without its CRLF: hex digits, then maybe extensions
/// after `;`, which are ignored.
fn parse_chunk_size(line: &[u8]) -> Option<u64> {
    let digits = line.split(|b| *b == b';').next()?;
    let digits = std::str::from_utf8(digits).ok()?.trim_matches([' ', '\t']);
    if digits.is_empty() || digits.len() > 15 || !digits.bytes().all(|b| b.is_ascii_hexdigit()) {
        return None;
    }
    u64::from_str_radix(digits, 16).ok()
}

fn find_crlf(b: &[u8]) -> Option<usize> {
    b.windows(2).position(|w| w == b"\r\n")
}

/// Decode a chunked body that starts at `buf[pos..]` into `body`, reading
/// more as needed. Ok(whether nothing followed it); the error is the reason.
async fn read_chunked(
    stream: &mut TcpStream,
    buf: &mut Vec<u8>,
    mut pos: usize,
    cap: usize,
    body: &mut Vec<u8>,
) -> Result<bool, Reason> {
    // Drop what was consumed, then read more; the end of the stream or an
    // error before the last chunk is a broken body.
    async fn more(
        stream: &mut TcpStream,
        buf: &mut Vec<u8>,
        pos: &mut usize,
    ) -> Result<(), Reason> {
        buf.drain(..*pos);
        *pos = 0;
        match read_more(stream, buf).await {
            Ok(n) if n > 0 => Ok(()),
            _ => Err(Reason::BadBody),
        }
    }
    // One line from `pos`, without its CRLF: (start, end).
    async fn line(
        stream: &mut TcpStream,
        buf: &mut Vec<u8>,
        pos: &mut usize,
    ) -> Result<(usize, usize), Reason> {
        loop {
            if let Some(i) = find_crlf(&buf[*pos..]) {
                let start = *pos;
                *pos += i + 2;
                return Ok((start, start + i));
            }
            if buf.len() - *pos > MAX_LINE {
                return Err(Reason::BadBody);
            }
            more(stream, buf, pos).await?;
        }
    }
    loop {
        let (start, end) = line(stream, buf, &mut pos).await?;
        let size = parse_chunk_size(&buf[start..end]).ok_or(Reason::BadBody)?;
        if size == 0 {
            break;
        }
        if body.len() as u64 + size > cap as u64 {
            return Err(Reason::TooLarge);
        }
        let mut left = size as usize;
        while left > 0 {
            if pos == buf.len() {
                more(stream, buf, &mut pos).await?;
            }
            let take = left.min(buf.len() - pos);
            body.extend_from_slice(&buf[pos..pos + take]);
            pos += take;
            left -= take;
        }
        let (start, end) = line(stream, buf, &mut pos).await?;
        if start != end {
            return Err(Reason::BadBody);
        }
    }
    // Trailers, up to the empty line; their content is not used.
    let mut trailers = 0;
    loop {
        let (start, end) = line(stream, buf, &mut pos).await?;
        if start == end {
            return Ok(pos == buf.len());
        }
        trailers += end - start + 2;
        if trailers > MAX_LINE {
            return Err(Reason::BadBody);
        }
    }
}

async fn write_all(stream: &TcpStream, mut bytes: &[u8]) -> io::Result<()> {
    while !bytes.is_empty() {
        stream.writable().await?;
        match stream.try_write(bytes) {
            Ok(0) => return Err(io::ErrorKind::WriteZero.into()),
            Ok(n) => bytes = &bytes[n..],
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => {}
            Err(e) => return Err(e),
        }
    }
    Ok(())
}

/// Read what has arrived onto the end of `buf`, growing it as needed; Ok(0)
/// at the end of the stream. Through `AsyncRead`, into the spare room
/// (nothing zeroed first): a read shorter than the room tells tokio the
/// socket is drained, so the next answer is awaited at once, not tried
/// first with a `recv` that finds nothing.
async fn read_more(stream: &mut TcpStream, buf: &mut Vec<u8>) -> io::Result<usize> {
    use tokio::io::AsyncReadExt;
    // Fill the room there is, or double the buffer when little is left.
    if buf.capacity() - buf.len() < 512 {
        buf.reserve(buf.len().max(READ_SIZE));
    }
    stream.read_buf(buf).await
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::{Read, Write};

    fn head(text: &str) -> Result<Option<Head>, Failure> {
        parse_head(text.as_bytes())
    }

    #[test]
    fn heads_are_framed() {
        let h = head("HTTP/1.1 200 OK\r\nContent-Length: 12\r\n\r\n")
            .unwrap()
            .unwrap();
        assert_eq!(
            (h.status, h.framing, h.reusable),
            (200, Framing::Length(12), true)
        );
        let h = head("HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip, chunked\r\n\r\n")
            .unwrap()
            .unwrap();
        assert_eq!((h.framing, h.reusable), (Framing::Chunked, true));
        let h = head("HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip\r\n\r\n")
            .unwrap()
            .unwrap();
        assert_eq!((h.framing, h.reusable), (Framing::Close, false));
        let h = head("HTTP/1.1 503 No\r\n\r\n").unwrap().unwrap();
        assert_eq!(
            (h.status, h.framing, h.reusable),
            (503, Framing::Close, false)
        );
        let h =
            head("HTTP/1.1 200 OK\r\nConnection: keep-alive, Close\r\nContent-Length: 0\r\n\r\n")
                .unwrap()
                .unwrap();
        assert!(!h.reusable);
        let h = head("HTTP/1.0 200 OK\r\nContent-Length: 0\r\n\r\n")
            .unwrap()
            .unwrap();
        assert!(!h.reusable);
        let h = head("HTTP/1.1 204 No Content\r\nContent-Length: 99\r\n\r\n")
            .unwrap()
            .unwrap();
        assert_eq!(h.framing, Framing::None);
        let h = head("HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 200")
            .unwrap()
            .unwrap();
        assert_eq!((h.status, h.len, h.framing), (100, 25, Framing::None));
        // Same length twice is fine; two lengths are not.
        assert!(head("HTTP/1.1 200 OK\r\nContent-Length: 2\r\ncontent-length: 2\r\n\r\n").is_ok());
        assert!(head("HTTP/1.1 200 OK\r\nContent-Length: 2\r\nContent-Length: 3\r\n\r\n").is_err());
    }

    #[test]
    fn bad_heads_are_connect_errors() {
        assert!(head("HTTP/1.1 200 OK\r\nContent-Le").unwrap().is_none());
        for bad in [
            "SSH-2.0-OpenSSH\r\n",
            "HTTP/1.1 2000 OK\r\n\r\n",
            "HTTP/2 200 OK\r\n\r\n",
            "HTTP/1.1 200 OK\r\nContent-Length: -1\r\n\r\n",
            "HTTP/1.1 200 OK\r\nContent-Length: 1 2\r\n\r\n",
            "HTTP/1.1 200 OK\r\nContent-Length: 99999999999999999999\r\n\r\n",
            "HTTP/1.1 200 OK\r\nBad Header: x\r\n\r\n",
        ] {
            assert_eq!(
                head(bad).map(|_| ()).unwrap_err().reason,
                Reason::ConnectError,
                "{bad:?}"
            );
        }
        let many = format!(
            "HTTP/1.1 200 OK\r\n{}\r\n",
            "X: y\r\n".repeat(MAX_HEADERS + 1)
        );
        assert!(head(&many).is_err());
    }

    #[test]
    fn chunk_sizes() {
        assert_eq!(parse_chunk_size(b"1a"), Some(26));
        assert_eq!(parse_chunk_size(b"1A ;name=value;x"), Some(26));
        assert_eq!(parse_chunk_size(b"0"), Some(0));
        assert_eq!(parse_chunk_size(b""), None);
        assert_eq!(parse_chunk_size(b"zz"), None);
        assert_eq!(parse_chunk_size(b"+1"), None);
        assert_eq!(parse_chunk_size(b"ffffffffffffffffff"), None);
    }

    type Accepted = std::sync::Arc<std::sync::atomic::AtomicUsize>;

    /// A loopback server that answers each request with the next of
    /// `answers` (`None`: close the connection instead), closing after each
    /// answer when `close`, and counts the connections it accepted.
    fn server(answers: Vec<Option<&'static [u8]>>, close: bool) -> (String, Accepted) {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let url = format!("http://{}/readyz", listener.local_addr().unwrap());
        let accepted = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
        let count = accepted.clone();
        std::thread::spawn(move || {
            let mut answers = answers.into_iter();
            for mut stream in listener.incoming().flatten() {
                count.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
                loop {
                    let mut req = [0u8; 4096];
                    match stream.read(&mut req) {
                        Ok(n) if n > 0 => {}
                        _ => break,
                    }
                    match answers.next() {
                        Some(Some(a)) => {
                            let _ = stream.write_all(a);
                            if close {
                                break;
                            }
                        }
                        Some(None) => break,
                        None => return,
                    }
                }
            }
        });
        (url, accepted)
    }

    /// One probe of a server that sends `answer` and closes.
    async fn get(answer: &'static [u8]) -> Result<Answer, Failure> {
        let (url, _) = server(vec![Some(answer)], true);
        Endpoint::new(&url).unwrap().get(None, 64, None).await
    }

    fn ok(body: &[u8]) -> Result<Answer, Failure> {
        Ok(Answer {
            status: 200,
            body: body.to_vec(),
        })
    }

    #[tokio::test]
    async fn bodies_are_read_by_their_framing() {
        let g = get;
        assert_eq!(
            g(b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nhello").await,
            ok(b"hello")
        );
        assert_eq!(
            g(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n2;ext=1\r\nhe\r\n3\r\nllo\r\n0\r\nX-Trailer: 1\r\n\r\n").await,
            ok(b"hello")
        );
        assert_eq!(
            g(b"HTTP/1.0 200 OK\r\n\r\nuntil close").await,
            ok(b"until close")
        );
        assert_eq!(
            g(b"HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 103 Early\r\nLink: x\r\n\r\nHTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\n{}").await,
            ok(b"{}")
        );
        assert_eq!(
            g(b"HTTP/1.1 204 No Content\r\n\r\n").await,
            Ok(Answer {
                status: 204,
                body: Vec::new()
            })
        );
    }

    #[tokio::test]
    async fn broken_bodies_are_counted_failures() {
        let g = get;
        let failed = |r: Reason| Err(Failure::new(r, Some(200)));
        // Over the cap: announced, chunked, or until close.
        assert_eq!(
            g(b"HTTP/1.1 200 OK\r\nContent-Length: 65\r\n\r\n").await,
            failed(Reason::TooLarge)
        );
        assert_eq!(
            g(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n40\r\n").await,
            failed(Reason::BadBody)
        );
        assert_eq!(
            g(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n41\r\n").await,
            failed(Reason::TooLarge)
        );
        let long: &'static [u8] = Box::leak(
            [b"HTTP/1.1 200 OK\r\n\r\n".as_slice(), &[b'a'; 65]]
                .concat()
                .into_boxed_slice(),
        );
        assert_eq!(g(long).await, failed(Reason::TooLarge));
        // Cut short, or broken chunking.
        assert_eq!(
            g(b"HTTP/1.1 200 OK\r\nContent-Length: 9\r\n\r\nhal").await,
            failed(Reason::BadBody)
        );
        for bad in [
            b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nxyz\r\nhe\r\n0\r\n\r\n"
                .as_slice(),
            b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n2\r\nhello\r\n0\r\n\r\n",
            b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n2\r\nhe",
            b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n2\r\nhe\r\n0\r\n",
        ] {
            let bad: &'static [u8] = bad;
            assert_eq!(
                g(bad).await,
                failed(Reason::BadBody),
                "{:?}",
                String::from_utf8_lossy(bad)
            );
        }
        // No answer, or not HTTP.
        assert_eq!(g(b"").await, Err(Failure::new(Reason::ConnectError, None)));
        assert_eq!(
            g(b"HTTP/1.1 200 O").await,
            Err(Failure::new(Reason::ConnectError, None))
        );
        assert_eq!(
            g(b"\x00\x01\x02garbage\r\n\r\n").await,
            Err(Failure::new(Reason::ConnectError, None))
        );
    }

    #[tokio::test]
    async fn a_kept_connection_is_reused_and_replaced_when_closed() {
        const A: &[u8] = b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\n{}";
        // Two answers on the first connection, then the server closes it
        // between polls; the third poll reconnects.
        let (url, accepted) = server(vec![Some(A), Some(A), None, Some(A), Some(A)], false);
        let mut ep = Endpoint::new(&url).unwrap();
        let keep = Some(Duration::from_secs(4));
        assert_eq!(ep.get(None, 64, keep).await, ok(b"{}"));
        assert_eq!(ep.get(None, 64, keep).await, ok(b"{}"));
        // The server reads the third request, then closes: a stale connection.
        assert_eq!(ep.get(None, 64, keep).await, ok(b"{}"));
        assert_eq!(ep.get(None, 64, keep).await, ok(b"{}"));
        assert_eq!(accepted.load(std::sync::atomic::Ordering::SeqCst), 2);

        // A server that closes each connection right after its answer: the
        // next poll finds the kept connection closed, and reconnects.
        let (url, accepted) = server(vec![Some(A), Some(A), Some(A)], true);
        let mut ep = Endpoint::new(&url).unwrap();
        for _ in 0..3 {
            assert_eq!(ep.get(None, 64, keep).await, ok(b"{}"));
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        assert_eq!(accepted.load(std::sync::atomic::Ordering::SeqCst), 3);

        // Without keep, every probe connects afresh.
        let (url, accepted) = server(vec![Some(A), Some(A)], true);
        let mut ep = Endpoint::new(&url).unwrap();
        assert_eq!(ep.get(None, 64, None).await, ok(b"{}"));
        assert_eq!(ep.get(None, 64, None).await, ok(b"{}"));
        assert_eq!(accepted.load(std::sync::atomic::Ordering::SeqCst), 2);
    }

    #[test]
    fn requests_carry_the_token_and_debug_hides_it() {
        let mut ep = Endpoint::new("http://gw.example:8080/base/readyz?x=1").unwrap();
        let text = |ep: &Endpoint| String::from_utf8(ep.request.clone()).unwrap();
        assert!(text(&ep).starts_with("GET /base/readyz?x=1 HTTP/1.1\r\nHost: gw.example:8080\r\n"));
        assert!(text(&ep).ends_with("Accept: application/json\r\n\r\n"));
        let token = Token::new("s3cret").unwrap();
        ep.set_token(Some(&token)).unwrap();
        assert!(text(&ep).ends_with("Authorization: Bearer s3cret\r\n\r\n"));
        assert!(!format!("{ep:?}").contains("s3cret"));
        ep.set_token(None).unwrap();
        assert!(!text(&ep).contains("Authorization"));
        let bad = Token::new("a\r\nX-Evil: 1").unwrap();
        assert_eq!(
            ep.set_token(Some(&bad)).unwrap_err().reason,
            Reason::ConnectError
        );

        let ep = Endpoint::new("http://[::1]/readyz").unwrap();
        assert!(text(&ep).contains("Host: [::1]\r\n"));
        assert_eq!(ep.port, 80);
        assert!(Endpoint::new("https://gw/readyz").is_none());
        assert!(Endpoint::new("http://user:pw@gw/readyz").is_none());
        assert!(Endpoint::new("not a url").is_none());
    }
}
