//! How much energy the engine uses, per decode step.
//!
//! Two sources, best first:
//! - **RAPL** (`/sys/class/powercap/intel-rapl:N/energy_uj`, also on AMD Zen):
//!   the CPU package's own energy counter, when readable (root-only since
//!   Linux 5.10 unless a udev rule opens it);
//! - **the CPU-time model**: the process's CPU time times a configured power
//!   per busy core, what CodeCarbon and others fall back to.
//!
//! Every figure carries the name of its source, so nobody mistakes an
//! estimate for a measurement.

use std::path::{Path, PathBuf};

/// Where energy figures come from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EnergySourceKind {
    /// Measured by the CPU's RAPL counters.
    Rapl,
    /// Estimated as CPU time × watts per core.
    CpuTimeModel,
}

impl EnergySourceKind {
    /// `rapl` or `cpu-time-model`.
    pub fn as_str(self) -> &'static str {
        match self {
            EnergySourceKind::Rapl => "rapl",
            EnergySourceKind::CpuTimeModel => "cpu-time-model",
        }
    }
}

/// One RAPL package counter.
#[derive(Debug, Clone)]
struct RaplCounter {
    energy_file: PathBuf,
    /// The counter wraps to zero after this many microjoules.
    max_uj: u64,
}

/// A reading to measure from.
#[derive(Debug, Clone)]
pub enum Mark {
    /// Microjoules per package.
    Rapl(Vec<u64>),
    /// Process CPU seconds.
    CpuTime(f64),
}

/// Measures energy between two points in time.
#[derive(Debug, Clone)]
pub struct EnergyMeter {
    rapl: Vec<RaplCounter>,
    watts_per_core: f64,
}

impl EnergyMeter {
    /// RAPL under `powercap_root` if any package counter is readable, else the CPU-time model.
    pub fn detect(powercap_root: &Path, watts_per_core: f64) -> Self {
        let mut rapl = Vec::new();
        if let Ok(entries) = std::fs::read_dir(powercap_root) {
            for entry in entries.flatten() {
                let name = entry.file_name().to_string_lossy().into_owned();
                // Top-level package domains only (intel-rapl:0), not their subzones (intel-rapl:0:0).
                if !name.starts_with("intel-rapl:") || name.matches(':').count() != 1 {
                    continue;
                }
                let dir = entry.path();
                let energy_file = dir.join("energy_uj");
                let readable = read_u64(&energy_file).is_some();
                let max_uj = read_u64(&dir.join("max_energy_range_uj")).unwrap_or(u64::MAX);
                if readable {
                    rapl.push(RaplCounter { energy_file, max_uj });
                }
            }
        }
        rapl.sort_by(|a, b| a.energy_file.cmp(&b.energy_file));
        Self { rapl, watts_per_core }
    }

    /// The system's meter: `/sys/class/powercap`, else the model.
    pub fn system(watts_per_core: f64) -> Self {
        Self::detect(Path::new("/sys/class/powercap"), watts_per_core)
    }

    /// Which source the figures come from.
    pub fn kind(&self) -> EnergySourceKind {
        if self.rapl.is_empty() {
            EnergySourceKind::CpuTimeModel
        } else {
            EnergySourceKind::Rapl
        }
    }

    /// A reading to measure from.
    pub fn mark(&self) -> Mark {
        if self.rapl.is_empty() {
            Mark::CpuTime(process_cpu_seconds())
        } else {
            Mark::Rapl(self.rapl.iter().map(|c| read_u64(&c.energy_file).unwrap_or(0)).collect())
        }
    }

    /// Joules used since `mark`.
    pub fn joules_since(&self, mark: &Mark) -> f64 {
        match mark {
            Mark::CpuTime(before) => (process_cpu_seconds() - before).max(0.0) * self.watts_per_core,
            Mark::Rapl(before) => {
                let micro: u64 = self
                    .rapl
                    .iter()
                    .zip(before)
                    .map(|(counter, &then)| {
                        let now = read_u64(&counter.energy_file).unwrap_or(then);
                        if now >= then {
                            now - then
                        } else {
                            // The counter wrapped around.
                            counter.max_uj.saturating_sub(then) + now
                        }
                    })
                    .sum();
                micro as f64 / 1e6
            }
        }
    }
}

/// Energy over a sliding window, for the rolling power draw the power budget watches.
#[derive(Debug)]
pub struct PowerWindow {
    window: std::time::Duration,
    samples: std::sync::Mutex<std::collections::VecDeque<(std::time::Instant, f64)>>,
}

