//! When a request's new text leaves the engine.
//!
//! Every event the engine sends wakes the HTTP runtime, and on a 2-core box
//! that runtime can only run by taking a core from llama.cpp's threads, which
//! then wait for each other at the next barrier. Measured on SmolLM2 against a
//! non-streamed answer (bench/README.md), one event per token cost 3.5 % of
//! generation speed, and one per 16 ms about 1 %. So text is held and sent at
//! most once per `stream_interval` (16 ms by default: one frame of a 60 Hz
//! screen, so a chat window looks the same).
//!
//! A model slower than one token per interval still sends every token at once,
//! and so does every first token: pacing never delays time to first token. Text
//! held before a long step (one that reads a prompt) is sent first, so no token
//! waits for another request's prompt. A client that does not stream gets its
//! answer in one piece at the end.

use std::time::{Duration, Instant};

/// Decides, token by token, whether one request's held text is sent now.
#[derive(Debug, Clone)]
pub struct Pacer {
    /// Least time between two sends; `None`: send only at the end (the client does not stream).
    interval: Option<Duration>,
    last_sent: Option<Instant>,
}

impl Pacer {
    /// Paces a streaming request: at most one send per `interval` (zero: every token).
    pub fn streaming(interval: Duration) -> Self {
        Self { interval: Some(interval), last_sent: None }
    }

    /// Holds everything until the end, for a client that reads the answer in one piece.
    pub fn whole() -> Self {
        Self { interval: None, last_sent: None }
    }

    /// Whether text produced at `now` should be sent at once.
    pub fn due(&self, now: Instant) -> bool {
        match (self.interval, self.last_sent) {
            (None, _) => false,
            (Some(_), None) => true,
            (Some(interval), Some(last)) => now.saturating_duration_since(last) >= interval,
        }
    }

    /// Whether held text should go out before a step that may take long (it reads a prompt).
    pub fn flushes_early(&self) -> bool {
        self.interval.is_some()
    }

    /// Records a send at `now`.
    pub fn sent(&mut self, now: Instant) {
        self.last_sent = Some(now);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MS: Duration = Duration::from_millis(1);

    #[test]
    fn the_first_token_goes_at_once_and_later_ones_once_per_interval() {
        let start = Instant::now();
        let mut pacer = Pacer::streaming(16 * MS);
        assert!(pacer.due(start));
        pacer.sent(start);
        assert!(!pacer.due(start + 5 * MS));
        assert!(!pacer.due(start + 15 * MS));
        assert!(pacer.due(start + 16 * MS));
        pacer.sent(start + 20 * MS);
        assert!(!pacer.due(start + 30 * MS));
        assert!(pacer.due(start + 36 * MS));
    }

    #[test]
    fn a_zero_interval_sends_every_token() {
        let start = Instant::now();
        let mut pacer = Pacer::streaming(Duration::ZERO);
        for i in 0..5 {
            let now = start + i * MS / 10;
            assert!(pacer.due(now));
            pacer.sent(now);
        }
    }

    #[test]
    fn tokens_slower_than_the_interval_are_never_held() {
        let start = Instant::now();
        let mut pacer = Pacer::streaming(16 * MS);
        for i in 0..5 {
            let now = start + i * 40 * MS;
            assert!(pacer.due(now));
            pacer.sent(now);
        }
    }

    #[test]
    fn a_whole_answer_is_held_to_the_end() {
        let pacer = Pacer::whole();
        assert!(!pacer.due(Instant::now()));
        assert!(!pacer.flushes_early());
        assert!(Pacer::streaming(16 * MS).flushes_early());
    }
}
