//! One request, as the log keeps it.

/// Everything the log records about one request.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct QueryRecord {
    /// When the request arrived, in milliseconds since the Unix epoch.
    pub ts_ms: i64,
    /// The API key's id, once keys exist.
    pub key_id: Option<String>,
    /// `chat` or `completions`.
    pub endpoint: String,
    /// The domain the router assigned.
    pub domain: Option<String>,
    /// The complexity score.
    pub score: Option<f32>,
    /// `edge`, `cloud`, or `none` when it failed before routing.
    pub route: String,
    /// Why it went there.
    pub reason: Option<String>,
    /// The model that answered.
    pub model: Option<String>,
    /// What failed when a fallback answered.
    pub fallback_from: Option<String>,
    /// The answering model's tier, when the router has tiers.
    pub tier: Option<u32>,
    /// The models tried before the one that answered, and why each was left
    /// (`small@0: low_confidence (-1.80) → cloud-a@2: failed (…)`).
    pub tried: Option<String>,
    /// Tokens in.
    pub prompt_tokens: u32,
    /// Tokens out.
    pub completion_tokens: u32,
    /// Prompt tokens served from the KV cache.
    pub cached_tokens: u32,
    /// Time to first token, when there was one.
    pub ttft_ms: Option<f64>,
    /// Time from arrival to the end.
    pub latency_ms: f64,
    /// Money spent, in the currency of the configured prices.
    pub cost: f64,
    /// Energy used, in joules, when measured.
    pub energy_j: Option<f64>,
    /// How the energy was measured (`rapl`, `cpu-time-model`).
    pub energy_source: Option<String>,
    /// `ok`, `cancelled`, or an error code.
    pub status: String,
    /// The error message, for failures.
    pub error: Option<String>,
    /// The prompt, unless text storage is off. It never leaves the device.
    pub prompt_text: Option<String>,
    /// The answer, unless text storage is off.
    pub answer_text: Option<String>,
    /// The structured-output format asked for (`json_object`, `json_schema`, `grammar`), if any.
    pub format: Option<String>,
    /// Whether the answer had that format: `valid`, `invalid`, `truncated` or `unchecked`.
    pub format_verdict: Option<String>,
    /// An inspected image's verdict (`good`, `defective`); its anomaly score is in `score`.
    pub label: Option<String>,
    /// The inspection model's precision (`fp32`, `int8`).
    pub precision: Option<String>,
}

/// Now, in milliseconds since the Unix epoch: the log's timestamps (0 if the clock is before 1970).
pub fn now_ms() -> i64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_millis() as i64)
}

/// The timestamp `hours` before now, for reading the last hours of the log; `None` is the
/// beginning (0).
pub fn since_hours_ms(hours: Option<f64>) -> i64 {
    hours.map_or(0, |hours| now_ms() - (hours * 3_600_000.0) as i64)
}