impl PowerWindow {
    /// A window of the given length.
    pub fn new(window: std::time::Duration) -> Self {
        Self { window, samples: std::sync::Mutex::new(std::collections::VecDeque::new()) }
    }

    /// Adds the energy of one step that just ended.
    pub fn add(&self, joules: f64) {
        let now = std::time::Instant::now();
        if let Ok(mut samples) = self.samples.lock() {
            samples.push_back((now, joules));
            while samples.front().is_some_and(|(at, _)| now.duration_since(*at) > self.window) {
                samples.pop_front();
            }
        }
    }

    /// Average watts over the window (zero when idle).
    pub fn watts(&self) -> f64 {
        let now = std::time::Instant::now();
        let Ok(samples) = self.samples.lock() else { return 0.0 };
        // A fold from +0.0: an empty `sum()` of floats is -0.0, which /health would print.
        let joules = samples
            .iter()
            .filter(|(at, _)| now.duration_since(*at) <= self.window)
            .fold(0.0, |total, (_, j)| total + j);
        joules / self.window.as_secs_f64()
    }
}

fn read_u64(path: &Path) -> Option<u64> {
    std::fs::read_to_string(path).ok()?.trim().parse().ok()
}

/// CPU time used by this process, all threads, in seconds.
fn process_cpu_seconds() -> f64 {
    let mut spec = libc::timespec { tv_sec: 0, tv_nsec: 0 };
    // SAFETY: clock_gettime writes one timespec into the valid, exclusively
    // borrowed `spec`; CLOCK_PROCESS_CPUTIME_ID is supported on Linux.
    let result = unsafe { libc::clock_gettime(libc::CLOCK_PROCESS_CPUTIME_ID, &mut spec) };
    if result != 0 {
        return 0.0;
    }
    spec.tv_sec as f64 + spec.tv_nsec as f64 / 1e9
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rapl_counters_are_summed_and_wraparound_is_handled() {
        let root = std::env::temp_dir().join(format!("edgeway-rapl-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&root);
        for (zone, energy, max) in
            [("intel-rapl:0", 1_000_000u64, 5_000_000u64), ("intel-rapl:1", 4_900_000, 5_000_000)]
        {
            let dir = root.join(zone);
            std::fs::create_dir_all(&dir).unwrap();
            std::fs::write(dir.join("energy_uj"), energy.to_string()).unwrap();
            std::fs::write(dir.join("max_energy_range_uj"), max.to_string()).unwrap();
        }
        // A subzone must be ignored.
        std::fs::create_dir_all(root.join("intel-rapl:0:0")).unwrap();
        std::fs::write(root.join("intel-rapl:0:0").join("energy_uj"), "7").unwrap();

        let meter = EnergyMeter::detect(&root, 5.0);
        assert_eq!(meter.kind(), EnergySourceKind::Rapl);
        let mark = meter.mark();
        std::fs::write(root.join("intel-rapl:0").join("energy_uj"), "3000000").unwrap(); // +2 J
        std::fs::write(root.join("intel-rapl:1").join("energy_uj"), "400000").unwrap(); // wrapped: +0.5 J
        assert!((meter.joules_since(&mark) - 2.5).abs() < 1e-9);
        let _ = std::fs::remove_dir_all(&root);
    }

    #[test]
    fn the_power_window_averages_recent_steps_only() {
        let window = PowerWindow::new(std::time::Duration::from_millis(200));
        window.add(1.0);
        window.add(1.0);
        assert!((window.watts() - 10.0).abs() < 1e-9, "2 J over 0.2 s");
        std::thread::sleep(std::time::Duration::from_millis(250));
        assert_eq!(window.watts(), 0.0);
        assert!(window.watts().is_sign_positive(), "not -0.0, which JSON shows as -0.0");
    }

    #[test]
    fn without_rapl_cpu_time_is_priced_per_core() {
        let meter = EnergyMeter::detect(Path::new("/nonexistent/powercap"), 10.0);
        assert_eq!(meter.kind(), EnergySourceKind::CpuTimeModel);
        let mark = meter.mark();
        let mut x = 0u64;
        let started = std::time::Instant::now();
        while started.elapsed() < std::time::Duration::from_millis(50) {
            x = x.wrapping_mul(6364136223846793005).wrapping_add(1);
        }
        std::hint::black_box(x);
        let joules = meter.joules_since(&mark);
        // ~50 ms of one busy core at 10 W is ~0.5 J (less if the machine is busy).
        assert!(joules > 0.1 && joules < 10.0, "{joules}");
    }
}
