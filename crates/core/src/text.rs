//! Turning generated token bytes into text that is safe to send.
//!
//! Two things make this harder than concatenating token pieces:
//! - a token may end in the middle of a UTF-8 character (emoji, CJK), so bytes
//!   are held until the character is complete;
//! - a stop sequence may span several tokens, so any tail that could still
//!   become a stop sequence is held back until it either matches (and is
//!   dropped with everything after it) or cannot match any more.
//!
//! [`TextAssembler`] is a pure state machine, so streamed and non-streamed
//! answers are built by the same code and tested without a model.

/// What one [`TextAssembler::push`] produced.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Pushed {
    /// Text that is final and may be sent to the client.
    pub text: String,
    /// A stop sequence matched; generation should end.
    pub stopped: bool,
}

/// Assembles token bytes into text and watches for stop sequences.
#[derive(Debug, Clone)]
pub struct TextAssembler {
    stops: Vec<String>,
    /// Bytes of an incomplete UTF-8 character at the end of the output.
    partial: Vec<u8>,
    /// Decoded text not yet released because it may begin a stop sequence.
    held: String,
    stopped: bool,
}

impl TextAssembler {
    /// An assembler that ends at the first of `stops` (empty strings are ignored).
    pub fn new(stops: &[String]) -> Self {
        Self {
            stops: stops.iter().filter(|s| !s.is_empty()).cloned().collect(),
            partial: Vec::new(),
            held: String::new(),
            stopped: false,
        }
    }

    /// Whether a stop sequence has matched.
    pub fn is_stopped(&self) -> bool {
        self.stopped
    }

    /// Adds one token's bytes and returns the text that became final.
    ///
    /// After a stop sequence has matched, further input is ignored.
    pub fn push(&mut self, bytes: &[u8]) -> Pushed {
        if self.stopped {
            return Pushed { text: String::new(), stopped: true };
        }
        self.partial.extend_from_slice(bytes);
        decode_complete_prefix(&mut self.partial, &mut self.held);

        if let Some(at) = self.earliest_stop() {
            self.held.truncate(at);
            self.stopped = true;
            return Pushed { text: std::mem::take(&mut self.held), stopped: true };
        }
        let keep = self.longest_stop_prefix_suffix();
        let release = self.held.len() - keep;
        let text = self.held[..release].to_owned();
        self.held.drain(..release);
        Pushed { text, stopped: false }
    }

    /// Releases whatever is still held when generation ends for another reason.
    ///
    /// An incomplete trailing character becomes U+FFFD, as a lossy decoder would.
    pub fn finish(&mut self) -> String {
        if self.stopped {
            return String::new();
        }
        if !self.partial.is_empty() {
            self.held.push_str(&String::from_utf8_lossy(&self.partial));
            self.partial.clear();
        }
        std::mem::take(&mut self.held)
    }

    /// Byte offset in `held` of the earliest complete stop sequence.
    fn earliest_stop(&self) -> Option<usize> {
        self.stops.iter().filter_map(|stop| self.held.find(stop.as_str())).min()
    }

    /// Length of the longest suffix of `held` that is a proper prefix of a stop sequence.
    fn longest_stop_prefix_suffix(&self) -> usize {
        let mut best = 0;
        for stop in &self.stops {
            let max = stop.len().saturating_sub(1).min(self.held.len());
            for len in (best + 1..=max).rev() {
                let start = self.held.len() - len;
                if self.held.is_char_boundary(start) && stop.as_bytes().starts_with(&self.held.as_bytes()[start..]) {
                    best = len;
                    break;
                }
            }
        }
        best
    }
}

