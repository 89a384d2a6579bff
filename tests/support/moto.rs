//! An S3 endpoint for tests: a `moto_server` (Python moto's S3 mock) on a
//! free port of 127.0.0.1, a raw HTTP/1.1 client over `std::net` to set up
//! and inspect buckets without the store's own S3 code, and a TCP proxy
//! that delays every request, to run the S3 backend against a slow link.
//!
//! Integration tests include it by path
//! (`#[path = "support/moto.rs"] mod moto;`); it uses only `std` and
//! `tempfile`.
//!
//! Two things about moto 5.2 that the helpers here work around:
//! - a request without an `Authorization` header is an anonymous one, and
//!   moto answers 403 to an anonymous read or overwrite of an existing
//!   object; moto never checks signatures, so every request carries a
//!   dummy SigV4 header ([`DUMMY_AUTHORIZATION`]);
//! - a body sent as a form (`application/x-www-form-urlencoded`, curl's
//!   default) is parsed as form fields and the object is stored empty, so
//!   every request says `application/octet-stream`.
//!
//! Bucket names must be valid S3 names (3 to 63 characters): moto refuses
//! `PUT /b1` with `InvalidBucketName`.

#![allow(dead_code)]

use std::io::{self, Read, Write};
use std::net::{Shutdown, SocketAddr, TcpListener, TcpStream};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::thread::{self, JoinHandle};
use std::time::{Duration, Instant};

/// How long [`Moto::start`] waits for the server to answer (it takes a
/// second or two to import moto).
const START_TIMEOUT: Duration = Duration::from_secs(20);

/// How long one request may take before the helpers give up, so that a
/// wedged server fails the test instead of hanging it.
const IO_TIMEOUT: Duration = Duration::from_secs(30);

/// The `Authorization` header every request carries: moto does not check
/// it, but without one it treats the request as anonymous (see the module
/// documentation). The credential scope names `us-east-1`, moto's default
/// region.
pub const DUMMY_AUTHORIZATION: &str = "AWS4-HMAC-SHA256 \
     Credential=test/20240101/us-east-1/s3/aws4_request, \
     SignedHeaders=host, Signature=0000";

/// A running `moto_server`, killed when dropped.
pub struct Moto {
    child: Child,
    port: u16,
    /// The server's stdout and stderr, kept to show when it fails to
    /// start.
    log: tempfile::NamedTempFile,
}

impl Moto {
    /// Starts `moto_server` on a free port of 127.0.0.1 and waits until it
    /// answers HTTP.
    ///
    /// Returns `None`, after a loud message on stderr, when `moto_server`
    /// is not installed, so that the S3 tests skip on a machine without
    /// it; with `LARIX_REQUIRE_S3` set (to anything but `0`), as the CI
    /// sets it, a missing server is a panic instead, so the tests cannot
    /// skip silently there.
    pub fn start() -> Option<Moto> {
        // The port is found by binding port 0 and released before moto
        // binds it, so another process can take it in between; moto then
        // exits at once and a new port is tried.
        for _ in 0..3 {
            let port = free_port();
            let log = tempfile::NamedTempFile::new().expect("create moto_server log file");
            let stdout = log.reopen().expect("open moto_server log file");
            let stderr = log.reopen().expect("open moto_server log file");
            let spawned = Command::new("moto_server")
                .args(["-H", "127.0.0.1", "-p", &port.to_string()])
                .stdin(Stdio::null())
                .stdout(stdout)
                .stderr(stderr)
                .spawn();
            let child = match spawned {
                Ok(child) => child,
                Err(e) if e.kind() == io::ErrorKind::NotFound => return not_installed(),
                Err(e) => panic!("cannot run moto_server: {e}"),
            };
            let mut moto = Moto { child, port, log };
            match moto.wait_until_ready() {
                Ready::Yes => return Some(moto),
                // A pyenv (or similar) shim is on PATH but the active
                // Python has no moto: the shim exits with 127.
                Ready::Exited(Some(127)) => return not_installed(),
                Ready::Exited(_) => {
                    eprintln!(
                        "moto_server on port {port} exited at start, retrying; its log:\n{}",
                        moto.log_text()
                    );
                }
                Ready::TimedOut => panic!(
                    "moto_server on port {port} did not answer within {START_TIMEOUT:?}; \
                     its log:\n{}",
                    moto.log_text()
                ),
            }
        }
        panic!("moto_server exited at start three times (see the logs above)");
    }

