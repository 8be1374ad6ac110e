//! Timestamps as Ollama writes them (RFC 3339, UTC, microseconds).

use std::time::SystemTime;

use chrono::{DateTime, SecondsFormat, Utc};

/// `time` as RFC 3339 in UTC with microseconds, e.g. `2024-06-04T14:38:31.837530Z`.
pub fn rfc3339(time: SystemTime) -> String {
    DateTime::<Utc>::from(time).to_rfc3339_opts(SecondsFormat::Micros, true)
}

/// Now, as [`rfc3339`] writes it.
pub fn now() -> String {
    rfc3339(SystemTime::now())
}

#[cfg(test)]
mod tests {
    use std::time::{Duration, UNIX_EPOCH};

    use super::*;

    fn at(seconds: u64, micros: u32) -> String {
        rfc3339(UNIX_EPOCH + Duration::from_secs(seconds) + Duration::from_micros(u64::from(micros)))
    }

    #[test]
    fn known_instants() {
        assert_eq!(at(0, 0), "1970-01-01T00:00:00.000000Z");
        assert_eq!(at(951_782_400, 0), "2000-02-29T00:00:00.000000Z");
        assert_eq!(at(1_700_000_000, 42), "2023-11-14T22:13:20.000042Z");
        assert_eq!(at(4_102_444_799, 999_999), "2099-12-31T23:59:59.999999Z");
    }
}
