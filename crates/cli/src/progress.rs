//! Progress bars for long-running commands, drawn on stderr.

use edgeway_models::PullProgress;
use indicatif::{ProgressBar, ProgressStyle};

/// Draws a model pull as one byte-count bar.
pub struct PullBar {
    bar: ProgressBar,
}

impl PullBar {
    /// A bar for pulling `name` (`size` bytes).
    pub fn new(name: &str, size: u64) -> Self {
        let bar = ProgressBar::new(size);
        bar.set_style(
            ProgressStyle::with_template("{prefix} [{bar:30}] {bytes}/{total_bytes} {msg}")
                .unwrap_or_else(|_| ProgressStyle::default_bar())
                .progress_chars("=> "),
        );
        bar.set_prefix(format!("pulling {name}"));
        Self { bar }
    }

    /// Applies one progress report.
    pub fn update(&self, progress: PullProgress) {
        match progress {
            PullProgress::Downloading { part, parts, package } => {
                self.bar.set_message(format!("downloading {package} ({part}/{parts})"));
            }
            PullProgress::Written { done, .. } => self.bar.set_position(done),
        }
    }

    /// Removes the bar.
    pub fn finish(&self) {
        self.bar.finish_and_clear();
    }
}

/// A counting bar for `len` items, labelled `prefix`, with rate and time left.
pub fn bar(len: u64, prefix: &str) -> ProgressBar {
    let bar = ProgressBar::new(len);
    bar.set_style(
        ProgressStyle::with_template("{prefix} [{bar:30}] {pos}/{len} {per_sec} eta {eta} {msg}")
            .unwrap_or_else(|_| ProgressStyle::default_bar())
            .progress_chars("=> "),
    );
    bar.set_prefix(prefix.to_owned());
    bar
}
