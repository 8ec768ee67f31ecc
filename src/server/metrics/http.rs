//! The `--metrics ADDR` endpoint: a blocking listener on its own thread
//! (never the reactor's), answering `GET /metrics` with [`super::Metrics::encode`].
//!
//! Bounded on purpose: one request at a time, 2 s to send the request and
//! to read the answer, a request head of at most 4 KiB, `Connection: close`.
//! A scraper is a trusted operator tool; anything else gets a 4xx and
//! costs the server nothing else.

use std::io::{self, Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::time::Duration;

/// Longest request head read.
const MAX_HEAD: usize = 4096;
/// Most bytes read and dropped after refusing an oversized request.
const DRAIN_LIMIT: u64 = 64 * 1024;
/// Time a scraper has to send its request and to read the answer.
const IO_TIMEOUT: Duration = Duration::from_secs(2);

/// What a request head asks for.
#[derive(Debug, PartialEq, Eq)]
pub enum Route {
    /// `GET /metrics` (`HEAD` too: the body is left out).
    Metrics {
        /// Whether to send the body (`GET`) or only the head (`HEAD`).
        body: bool,
    },
    /// Another path: 404.
    NotFound,
    /// Another method: 405.
    MethodNotAllowed,
    /// Not an HTTP request line: 400.
    BadRequest,
}

/// Judges a request from its first line (`METHOD PATH HTTP/1.x`).
pub fn route(head: &[u8]) -> Route {
    let line = head.split(|&b| b == b'\n').next().unwrap_or(&[]);
    let Ok(line) = std::str::from_utf8(line) else {
        return Route::BadRequest;
    };
    let mut parts = line.trim_end_matches('\r').split(' ');
    let (Some(method), Some(target), Some(version), None) =
        (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return Route::BadRequest;
    };
    if !version.starts_with("HTTP/1.") {
        return Route::BadRequest;
    }
    let body = match method {
        "GET" => true,
        "HEAD" => false,
        _ => return Route::MethodNotAllowed,
    };
    // Scrapers may add a query string (`?name[]=…`); it selects nothing here.
    let path = target.split('?').next().unwrap_or(target);
    if path == "/metrics" {
        Route::Metrics { body }
    } else {
        Route::NotFound
    }
}

/// Binds `addr` and serves it on a new thread named `metrics` for the life
/// of the process. Returns the bound address (port 0 picks one).
///
/// # Errors
/// The address cannot be bound, or the thread cannot start.
pub fn serve(addr: SocketAddr) -> io::Result<SocketAddr> {
    let listener = TcpListener::bind(addr)?;
    let local = listener.local_addr()?;
    std::thread::Builder::new()
        .name("metrics".to_owned())
        .spawn(move || {
            for stream in listener.incoming() {
                match stream {
                    Ok(stream) => {
                        if let Err(e) = answer(stream) {
                            log::debug!("metrics request: {e}");
                        }
                    }
                    Err(e) => {
                        log::warn!("metrics endpoint: accept failed: {e}");
                        std::thread::sleep(Duration::from_millis(100));
                    }
                }
            }
        })?;
    Ok(local)
}

/// Reads one request head and writes one response.
fn answer(mut stream: TcpStream) -> io::Result<()> {
    stream.set_read_timeout(Some(IO_TIMEOUT))?;
    stream.set_write_timeout(Some(IO_TIMEOUT))?;
    let head = read_head(&mut stream)?;
    let (status, body, send_body) = match head.as_deref().map(route) {
        Some(Route::Metrics { body }) => ("200 OK", super::metrics().encode(), body),
        Some(Route::NotFound) => ("404 Not Found", "try /metrics\n".to_owned(), true),
        Some(Route::MethodNotAllowed) => ("405 Method Not Allowed", "GET only\n".to_owned(), true),
        Some(Route::BadRequest) => ("400 Bad Request", String::new(), true),
        None => ("431 Request Header Fields Too Large", String::new(), true),
    };
    let content_type = if status.starts_with("200") {
        "application/openmetrics-text; version=1.0.0; charset=utf-8"
    } else {
        "text/plain; charset=utf-8"
    };
    let mut response = format!(
        "HTTP/1.1 {status}\r\nContent-Type: {content_type}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
        body.len()
    )
    .into_bytes();
    if send_body {
        response.extend_from_slice(body.as_bytes());
    }
    stream.write_all(&response)?;
    let _ = stream.shutdown(std::net::Shutdown::Write);
    if head.is_none() {
        // Unread input at close makes the kernel send a reset, which can
        // destroy the answer before the peer reads it: read (and drop) a
        // bounded amount first.
        let _ = io::copy(&mut (&stream).take(DRAIN_LIMIT), &mut io::sink());
    }
    Ok(())
}

/// The request head up to its blank line; `None` when it exceeds
/// [`MAX_HEAD`]. A peer that closes early yields what it sent.
fn read_head(stream: &mut TcpStream) -> io::Result<Option<Vec<u8>>> {
    let mut head = Vec::with_capacity(512);
    let mut buf = [0u8; 1024];
    while !head.windows(4).any(|w| w == b"\r\n\r\n") && !head.windows(2).any(|w| w == b"\n\n") {
        if head.len() > MAX_HEAD {
            return Ok(None);
        }
        match stream.read(&mut buf)? {
            0 => break,
            n => head.extend_from_slice(&buf[..n]),
        }
    }
    Ok(Some(head))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn routes() {
        assert_eq!(
            route(b"GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n"),
            Route::Metrics { body: true }
        );
        assert_eq!(
            route(b"HEAD /metrics?x=1 HTTP/1.0\r\n\r\n"),
            Route::Metrics { body: false }
        );
        assert_eq!(route(b"GET / HTTP/1.1\r\n\r\n"), Route::NotFound);
        assert_eq!(
            route(b"POST /metrics HTTP/1.1\r\n\r\n"),
            Route::MethodNotAllowed
        );
        assert_eq!(route(b"GET /metrics\r\n\r\n"), Route::BadRequest);
        assert_eq!(route(b"\xff\xfe /metrics HTTP/1.1\r\n"), Route::BadRequest);
        assert_eq!(route(b""), Route::BadRequest);
    }
}