/// Moves the longest valid UTF-8 prefix of `bytes` into `out`.
///
/// Invalid sequences (not merely incomplete ones) become U+FFFD so one bad
/// token cannot wedge the stream.
fn decode_complete_prefix(bytes: &mut Vec<u8>, out: &mut String) {
    let mut consumed = 0;
    loop {
        match std::str::from_utf8(&bytes[consumed..]) {
            Ok(valid) => {
                out.push_str(valid);
                consumed = bytes.len();
                break;
            }
            Err(error) => {
                let valid_up_to = consumed + error.valid_up_to();
                // from_utf8 has just validated this range, so the fallback is never taken.
                out.push_str(std::str::from_utf8(&bytes[consumed..valid_up_to]).unwrap_or_default());
                match error.error_len() {
                    Some(bad) => {
                        out.push(char::REPLACEMENT_CHARACTER);
                        consumed = valid_up_to + bad;
                    }
                    None => {
                        consumed = valid_up_to;
                        break;
                    }
                }
            }
        }
    }
    bytes.drain(..consumed);
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn run(stops: &[&str], pieces: &[&[u8]]) -> (String, bool) {
        let stops: Vec<String> = stops.iter().map(|s| s.to_string()).collect();
        let mut assembler = TextAssembler::new(&stops);
        let mut out = String::new();
        for piece in pieces {
            let pushed = assembler.push(piece);
            out.push_str(&pushed.text);
            if pushed.stopped {
                return (out, true);
            }
        }
        out.push_str(&assembler.finish());
        (out, false)
    }

    #[test]
    fn stop_sequence_split_across_tokens_is_removed() {
        assert_eq!(run(&["\n\n"], &[b"Hello", b"\n", b"\nWorld"]), ("Hello".into(), true));
    }

    #[test]
    fn near_miss_is_released() {
        assert_eq!(run(&["STOP"], &[b"ST", b"O", b"P!"]), ("".into(), true));
        assert_eq!(run(&["STOP"], &[b"ST", b"O", b"O"]), ("STOO".into(), false));
    }

    #[test]
    fn held_text_is_not_released_early() {
        let stops = vec!["abc".to_string()];
        let mut assembler = TextAssembler::new(&stops);
        assert_eq!(assembler.push(b"xab").text, "x");
        assert_eq!(assembler.push(b"d").text, "abd");
    }

    #[test]
    fn multibyte_character_split_across_tokens() {
        let crab = "🦀".as_bytes();
        assert_eq!(run(&[], &[&crab[..1], &crab[1..3], &crab[3..]]), ("🦀".into(), false));
    }

    #[test]
    fn truncated_character_becomes_replacement() {
        let crab = "🦀".as_bytes();
        assert_eq!(run(&[], &[b"a", &crab[..2]]), ("a\u{FFFD}".into(), false));
    }

    #[test]
    fn invalid_bytes_do_not_wedge_the_stream() {
        assert_eq!(run(&[], &[b"a\xFFb"]), ("a\u{FFFD}b".into(), false));
    }

    #[test]
    fn earliest_of_several_stops_wins() {
        assert_eq!(run(&["world", "lo"], &[b"hello world"]), ("hel".into(), true));
    }

    proptest! {
        /// Without stops, any split of any UTF-8 text reassembles exactly.
        #[test]
        fn reassembles_any_split(text in "\\PC{0,40}", cuts in proptest::collection::vec(0usize..200, 0..8)) {
            let bytes = text.as_bytes();
            let mut points: Vec<usize> = cuts.into_iter().map(|c| c % (bytes.len() + 1)).collect();
            points.sort_unstable();
            let mut pieces = Vec::new();
            let mut last = 0;
            for p in points { pieces.push(&bytes[last..p]); last = p; }
            pieces.push(&bytes[last..]);
            prop_assert_eq!(run(&[], &pieces), (text.clone(), false));
        }

        /// With a stop string, the output is exactly the text before its first occurrence.
        #[test]
        fn output_is_prefix_before_first_stop(text in "[ab\\n]{0,30}", stop in "[ab\\n]{1,3}", split in 0usize..31) {
            let bytes = text.as_bytes();
            let split = split.min(bytes.len());
            let (out, stopped) = run(&[stop.as_str()], &[&bytes[..split], &bytes[split..]]);
            match text.find(&stop) {
                Some(at) => { prop_assert!(stopped); prop_assert_eq!(out, &text[..at]); }
                None => { prop_assert!(!stopped); prop_assert_eq!(out, text.clone()); }
            }
        }
    }
}
