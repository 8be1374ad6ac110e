//! Per-key rate limits: requests and tokens per rolling minute, tokens per UTC day.
//!
//! Requests are counted when admitted; tokens when the request ends (they are
//! not known before). A request is admitted while the key is *under* each
//! limit, so the request that crosses a token limit completes and the next
//! one waits, as OpenAI and LiteLLM do. Every refusal says when to retry.

use std::collections::VecDeque;

use edgeway_store::KeyLimits;

/// A rolling minute, in milliseconds.
pub const MINUTE_MS: i64 = 60_000;
/// A day, in milliseconds.
pub const DAY_MS: i64 = 86_400_000;

/// Which limit refused a request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Limit {
    /// Requests per minute.
    RequestsPerMinute,
    /// Tokens per minute.
    TokensPerMinute,
    /// Tokens per day.
    TokensPerDay,
}

impl Limit {
    /// How the limit is named in messages and headers.
    pub fn as_str(self) -> &'static str {
        match self {
            Limit::RequestsPerMinute => "requests per minute",
            Limit::TokensPerMinute => "tokens per minute",
            Limit::TokensPerDay => "tokens per day",
        }
    }
}

/// A refusal: which limit, its value, and how long until a request would be admitted.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct OverLimit {
    /// The limit.
    pub limit: Limit,
    /// Its configured value.
    pub value: u64,
    /// Milliseconds until it admits again.
    pub retry_after_ms: i64,
}

/// One key's use, in memory.
#[derive(Debug, Default)]
pub struct Usage {
    /// Admission times within the last minute.
    requests: VecDeque<i64>,
    /// (end time, tokens) of requests within the last minute.
    tokens: VecDeque<(i64, u64)>,
    /// The UTC day `day_tokens` counts, as days since the epoch.
    day: i64,
    /// Tokens used that day.
    day_tokens: u64,
}

impl Usage {
    /// Use carried over from before this process started: `day_tokens` so far today.
    pub fn resumed(now_ms: i64, day_tokens: u64) -> Self {
        Self { day: now_ms.div_euclid(DAY_MS), day_tokens, ..Self::default() }
    }

    fn expire(&mut self, now_ms: i64) {
        while self.requests.front().is_some_and(|&t| t <= now_ms - MINUTE_MS) {
            self.requests.pop_front();
        }
        while self.tokens.front().is_some_and(|&(t, _)| t <= now_ms - MINUTE_MS) {
            self.tokens.pop_front();
        }
        let today = now_ms.div_euclid(DAY_MS);
        if today != self.day {
            self.day = today;
            self.day_tokens = 0;
        }
    }

    /// Admits a request at `now_ms` (and counts it), or says which limit refuses it.
    pub fn admit(&mut self, limits: &KeyLimits, now_ms: i64) -> Result<(), OverLimit> {
        self.expire(now_ms);
        if let Some(rpm) = limits.requests_per_min {
            if self.requests.len() as u64 >= u64::from(rpm) {
                // Admitted again once enough of the window's requests have left it.
                let retry_after_ms = match rpm as usize {
                    0 => MINUTE_MS,
                    rpm => self.requests[self.requests.len() - rpm] + MINUTE_MS - now_ms,
                };
                return Err(OverLimit { limit: Limit::RequestsPerMinute, value: rpm.into(), retry_after_ms });
            }
        }
        if let Some(tpm) = limits.tokens_per_min {
            let mut used: u64 = self.tokens.iter().map(|&(_, n)| n).sum();
            if used >= tpm {
                // Wait until enough of the minute's tokens expire to fall under the limit.
                let mut retry_at = now_ms + MINUTE_MS;
                for &(t, n) in &self.tokens {
                    used -= n;
                    retry_at = t + MINUTE_MS;
                    if used < tpm {
                        break;
                    }
                }
                return Err(OverLimit { limit: Limit::TokensPerMinute, value: tpm, retry_after_ms: retry_at - now_ms });
            }
        }
        if let Some(tpd) = limits.tokens_per_day {
            if self.day_tokens >= tpd {
                return Err(OverLimit {
                    limit: Limit::TokensPerDay,
                    value: tpd,
                    retry_after_ms: (self.day + 1) * DAY_MS - now_ms,
                });
            }
        }
        self.requests.push_back(now_ms);
        Ok(())
    }

