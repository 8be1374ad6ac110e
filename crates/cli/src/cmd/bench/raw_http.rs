//! A minimal HTTP/1.1 client for the benchmark.
//!
//! The benchmark shares a 2-core machine with the server it measures, so its
//! client must cost as little CPU as possible: one thread, one socket, no
//! runtime. It speaks just enough HTTP for `edgeway serve`: a request with a
//! JSON (or image) body, `Connection: close`, and a plain or chunked response.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;

use anyhow::{bail, Context};

/// Sends `body` as a JSON POST to `path` on `127.0.0.1:port`; returns a reader of the response body.
pub fn post_json(port: u16, path: &str, body: &str) -> anyhow::Result<Box<dyn BufRead>> {
    post(port, path, "application/json", body.as_bytes())
}

/// Sends `body` as a POST of `content_type` to `path` on `127.0.0.1:port`; returns a reader of the
/// response body, or an error with the status and body when it is not 200.
pub fn post(port: u16, path: &str, content_type: &str, body: &[u8]) -> anyhow::Result<Box<dyn BufRead>> {
    let mut stream = TcpStream::connect(("127.0.0.1", port)).context("cannot connect to edgeway")?;
    stream.set_nodelay(true)?;
    let head = format!(
        "POST {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: {content_type}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
        body.len()
    );
    stream.write_all(head.as_bytes())?;
    stream.write_all(body)?;
    let mut reader = BufReader::new(stream);
    let mut status_line = String::new();
    reader.read_line(&mut status_line)?;
    let status = status_line.split_whitespace().nth(1).unwrap_or_default().to_owned();
    let mut chunked = false;
    loop {
        let mut header = String::new();
        if reader.read_line(&mut header)? == 0 || header == "\r\n" {
            break;
        }
        let lower = header.to_ascii_lowercase();
        chunked |= lower.starts_with("transfer-encoding:") && lower.contains("chunked");
    }
    if status != "200" {
        let mut rest = String::new();
        let _ = reader.read_to_string(&mut rest);
        bail!("{path} answered {status}: {rest}");
    }
    Ok(if chunked {
        Box::new(BufReader::new(Chunked { inner: reader, left: 0, done: false }))
    } else {
        Box::new(reader)
    })
}

/// Decodes `Transfer-Encoding: chunked`.
struct Chunked<R> {
    inner: R,
    /// Bytes left in the current chunk.
    left: usize,
    done: bool,
}

impl<R: BufRead> Read for Chunked<R> {
    fn read(&mut self, buffer: &mut [u8]) -> std::io::Result<usize> {
        if self.done {
            return Ok(0);
        }
        if self.left == 0 {
            let mut size_line = String::new();
            self.inner.read_line(&mut size_line)?;
            if size_line == "\r\n" {
                size_line.clear(); // the CRLF that ends the previous chunk
                self.inner.read_line(&mut size_line)?;
            }
            let hex = size_line.trim().split(';').next().unwrap_or_default();
            self.left = usize::from_str_radix(hex, 16)
                .map_err(|_| std::io::Error::new(std::io::ErrorKind::InvalidData, format!("bad chunk size {hex:?}")))?;
            if self.left == 0 {
                self.done = true;
                return Ok(0);
            }
        }
        let want = buffer.len().min(self.left);
        let n = self.inner.read(&mut buffer[..want])?;
        self.left -= n;
        Ok(n)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn chunked_bodies_are_decoded() {
        let wire = b"5\r\nhello\r\n7\r\n, world\r\n0\r\n\r\n";
        let mut decoded = String::new();
        Chunked { inner: &wire[..], left: 0, done: false }.read_to_string(&mut decoded).unwrap();
        assert_eq!(decoded, "hello, world");
    }
}
