//! [`KeepAlive`]: how long a local model stays loaded after its last request
//! (Ollama's `keep_alive`), and the parser for the forms Ollama accepts.

use std::time::{Duration, Instant, SystemTime};

/// How long a model stays in memory once its last request has ended.
///
/// Ollama's `keep_alive` field, typed: a request may set it, a model's
/// configuration gives the default. `For(Duration::ZERO)` unloads the model
/// right after the answer.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum KeepAlive {
    /// Never unloaded for being idle (Ollama's negative `keep_alive`).
    Forever,
    /// Unloaded this long after the last request ends; zero unloads it at once.
    For(Duration),
}

impl Default for KeepAlive {
    /// Ollama's default: five minutes.
    fn default() -> Self {
        KeepAlive::OLLAMA_DEFAULT
    }
}

impl KeepAlive {
    /// Ollama's default `keep_alive`: five minutes.
    pub const OLLAMA_DEFAULT: KeepAlive = KeepAlive::For(Duration::from_secs(5 * 60));

    /// Unload right after the answer.
    pub const ZERO: KeepAlive = KeepAlive::For(Duration::ZERO);

    /// Whether the model is to be unloaded as soon as it is idle.
    pub fn is_zero(self) -> bool {
        self == KeepAlive::ZERO
    }

    /// A number of seconds, as Ollama takes a JSON number: negative is forever,
    /// fractions are cut (Ollama truncates to whole seconds), not-a-number is an error.
    pub fn from_seconds(seconds: f64) -> Result<Self, String> {
        if seconds.is_nan() {
            return Err("keep_alive must be a number of seconds or a duration such as \"5m\"".into());
        }
        if seconds < 0.0 {
            return Ok(KeepAlive::Forever);
        }
        // Beyond what a Duration holds is forever in practice.
        if seconds >= u64::MAX as f64 {
            return Ok(KeepAlive::Forever);
        }
        Ok(KeepAlive::For(Duration::from_secs(seconds.trunc() as u64)))
    }

    /// Parses Ollama's string forms: a Go duration (`"5m"`, `"30s"`, `"1h30m"`, `"500ms"`,
    /// `"0"`), a bare number of seconds (`"300"`, as `OLLAMA_KEEP_ALIVE` takes it), and any
    /// negative value (`"-1"`, `"-1m"`) for forever. The error names what was expected.
    pub fn parse(text: &str) -> Result<Self, String> {
        let text = text.trim();
        let expected = || {
            format!(
                "keep_alive \"{text}\" is not a duration: use a number of seconds or a duration such as \"30s\", \"5m\" or \"1h\" (negative keeps the model loaded)"
            )
        };
        if text.is_empty() {
            return Err(expected());
        }
        if let Ok(seconds) = text.parse::<f64>() {
            return if seconds.is_finite() { Self::from_seconds(seconds) } else { Err(expected()) };
        }
        let (negative, body) = match text.as_bytes()[0] {
            b'-' => (true, &text[1..]),
            b'+' => (false, &text[1..]),
            _ => (false, text),
        };
        let seconds = go_duration_seconds(body).ok_or_else(expected)?;
        if negative && seconds > 0.0 {
            return Ok(KeepAlive::Forever);
        }
        Self::from_duration_seconds(seconds)
    }

    /// When a model idle since `now` is to be unloaded; `None` is never.
    pub fn deadline(self, now: Instant) -> Option<Instant> {
        match self {
            KeepAlive::Forever => None,
            KeepAlive::For(duration) => now.checked_add(duration),
        }
    }

    /// The wall-clock time matching [`KeepAlive::deadline`], for listings (`expires_at`).
    pub fn wall_deadline(self, now: SystemTime) -> Option<SystemTime> {
        match self {
            KeepAlive::Forever => None,
            KeepAlive::For(duration) => now.checked_add(duration),
        }
    }