    /// The server's address as an endpoint URL, `http://127.0.0.1:PORT`.
    pub fn endpoint(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    /// The server's port on 127.0.0.1.
    pub fn port(&self) -> u16 {
        self.port
    }

    /// Creates a bucket (`PUT /NAME`); panics unless moto answers 200.
    /// Creating a bucket that exists answers 200 too.
    pub fn create_bucket(&self, name: &str) {
        let path = format!("/{}", percent_encode(name, false));
        let (status, body) = http_request(self.port, "PUT", &path, b"");
        assert_eq!(
            status,
            200,
            "PUT {path} answered {status}: {}",
            String::from_utf8_lossy(&body)
        );
    }

    /// Stores `bytes` as object `key` of `bucket`; panics unless moto
    /// answers 200.
    pub fn put_object(&self, bucket: &str, key: &str, bytes: &[u8]) {
        let path = object_path(bucket, key);
        let (status, body) = http_request(self.port, "PUT", &path, bytes);
        assert_eq!(
            status,
            200,
            "PUT {path} answered {status}: {}",
            String::from_utf8_lossy(&body)
        );
    }

    /// The bytes of object `key` of `bucket`, or `None` if there is no
    /// such object (404); panics on any other answer.
    pub fn get_object(&self, bucket: &str, key: &str) -> Option<Vec<u8>> {
        let path = object_path(bucket, key);
        match http_request(self.port, "GET", &path, b"") {
            (200, body) => Some(body),
            (404, _) => None,
            (status, body) => panic!(
                "GET {path} answered {status}: {}",
                String::from_utf8_lossy(&body)
            ),
        }
    }

    /// Every object of `bucket`, key and bytes, in key order (a listing,
    /// then one GET per key). Panics if the bucket does not exist.
    pub fn list_objects(&self, bucket: &str) -> Vec<(String, Vec<u8>)> {
        self.list_keys(bucket, 1000)
            .into_iter()
            .map(|key| {
                // Listed a moment ago; nothing else should delete it.
                let bytes = self
                    .get_object(bucket, &key)
                    .unwrap_or_else(|| panic!("listed object {bucket}/{key} is gone"));
                (key, bytes)
            })
            .collect()
    }

    /// Every key of `bucket`, in key order: `ListObjectsV2` requests of
    /// `page_size` keys each (at most 1000, S3's and moto's limit),
    /// following continuation tokens. Panics if the bucket does not exist.
    pub fn list_keys(&self, bucket: &str, page_size: usize) -> Vec<String> {
        let mut keys = Vec::new();
        let mut token: Option<String> = None;
        loop {
            let mut path = format!(
                "/{}?list-type=2&max-keys={page_size}",
                percent_encode(bucket, false)
            );
            if let Some(token) = &token {
                path.push_str("&continuation-token=");
                path.push_str(&percent_encode(token, true));
            }
            let (status, body) = http_request(self.port, "GET", &path, b"");
            let xml = String::from_utf8_lossy(&body);
            assert_eq!(status, 200, "GET {path} answered {status}: {xml}");
            keys.extend(xml_elements(&xml, "Key").into_iter().map(xml_unescape));
            let truncated = xml_elements(&xml, "IsTruncated").first() == Some(&"true");
            if !truncated {
                return keys;
            }
            let next = xml_elements(&xml, "NextContinuationToken")
                .first()
                .map(|t| xml_unescape(t))
                .unwrap_or_else(|| panic!("truncated listing without a token: {xml}"));
            token = Some(next);
        }
    }

    /// Polls the server with `GET /` until it answers, it exits, or
    /// [`START_TIMEOUT`] passes.
    fn wait_until_ready(&mut self) -> Ready {
        let deadline = Instant::now() + START_TIMEOUT;
        loop {
            // Checked before the request so that, if another server took
            // the port, the answer is not mistaken for this one's.
            if let Ok(Some(status)) = self.child.try_wait() {
                return Ready::Exited(status.code());
            }
            if try_http(self.port, "GET", "/", b"").is_ok() {
                return Ready::Yes;
            }
            if Instant::now() >= deadline {
                return Ready::TimedOut;
            }
            thread::sleep(Duration::from_millis(100));
        }
    }

    /// What the server wrote to stdout and stderr so far.
    fn log_text(&self) -> String {
        std::fs::read_to_string(self.log.path()).unwrap_or_else(|e| format!("(unreadable: {e})"))
    }
}

impl Drop for Moto {
    fn drop(&mut self) {
        // Errors mean it has already exited; wait reaps it either way.
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// How a start attempt ended.
enum Ready {
    Yes,
    Exited(Option<i32>),
    TimedOut,
}

/// `moto_server` is missing: a panic where the S3 tests are required,
/// otherwise a message hard to miss in the test output, and `None`.
fn not_installed() -> Option<Moto> {
    let required = std::env::var("LARIX_REQUIRE_S3").is_ok_and(|v| !v.is_empty() && v != "0");
    if required {
        panic!(
            "moto_server is not installed; .ci/run installs it with pip install 'moto[server]' \
             (LARIX_REQUIRE_S3 is set, so the S3 tests may not skip)"
        );
    }
    eprintln!("************************************************************");
    eprintln!("SKIPPED: S3 tests need moto_server (pip install 'moto[server]')");
    eprintln!("moto_server is not on PATH (or cannot run), so this test checked nothing.");
    eprintln!("Set LARIX_REQUIRE_S3=1 to make this a failure instead.");
    eprintln!("************************************************************");
    None
}

/// A port of 127.0.0.1 that was free a moment ago.
fn free_port() -> u16 {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind a free port on 127.0.0.1");
    listener.local_addr().expect("local address").port()
}

/// The request path of object `key` in `bucket` (path-style addressing;
/// the slashes of the key stay slashes).
fn object_path(bucket: &str, key: &str) -> String {
    format!(
        "/{}/{}",
        percent_encode(bucket, false),
        percent_encode(key, false)
    )
}

/// Percent-encodes every byte but the unreserved ones (`A-Z a-z 0-9 - . _
/// ~`), and `/` unless `encode_slash`.
pub fn percent_encode(text: &str, encode_slash: bool) -> String {
    let mut out = String::with_capacity(text.len());
    for &b in text.as_bytes() {
        let keep = b.is_ascii_alphanumeric()
            || matches!(b, b'-' | b'.' | b'_' | b'~')
            || (b == b'/' && !encode_slash);
        if keep {
            out.push(char::from(b));
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// The text of every `<name>...</name>` element, in order. Enough for
/// moto's listings, which have no attributes on these elements and no
/// nesting of an element in itself.
fn xml_elements<'a>(xml: &'a str, name: &str) -> Vec<&'a str> {
    let open = format!("<{name}>");
    let close = format!("</{name}>");
    let mut found = Vec::new();
    let mut rest = xml;
    while let Some(start) = rest.find(&open) {
        let after = &rest[start + open.len()..];
        let Some(end) = after.find(&close) else { break };
        found.push(&after[..end]);
        rest = &after[end + close.len()..];
    }
    found
}

/// Undoes XML's escaping: the five named entities and numeric character
/// references.
fn xml_unescape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(amp) = rest.find('&') {
        out.push_str(&rest[..amp]);
        let after = &rest[amp..];
        let Some(semi) = after.find(';') else { break };
        let entity = &after[1..semi];
        let decoded = match entity {
            "amp" => Some('&'),
            "lt" => Some('<'),
            "gt" => Some('>'),
            "quot" => Some('"'),
            "apos" => Some('\''),
            _ => {
                let number = if let Some(hex) = entity.strip_prefix("#x") {
                    u32::from_str_radix(hex, 16).ok()
                } else if let Some(dec) = entity.strip_prefix('#') {
                    dec.parse().ok()
                } else {
                    None
                };
                number.and_then(char::from_u32)
            }
        };
        match decoded {
            Some(c) => {
                out.push(c);
                rest = &after[semi + 1..];
            }
            // Not an entity this knows: kept as it is.
            None => {
                out.push('&');
                rest = &after[1..];
            }
        }
    }
    out.push_str(rest);
    out
}

/// Sends one HTTP/1.1 request to 127.0.0.1:`port` and returns the status
/// and the body of the answer; panics if the connection fails or the
/// answer is not HTTP. `path` is sent as it is (already percent-encoded).
///
/// The request carries [`DUMMY_AUTHORIZATION`], a binary content type and
/// `Connection: close`; see the module documentation for why.
pub fn http_request(port: u16, method: &str, path: &str, body: &[u8]) -> (u16, Vec<u8>) {
    try_http(port, method, path, body)
        .unwrap_or_else(|e| panic!("{method} http://127.0.0.1:{port}{path} failed: {e}"))
}

/// [`http_request`], with failures returned.
fn try_http(port: u16, method: &str, path: &str, body: &[u8]) -> io::Result<(u16, Vec<u8>)> {
    let mut stream = TcpStream::connect(("127.0.0.1", port))?;
    stream.set_read_timeout(Some(IO_TIMEOUT))?;
    stream.set_write_timeout(Some(IO_TIMEOUT))?;
    let head = format!(
        "{method} {path} HTTP/1.1\r\n\
         Host: 127.0.0.1:{port}\r\n\
         Authorization: {DUMMY_AUTHORIZATION}\r\n\
         Content-Type: application/octet-stream\r\n\
         Content-Length: {}\r\n\
         Connection: close\r\n\r\n",
        body.len()
    );
    let mut request = head.into_bytes();
    request.extend_from_slice(body);
    stream.write_all(&request)?;
    // With `Connection: close` the server closes after the answer, so the
    // whole answer is everything up to end of stream.
    let mut answer = Vec::new();
    stream.read_to_end(&mut answer)?;
    parse_response(&answer)
}

/// Splits an HTTP/1.1 answer into its status and its body, decoding a
/// chunked body.
fn parse_response(answer: &[u8]) -> io::Result<(u16, Vec<u8>)> {
    let bad = |why: &str| {
        io::Error::new(
            io::ErrorKind::InvalidData,
            format!("{why}: {:?}", String::from_utf8_lossy(answer)),
        )
    };
    let head_end = find(answer, b"\r\n\r\n").ok_or_else(|| bad("no end of headers"))?;
    let head = std::str::from_utf8(&answer[..head_end]).map_err(|_| bad("headers not UTF-8"))?;
    let rest = &answer[head_end + 4..];
    let mut lines = head.split("\r\n");
    let status_line = lines.next().unwrap_or_default();
    let status = status_line
        .split(' ')
        .nth(1)
        .and_then(|s| s.parse::<u16>().ok())
        .ok_or_else(|| bad("no status"))?;
    let mut length = None;
    let mut chunked = false;
    for line in lines {
        let Some((name, value)) = line.split_once(':') else {
            continue;
        };
        let value = value.trim();
        if name.eq_ignore_ascii_case("content-length") {
            length = Some(
                value
                    .parse::<usize>()
                    .map_err(|_| bad("bad Content-Length"))?,
            );
        } else if name.eq_ignore_ascii_case("transfer-encoding") {
            chunked = value.to_ascii_lowercase().contains("chunked");
        }
    }
    let body = if chunked {
        decode_chunked(rest).ok_or_else(|| bad("bad chunked body"))?
    } else if let Some(length) = length {
        rest.get(..length)
            .ok_or_else(|| bad("body shorter than Content-Length"))?
            .to_vec()
    } else {
        // Neither: the body runs to the end of the stream.
        rest.to_vec()
    };
    Ok((status, body))
}

/// Decodes a chunked body (chunk extensions and trailers ignored); `None`
/// if it is malformed or cut short.
fn decode_chunked(mut rest: &[u8]) -> Option<Vec<u8>> {
    let mut body = Vec::new();
    loop {
        let line_end = find(rest, b"\r\n")?;
        let size_text = std::str::from_utf8(&rest[..line_end]).ok()?;
        let size_text = size_text.split(';').next()?.trim();
        let size = usize::from_str_radix(size_text, 16).ok()?;
        rest = &rest[line_end + 2..];
        if size == 0 {
            return Some(body);
        }
        body.extend_from_slice(rest.get(..size)?);
        rest = rest.get(size + 2..)?;
    }
}

/// Where `needle` first occurs in `haystack`.
fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    haystack.windows(needle.len()).position(|w| w == needle)
}

/// A TCP proxy on 127.0.0.1 that delays every HTTP request it forwards by
/// a fixed time, to stand for a distant S3 endpoint. Stops accepting when
/// dropped; connections already open keep working until either end closes
/// them.
pub struct LatencyProxy {
    port: u16,
    stop: Arc<AtomicBool>,
    requests: Arc<AtomicU64>,
    accept_thread: Option<JoinHandle<()>>,
}

impl LatencyProxy {
    /// Starts a proxy on a free port of 127.0.0.1 in front of
    /// 127.0.0.1:`target_port`, sleeping `delay` before forwarding each
    /// request.
    ///
    /// A "request" is whatever the client sends after it has received
    /// something from the server (or first on a connection): the proxy
    /// does not parse HTTP, so a pipelining client's requests count as
    /// one.
    pub fn start(target_port: u16, delay: Duration) -> LatencyProxy {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind the proxy on 127.0.0.1");
        let port = listener.local_addr().expect("proxy address").port();
        let target = SocketAddr::from(([127, 0, 0, 1], target_port));
        let stop = Arc::new(AtomicBool::new(false));
        let requests = Arc::new(AtomicU64::new(0));
        let accept_thread = {
            let stop = Arc::clone(&stop);
            let requests = Arc::clone(&requests);
            thread::spawn(move || {
                for client in listener.incoming() {
                    // Drop wakes this loop with a connection of its own.
                    if stop.load(Ordering::SeqCst) {
                        break;
                    }
                    // A failed accept concerns that one client only.
                    let Ok(client) = client else { continue };
                    let requests = Arc::clone(&requests);
                    thread::spawn(move || proxy_connection(client, target, delay, requests));
                }
            })
        };
        LatencyProxy {
            port,
            stop,
            requests,
            accept_thread: Some(accept_thread),
        }
    }

