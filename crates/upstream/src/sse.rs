//! Splitting a byte stream into server-sent events' `data` payloads.
//!
//! Network reads cut anywhere, including inside a line or a UTF-8 character,
//! so bytes are buffered until a blank line ends an event.

/// Accumulates bytes and yields complete `data:` payloads.
#[derive(Debug, Default)]
pub struct SseParser {
    buffer: Vec<u8>,
}

impl SseParser {
    /// Adds bytes and returns the data of every event they complete.
    ///
    /// Multi-line data is joined with `\n`, comments and other fields are
    /// skipped, and both `\n` and `\r\n` line ends are accepted.
    pub fn push(&mut self, bytes: &[u8]) -> Vec<String> {
        self.buffer.extend_from_slice(bytes);
        let mut events = Vec::new();
        while let Some(end) = find_event_end(&self.buffer) {
            let raw: Vec<u8> = self.buffer.drain(..end.0 + end.1).collect();
            let text = String::from_utf8_lossy(&raw[..end.0]);
            let data: Vec<&str> = text
                .lines()
                .filter_map(|line| line.strip_prefix("data:").map(|d| d.strip_prefix(' ').unwrap_or(d)))
                .collect();
            if !data.is_empty() {
                events.push(data.join("\n"));
            }
        }
        events
    }
}

/// Position of the first blank line (`\n\n` or `\r\n\r\n`) and its length.
fn find_event_end(buffer: &[u8]) -> Option<(usize, usize)> {
    let lf = buffer.windows(2).position(|w| w == b"\n\n").map(|at| (at, 2));
    let crlf = buffer.windows(4).position(|w| w == b"\r\n\r\n").map(|at| (at, 4));
    match (lf, crlf) {
        (Some(a), Some(b)) => Some(if a.0 <= b.0 { a } else { b }),
        (a, b) => a.or(b),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn events_split_anywhere_are_reassembled() {
        let wire = "data: {\"a\":1}\n\n: keep-alive\n\ndata: caf\u{e9}\n\ndata: [DONE]\n\n".as_bytes();
        for cut in 0..wire.len() {
            let mut parser = SseParser::default();
            let mut events = parser.push(&wire[..cut]);
            events.extend(parser.push(&wire[cut..]));
            assert_eq!(events, vec!["{\"a\":1}", "caf\u{e9}", "[DONE]"], "cut at {cut}");
        }
    }

    #[test]
    fn crlf_and_multiline_data() {
        let mut parser = SseParser::default();
        assert_eq!(parser.push(b"event: x\r\ndata: one\r\ndata: two\r\n\r\n"), vec!["one\ntwo"]);
    }
}