    /// Seconds with a fraction (a Go duration may say `500ms`): kept to the nanosecond.
    fn from_duration_seconds(seconds: f64) -> Result<Self, String> {
        if seconds >= u64::MAX as f64 {
            return Ok(KeepAlive::Forever);
        }
        Ok(KeepAlive::For(Duration::from_secs_f64(seconds)))
    }
}

/// The seconds a Go duration string (without its sign) stands for: one or more
/// `<number><unit>` pieces, units `ns`, `us`, `µs`, `ms`, `s`, `m`, `h`.
fn go_duration_seconds(text: &str) -> Option<f64> {
    let mut rest = text;
    let mut total = 0.0;
    if rest.is_empty() {
        return None;
    }
    while !rest.is_empty() {
        let number_len = rest.find(|c: char| !(c.is_ascii_digit() || c == '.')).unwrap_or(rest.len());
        if number_len == 0 {
            return None;
        }
        let number: f64 = rest[..number_len].parse().ok()?;
        rest = &rest[number_len..];
        let unit_len = rest.find(|c: char| c.is_ascii_digit() || c == '.').unwrap_or(rest.len());
        let scale = match &rest[..unit_len] {
            "ns" => 1e-9,
            "us" | "µs" | "μs" => 1e-6,
            "ms" => 1e-3,
            "s" => 1.0,
            "m" => 60.0,
            "h" => 3600.0,
            _ => return None,
        };
        rest = &rest[unit_len..];
        total += number * scale;
    }
    total.is_finite().then_some(total)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn secs(n: u64) -> KeepAlive {
        KeepAlive::For(Duration::from_secs(n))
    }

    #[test]
    fn ollamas_duration_strings() {
        assert_eq!(KeepAlive::parse("5m"), Ok(secs(300)));
        assert_eq!(KeepAlive::parse("30s"), Ok(secs(30)));
        assert_eq!(KeepAlive::parse("1h"), Ok(secs(3600)));
        assert_eq!(KeepAlive::parse("1h30m"), Ok(secs(5400)));
        assert_eq!(KeepAlive::parse("1.5h"), Ok(secs(5400)));
        assert_eq!(KeepAlive::parse("500ms"), Ok(KeepAlive::For(Duration::from_millis(500))));
        assert_eq!(KeepAlive::parse("0"), Ok(KeepAlive::ZERO));
        assert_eq!(KeepAlive::parse("0s"), Ok(KeepAlive::ZERO));
        assert!(KeepAlive::parse("0").unwrap().is_zero());
    }

    #[test]
    fn numbers_are_seconds_and_negative_is_forever() {
        assert_eq!(KeepAlive::parse("300"), Ok(secs(300)));
        assert_eq!(KeepAlive::parse("-1"), Ok(KeepAlive::Forever));
        assert_eq!(KeepAlive::parse("-1m"), Ok(KeepAlive::Forever));
        assert_eq!(KeepAlive::from_seconds(-1.0), Ok(KeepAlive::Forever));
        assert_eq!(KeepAlive::from_seconds(0.0), Ok(KeepAlive::ZERO));
        assert_eq!(KeepAlive::from_seconds(90.7), Ok(secs(90)));
        assert_eq!(KeepAlive::from_seconds(1e300), Ok(KeepAlive::Forever));
        assert!(KeepAlive::from_seconds(f64::NAN).is_err());
    }

    #[test]
    fn nonsense_is_refused_with_the_forms_it_takes() {
        for bad in ["", "5 minutes", "m", "5x", "1h-3m", "inf", "NaN", "--1"] {
            let error = KeepAlive::parse(bad).unwrap_err();
            assert!(error.contains("30s"), "{bad}: {error}");
        }
    }

    #[test]
    fn deadlines() {
        let now = Instant::now();
        assert_eq!(KeepAlive::Forever.deadline(now), None);
        assert_eq!(KeepAlive::ZERO.deadline(now), Some(now));
        assert_eq!(secs(5).deadline(now), Some(now + Duration::from_secs(5)));
        assert_eq!(KeepAlive::default(), secs(300));
    }
}