    /// The proxy's address as an endpoint URL, `http://127.0.0.1:PORT`.
    pub fn endpoint(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    /// The proxy's port on 127.0.0.1.
    pub fn port(&self) -> u16 {
        self.port
    }

    /// How many requests the proxy has delayed and forwarded so far.
    pub fn requests(&self) -> u64 {
        self.requests.load(Ordering::SeqCst)
    }
}

impl Drop for LatencyProxy {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        // The accept loop blocks in accept(): one connection wakes it to
        // see the flag. If even that fails, the thread is left behind
        // rather than joined forever.
        let addr = SocketAddr::from(([127, 0, 0, 1], self.port));
        if TcpStream::connect_timeout(&addr, Duration::from_secs(5)).is_ok() {
            if let Some(thread) = self.accept_thread.take() {
                let _ = thread.join();
            }
        }
    }
}

/// Forwards one client connection to `target` and back, delaying each
/// request by `delay`.
fn proxy_connection(
    client: TcpStream,
    target: SocketAddr,
    delay: Duration,
    requests: Arc<AtomicU64>,
) {
    let Ok(server) = TcpStream::connect(target) else {
        // Nothing listens there: the client sees its connection closed,
        // as it would without the proxy.
        return;
    };
    // Small request and answer heads must not wait for Nagle's algorithm,
    // or the proxy would add latency of its own on top of `delay`.
    let _ = client.set_nodelay(true);
    let _ = server.set_nodelay(true);
    let (Ok(client_reader), Ok(server_writer)) = (client.try_clone(), server.try_clone()) else {
        return;
    };
    // True when the next bytes from the client start a new request: at the
    // start, and whenever the server has answered since the client last
    // sent anything.
    let response_seen = Arc::new(AtomicBool::new(true));
    let upstream = {
        let response_seen = Arc::clone(&response_seen);
        thread::spawn(move || {
            client_to_server(
                client_reader,
                server_writer,
                delay,
                &response_seen,
                &requests,
            )
        })
    };
    server_to_client(server, client, &response_seen);
    let _ = upstream.join();
}

/// The client→server direction: forwards, sleeping before the first chunk
/// of each request.
fn client_to_server(
    mut client: TcpStream,
    mut server: TcpStream,
    delay: Duration,
    response_seen: &AtomicBool,
    requests: &AtomicU64,
) {
    let mut buf = vec![0; 64 * 1024];
    loop {
        match client.read(&mut buf) {
            Ok(0) => {
                // The client has finished sending but may still be
                // waiting for the answer: pass on the half-close only.
                let _ = server.shutdown(Shutdown::Write);
                return;
            }
            Ok(n) => {
                if response_seen.swap(false, Ordering::SeqCst) {
                    thread::sleep(delay);
                    requests.fetch_add(1, Ordering::SeqCst);
                }
                if server.write_all(&buf[..n]).is_err() {
                    break;
                }
            }
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(_) => break,
        }
    }
    close_both(&client, &server);
}

/// The server→client direction: forwards, marking that an answer came so
/// that the client's next bytes count as a new request.
fn server_to_client(mut server: TcpStream, mut client: TcpStream, response_seen: &AtomicBool) {
    let mut buf = vec![0; 64 * 1024];
    loop {
        match server.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => {
                // Marked before the client gets the bytes: once it has
                // them it may send its next request at once, and that one
                // must be seen as new.
                response_seen.store(true, Ordering::SeqCst);
                if client.write_all(&buf[..n]).is_err() {
                    break;
                }
            }
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(_) => break,
        }
    }
    // The server closed (or failed): nothing more can be answered on this
    // connection, so both sockets close, which also ends the other
    // direction's blocking read.
    close_both(&client, &server);
}

/// Shuts both sockets of a proxied connection down in both directions.
fn close_both(client: &TcpStream, server: &TcpStream) {
    let _ = client.shutdown(Shutdown::Both);
    let _ = server.shutdown(Shutdown::Both);
}