    /// Counts the tokens of a request that ended at `now_ms`.
    pub fn spend(&mut self, tokens: u64, now_ms: i64) {
        self.expire(now_ms);
        if tokens > 0 {
            self.tokens.push_back((now_ms, tokens));
            self.day_tokens += tokens;
        }
    }

    /// Requests in the current minute.
    pub fn requests_this_minute(&mut self, now_ms: i64) -> u64 {
        self.expire(now_ms);
        self.requests.len() as u64
    }

    /// Tokens in the current minute and the current UTC day.
    pub fn tokens(&mut self, now_ms: i64) -> (u64, u64) {
        self.expire(now_ms);
        (self.tokens.iter().map(|&(_, n)| n).sum(), self.day_tokens)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn limits(rpm: Option<u32>, tpm: Option<u64>, tpd: Option<u64>) -> KeyLimits {
        KeyLimits { requests_per_min: rpm, tokens_per_min: tpm, tokens_per_day: tpd, ..KeyLimits::default() }
    }

    #[test]
    fn exactly_rpm_requests_fit_in_a_minute_and_the_next_waits_for_the_oldest() {
        let limits = limits(Some(3), None, None);
        let mut usage = Usage::default();
        let start = 1_000_000;
        for i in 0..3 {
            assert_eq!(usage.admit(&limits, start + i * 1000), Ok(()), "request {}", i + 1);
        }
        let refused = usage.admit(&limits, start + 5000).unwrap_err();
        assert_eq!(refused.limit, Limit::RequestsPerMinute);
        assert_eq!(refused.retry_after_ms, MINUTE_MS - 5000, "the first request leaves the window at start + 60 s");
        // One millisecond before the first leaves: still refused; at the boundary: admitted.
        assert!(usage.admit(&limits, start + MINUTE_MS - 1).is_err());
        assert_eq!(usage.admit(&limits, start + MINUTE_MS), Ok(()));
        assert!(usage.admit(&limits, start + MINUTE_MS).is_err(), "the second is still in the window");
    }

    #[test]
    fn a_zero_limit_refuses_everything() {
        let mut usage = Usage::default();
        assert!(usage.admit(&limits(Some(0), None, None), 5).is_err());
        assert!(usage.admit(&limits(None, Some(0), None), 5).is_err());
        assert!(usage.admit(&limits(None, None, Some(0)), 5).is_err());
    }

    #[test]
    fn tokens_per_minute_admit_while_under_and_wait_until_enough_expire() {
        let limits = limits(None, Some(100), None);
        let mut usage = Usage::default();
        let t = 10 * MINUTE_MS;
        assert_eq!(usage.admit(&limits, t), Ok(()));
        usage.spend(60, t);
        assert_eq!(usage.admit(&limits, t + 1000), Ok(()), "60 < 100");
        usage.spend(39, t + 1000);
        assert_eq!(usage.admit(&limits, t + 2000), Ok(()), "99 < 100: still under");
        usage.spend(1, t + 2000);
        let refused = usage.admit(&limits, t + 3000).unwrap_err();
        assert_eq!(refused.limit, Limit::TokensPerMinute);
        // Dropping the first 60 brings 100 to 40: admitted once it expires at t + 60 s.
        assert_eq!(refused.retry_after_ms, MINUTE_MS - 3000);
        assert!(usage.admit(&limits, t + MINUTE_MS - 1).is_err());
        assert_eq!(usage.admit(&limits, t + MINUTE_MS), Ok(()));
    }

    #[test]
    fn tokens_per_day_reset_at_utc_midnight_and_resume_after_a_restart() {
        let limits = limits(None, None, Some(500));
        let noon = 20_000 * DAY_MS + DAY_MS / 2;
        let mut usage = Usage::resumed(noon, 499);
        assert_eq!(usage.admit(&limits, noon), Ok(()));
        usage.spend(1, noon);
        let refused = usage.admit(&limits, noon + 1).unwrap_err();
        assert_eq!(refused.limit, Limit::TokensPerDay);
        assert_eq!(refused.retry_after_ms, DAY_MS / 2 - 1);
        assert_eq!(usage.admit(&limits, 20_001 * DAY_MS), Ok(()), "a new day");
        assert_eq!(usage.tokens(20_001 * DAY_MS), (0, 0));
    }
}
