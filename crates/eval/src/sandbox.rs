//! Running an untrusted Python program: the code a model wrote plus a set's tests.
//!
//! Each run gets a fresh private temporary directory as its working directory,
//! an empty environment (but `PATH`, and `HOME`/`TMPDIR` pointing at that
//! directory), `python3 -I` (no user site, no `PYTHON*` variables, no script
//! directory on `sys.path`), and resource limits set in the child before it
//! starts Python: CPU seconds, address space, file size, open files, processes
//! and no core files. A wall-clock timeout kills the whole process group, so a
//! loop, a sleeping child or a fork bomb ends with the run, and output beyond a
//! cap stops the program instead of filling memory. Whatever the program does,
//! [`Sandbox::run`] returns an [`Outcome`]; it never hangs.
//!
//! The network is cut by a new network namespace (inside a new user namespace,
//! so no privilege is needed): the program sees only a loopback device that is
//! down, so connecting anywhere fails, 127.0.0.1 included. Where user
//! namespaces are disabled, the default [`NetworkPolicy`] falls back to a
//! Python audit hook that refuses sockets and new processes (a child would not
//! inherit the hook). That guard is Python-level: native code (`ctypes`) can get
//! around it. Every [`Execution`] says which [`Isolation`] it ran under, so a
//! report can say it; a run never goes ahead with the network silently open.
//!
//! What this is not: a filesystem jail. The program can read what the user
//! running edgeway can read. It is meant for code a model wrote in good faith,
//! which at worst loops, crashes, allocates or opens sockets by mistake. Two
//! more gaps: a descendant that starts its own session (`setsid`) leaves the
//! process group and outlives the kill, and the kernel does not apply
//! `RLIMIT_NPROC` to root, so run as root a fork bomb is stopped only by the
//! wall-clock kill.
//!
//! All of this crate's `unsafe` is here: the `pre_exec` hook (setsid, unshare,
//! setrlimit and close_range, all async-signal-safe system calls) and the
//! process-group kill and exit check around it.

use std::ffi::OsString;
use std::io::Read;
use std::os::unix::fs::DirBuilderExt;
use std::os::unix::process::{CommandExt, ExitStatusExt};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{mpsc, Arc, Mutex, OnceLock};
use std::time::{Duration, Instant};

/// The variable that names the interpreter (default `python3`).
pub const PYTHON_VARIABLE: &str = "EDGEWAY_SANDBOX_PYTHON";

/// How much of each stream an [`Execution`] keeps (the end of it, where tracebacks are).
const KEPT_OUTPUT_BYTES: usize = 4096;

/// How long to wait for the output readers once the program is dead; only a
/// descendant that left the process group can keep a pipe open that long.
const READER_GRACE: Duration = Duration::from_millis(500);

/// The limits one run gets.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Limits {
    /// Wall-clock time before the process group is killed.
    pub wall: Duration,
    /// CPU seconds (`RLIMIT_CPU`); past them the kernel stops the program.
    pub cpu_seconds: u64,
    /// Address space in bytes (`RLIMIT_AS`): an allocation past it raises `MemoryError`.
    pub memory_bytes: u64,
    /// The largest file the program may write (`RLIMIT_FSIZE`).
    pub file_bytes: u64,
    /// Open file descriptors (`RLIMIT_NOFILE`).
    pub open_files: u64,
    /// Processes (`RLIMIT_NPROC`): counted per user namespace, so inside the
    /// namespace it bounds this run's processes; the kernel exempts root.
    pub processes: u64,
    /// Bytes of stdout and stderr together before the program is stopped.
    pub output_bytes: usize,
}

impl Default for Limits {
    /// Generous for a set's tests (they run in well under a second), tight for a runaway.
    fn default() -> Self {
        Limits {
            wall: Duration::from_secs(10),
            cpu_seconds: 10,
            memory_bytes: 1 << 30,
            file_bytes: 16 << 20,
            open_files: 64,
            processes: 64,
            output_bytes: 1 << 20,
        }
    }
}

/// How the network is cut.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NetworkPolicy {
    /// A network namespace, else the Python-level socket block (recorded as such).
    NamespaceOrSocketBlock,
    /// A network namespace or nothing runs: [`Sandbox::new`] fails without one.
    RequireNamespace,
    /// The Python-level socket block only (where namespaces are unwanted, and for its tests).
    SocketBlock,
}

/// How a run was kept off the network.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Isolation {
    /// A new user and network namespace: no interface but a loopback that is down.
    Namespace,
    /// A Python audit hook refusing sockets and new processes (native code can get around it).
    SocketBlock,
}

impl Isolation {
    /// A short name for reports.
    pub fn as_str(self) -> &'static str {
        match self {
            Isolation::Namespace => "network namespace",
            Isolation::SocketBlock => "python socket block",
        }
    }
}

/// What a sandbox is built from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SandboxConfig {
    /// The interpreter, a name on `PATH` or a path; resolved once to the real
    /// executable, since wrappers such as pyenv's shims need the environment the sandbox clears.
    pub python: OsString,
    /// The limits of every run.
    pub limits: Limits,
    /// How the network is cut.
    pub network: NetworkPolicy,
}

impl Default for SandboxConfig {
    /// `$EDGEWAY_SANDBOX_PYTHON` or `python3`, default limits, a namespace where the kernel allows one.
    fn default() -> Self {
        SandboxConfig {
            python: std::env::var_os(PYTHON_VARIABLE).filter(|v| !v.is_empty()).unwrap_or_else(|| "python3".into()),
            limits: Limits::default(),
            network: NetworkPolicy::NamespaceOrSocketBlock,
        }
    }
}

/// How a program ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// It exited with status 0.
    Passed,
    /// It exited with another status; `reason` is the last line of stderr (`AssertionError`, `NameError: …`).
    Failed {
        /// The last line of stderr, or the exit status when stderr is empty.
        reason: String,
    },
    /// It ran out of address space (`MemoryError`).
    MemoryExceeded,
    /// It ran past the wall-clock or CPU limit and was killed.
    TimedOut,
    /// It wrote more than the output cap and was killed.
    OutputExceeded,
    /// A signal ended it (`SIGSEGV`, `SIGABRT`, …).
    Crashed {
        /// The signal's number.
        signal: i32,
    },
}

impl std::fmt::Display for Outcome {
    /// The form grades carry: `passed`, `failed: AssertionError`, `timeout`, `crashed: SIGSEGV`.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Outcome::Passed => f.write_str("passed"),
            Outcome::Failed { reason } => write!(f, "failed: {reason}"),
            Outcome::MemoryExceeded => f.write_str("out of memory"),
            Outcome::TimedOut => f.write_str("timeout"),
            Outcome::OutputExceeded => f.write_str("output limit"),
            Outcome::Crashed { signal } => write!(f, "crashed: {}", signal_name(*signal)),
        }
    }
}

/// One finished run.
#[derive(Debug, Clone)]
pub struct Execution {
    /// How it ended.
    pub outcome: Outcome,
    /// How it was kept off the network.
    pub isolation: Isolation,
    /// Wall-clock time from start to end.
    pub elapsed: Duration,
    /// The end of its stdout (lossy UTF-8).
    pub stdout: String,
    /// The end of its stderr (lossy UTF-8).
    pub stderr: String,
}

/// Why a program could not be run at all (as opposed to running and failing).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SandboxError {
    /// The interpreter is missing or does not work.
    #[error("cannot start {python}: {reason} (set {PYTHON_VARIABLE} to a Python 3.8+ interpreter)")]
    Python {
        /// The interpreter as configured.
        python: String,
        /// What went wrong.
        reason: String,
    },
    /// [`NetworkPolicy::RequireNamespace`] and the kernel refuses a user namespace.
    #[error("cannot create a network namespace for the sandbox: {0}")]
    NoNamespace(String),
    /// The temporary directory or a pipe could not be made.
    #[error("sandbox: cannot {what}: {reason}")]
    Io {
        /// What was being done.
        what: &'static str,
        /// What the OS said.
        reason: String,
    },
}

/// A configured sandbox: the resolved interpreter, its limits and the isolation it gets.
#[derive(Debug, Clone)]
pub struct Sandbox {
    python: PathBuf,
    limits: Limits,
    isolation: Isolation,
    /// Why no namespace could be made, when the socket block stands in for it.
    namespace_error: Option<String>,
}

impl Sandbox {
    /// Resolves the interpreter and finds out whether a network namespace can be made.
    pub fn new(config: SandboxConfig) -> Result<Self, SandboxError> {
        let python = resolve_python(&config.python)?;
        let mut sandbox =
            Sandbox { python, limits: config.limits, isolation: Isolation::SocketBlock, namespace_error: None };
        if config.network == NetworkPolicy::SocketBlock {
            return Ok(sandbox);
        }
        // The interpreter works (it was just asked for its path), so a failure here is the namespace's.
        sandbox.isolation = Isolation::Namespace;
        let reason = match sandbox.run("pass") {
            Ok(execution) if execution.outcome == Outcome::Passed => return Ok(sandbox),
            Ok(execution) => format!("python in a namespace: {}", execution.outcome),
            // The start failed between fork and exec: unshare, most likely.
            Err(SandboxError::Python { reason, .. }) => format!("the kernel refused one: {reason}"),
            Err(error) => error.to_string(),
        };
        if config.network == NetworkPolicy::RequireNamespace {
            return Err(SandboxError::NoNamespace(reason));
        }
        sandbox.isolation = Isolation::SocketBlock;
        sandbox.namespace_error = Some(reason);
        Ok(sandbox)
    }

    /// The sandbox of [`SandboxConfig::default`], built once per process.
    pub fn shared() -> Result<&'static Sandbox, SandboxError> {
        static SHARED: OnceLock<Result<Sandbox, SandboxError>> = OnceLock::new();
        SHARED.get_or_init(|| Sandbox::new(SandboxConfig::default())).as_ref().map_err(Clone::clone)
    }

    /// The interpreter every run starts.
    pub fn python(&self) -> &Path {
        &self.python
    }

    /// How runs are kept off the network.
    pub fn isolation(&self) -> Isolation {
        self.isolation
    }

    /// Why no network namespace could be made, when [`Isolation::SocketBlock`] stands in for one.
    pub fn namespace_error(&self) -> Option<&str> {
        self.namespace_error.as_deref()
    }

    /// The limits of every run.
    pub fn limits(&self) -> &Limits {
        &self.limits
    }

    /// Runs `program` (Python source) and waits for it, at most the wall-clock limit and a little.
    pub fn run(&self, program: &str) -> Result<Execution, SandboxError> {
        let dir = ScratchDir::create()?;
        let io_error = |what| move |error: std::io::Error| SandboxError::Io { what, reason: error.to_string() };
        std::fs::write(dir.path.join("program.py"), program).map_err(io_error("write the program"))?;
        let script = match self.isolation {
            Isolation::Namespace => "program.py",
            Isolation::SocketBlock => {
                std::fs::write(dir.path.join("guard.py"), SOCKET_BLOCK).map_err(io_error("write the guard"))?;
                "guard.py"
            }
        };
        let mut command = Command::new(&self.python);
        command
            .arg("-I")
            .arg(script)
            .current_dir(&dir.path)
            .env_clear()
            .env("PATH", "/usr/local/bin:/usr/bin:/bin")
            .env("HOME", &dir.path)
            .env("TMPDIR", &dir.path)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        install_child_setup(&mut command, &self.limits, self.isolation == Isolation::Namespace);

        let started = Instant::now();
        let mut child = command.spawn().map_err(|error| SandboxError::Python {
            python: self.python.display().to_string(),
            reason: error.to_string(),
        })?;
        let output = Output::new(self.limits.output_bytes);
        let (done_tx, done_rx) = mpsc::channel();
        let stdout = child.stdout.take().map(|pipe| output.read_in_background(pipe, 0, done_tx.clone()));
        let stderr = child.stderr.take().map(|pipe| output.read_in_background(pipe, 1, done_tx.clone()));
        drop(done_tx);

        let stop = watch(&mut child, started + self.limits.wall, &output);
        let status = child.wait().map_err(io_error("wait for the program"))?;
        let elapsed = started.elapsed();
        // Both readers end at EOF; a descendant that escaped the group may hold a pipe open, so wait only briefly.
        let readers = usize::from(stdout.is_some()) + usize::from(stderr.is_some());
        let grace_end = Instant::now() + READER_GRACE;
        for _ in 0..readers {
            if done_rx.recv_timeout(grace_end.saturating_duration_since(Instant::now())).is_err() {
                break;
            }
        }
        let stdout = output.kept(0);
        let stderr = output.kept(1);
        let outcome = match stop {
            Some(Stop::Timeout) => Outcome::TimedOut,
            Some(Stop::Output) => Outcome::OutputExceeded,
            None => match (status.code(), status.signal()) {
                (Some(0), _) => Outcome::Passed,
                (Some(code), _) => {
                    let reason = stderr.lines().rev().map(str::trim).find(|line| !line.is_empty());
                    match reason {
                        Some(line) if line.starts_with("MemoryError") => Outcome::MemoryExceeded,
                        Some(line) => Outcome::Failed { reason: shorten(line, 200) },
                        None => Outcome::Failed { reason: format!("exit status {code}") },
                    }
                }
                (None, Some(libc::SIGXCPU)) => Outcome::TimedOut,
                (None, Some(signal)) => Outcome::Crashed { signal },
                (None, None) => Outcome::Failed { reason: "ended without a status".into() },
            },
        };
        Ok(Execution { outcome, isolation: self.isolation, elapsed, stdout, stderr })
    }
}

/// The interpreter's real executable, checked to be Python 3.8 or newer (audit hooks).
fn resolve_python(python: &OsString) -> Result<PathBuf, SandboxError> {
    let error = |reason: String| SandboxError::Python { python: python.to_string_lossy().into_owned(), reason };
    // Run with the caller's environment: that is what a shim needs to find the interpreter.
    let output = Command::new(python)
        .args(["-I", "-c", "import sys; print(sys.executable); print(sys.version_info >= (3, 8))"])
        .stdin(Stdio::null())
        .output()
        .map_err(|e| error(e.to_string()))?;
    if !output.status.success() {
        return Err(error(format!("{}: {}", output.status, String::from_utf8_lossy(&output.stderr).trim())));
    }
    let text = String::from_utf8_lossy(&output.stdout);
    let mut lines = text.lines();
    let executable = lines.next().unwrap_or_default().trim();
    if lines.next() != Some("True") {
        return Err(error("it is older than Python 3.8".into()));
    }
    Ok(if executable.is_empty() { PathBuf::from(python) } else { PathBuf::from(executable) })
}

/// Why the watcher stopped the program.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Stop {
    Timeout,
    Output,
}

/// Waits until the program exits, the deadline passes or the output cap is hit,
/// then kills its process group (stragglers too, after a normal exit). The
/// program is not reaped here: while it is a zombie its id cannot be reused,
/// so the group kill cannot reach an unrelated process.
fn watch(child: &mut Child, deadline: Instant, output: &Output) -> Option<Stop> {
    let pid = child.id() as libc::pid_t;
    let mut stop = None;
    let mut pause = Duration::from_millis(1);
    while !has_exited(pid) {
        if stop.is_none() {
            if output.over.load(Ordering::Relaxed) {
                stop = Some(Stop::Output);
            } else if Instant::now() >= deadline {
                stop = Some(Stop::Timeout);
            }
            if stop.is_some() {
                kill_group(pid);
            }
        }
        std::thread::sleep(pause);
        pause = (pause * 2).min(Duration::from_millis(10));
    }
    kill_group(pid);
    stop
}

/// Whether the child has exited, without reaping it.
fn has_exited(pid: libc::pid_t) -> bool {
    // SAFETY: siginfo_t is plain data for which all-zero is a valid value.
    let mut info: libc::siginfo_t = unsafe { std::mem::zeroed() };
    // SAFETY: waitid writes at most one siginfo_t into `info`, which lives
    // across the call; WNOWAIT leaves the child waitable for `Child::wait`.
    let result = unsafe {
        libc::waitid(libc::P_PID, pid as libc::id_t, &mut info, libc::WEXITED | libc::WNOHANG | libc::WNOWAIT)
    };
    if result != 0 {
        // EINTR: look again next round. Anything else is unexpected; saying
        // "exited" then makes the caller kill the group, so it cannot loop forever.
        return std::io::Error::last_os_error().raw_os_error() != Some(libc::EINTR);
    }
    // SAFETY: waitid filled `info` (or left it zeroed under WNOHANG), so reading si_pid is defined.
    unsafe { info.si_pid() != 0 }
}

/// Sends SIGKILL to the process group `pgid` (the program's own, from setsid).
fn kill_group(pgid: libc::pid_t) {
    // SAFETY: kill has no memory effects; a negative id names the group the
    // child made itself leader of, and its leader is not yet reaped.
    unsafe {
        libc::kill(-pgid, libc::SIGKILL);
    }
}

/// Sets up the child between fork and exec: its own session, the namespaces, the limits.
fn install_child_setup(command: &mut Command, limits: &Limits, namespace: bool) {
    // The values are computed here, before the fork, so the child only makes system calls.
    let capped = |resource, wanted: u64| {
        let mut current = libc::rlimit { rlim_cur: 0, rlim_max: 0 };
        // SAFETY: getrlimit writes one rlimit into `current`, which lives across the call.
        let hard = if unsafe { libc::getrlimit(resource, &mut current) } == 0 {
            current.rlim_max
        } else {
            libc::RLIM_INFINITY
        };
        // Lowering is always allowed; raising past the hard limit is not.
        let value = (wanted as libc::rlim_t).min(hard);
        (resource, libc::rlimit { rlim_cur: value, rlim_max: value })
    };
    let mut cpu = capped(libc::RLIMIT_CPU, limits.cpu_seconds.saturating_add(1));
    // SIGXCPU at the soft limit (a timeout), SIGKILL a second later should the program ignore it.
    cpu.1.rlim_cur = cpu.1.rlim_max.saturating_sub(1).max(1);
    let rlimits = [
        cpu,
        capped(libc::RLIMIT_AS, limits.memory_bytes),
        capped(libc::RLIMIT_FSIZE, limits.file_bytes),
        capped(libc::RLIMIT_NOFILE, limits.open_files),
        capped(libc::RLIMIT_NPROC, limits.processes),
        capped(libc::RLIMIT_CORE, 0),
    ];
    let unshare_flags = if namespace { namespace_flags() } else { 0 };
    let setup = move || -> std::io::Result<()> {
        // SAFETY (all calls below): this runs in the forked child before exec,
        // where only async-signal-safe functions may be called. setsid,
        // unshare, setrlimit and syscall(close_range) are plain system calls:
        // they take no locks and allocate nothing, and `rlimits` was built
        // before the fork. On error, io::Error::last_os_error allocates nothing either.
        unsafe {
            // Its own session and process group, so one kill reaches everything it starts.
            if libc::setsid() == -1 {
                return Err(std::io::Error::last_os_error());
            }
            if unshare_flags != 0 && libc::unshare(unshare_flags) != 0 {
                return Err(std::io::Error::last_os_error());
            }
            for (resource, limit) in &rlimits {
                if libc::setrlimit(*resource, limit) != 0 {
                    return Err(std::io::Error::last_os_error());
                }
            }
            mark_inherited_fds_cloexec();
        }
        Ok(())
    };
    // SAFETY: the closure only makes async-signal-safe system calls (see above)
    // and touches no memory shared with other threads of the parent.
    unsafe {
        command.pre_exec(setup);
    }
}

#[cfg(target_os = "linux")]
fn namespace_flags() -> libc::c_int {
    libc::CLONE_NEWUSER | libc::CLONE_NEWNET
}

/// No network namespaces outside Linux: the probe fails and the socket block is used.
#[cfg(not(target_os = "linux"))]
fn namespace_flags() -> libc::c_int {
    -1
}

/// Descriptors other libraries opened without close-on-exec (a database, a
/// model file) must not leak into the program; std's own pipes already have it.
///
/// # Safety
/// Only between fork and exec; it makes one system call, whose failure (an
/// old kernel) is harmless.
#[cfg(target_os = "linux")]
unsafe fn mark_inherited_fds_cloexec() {
    libc::syscall(libc::SYS_close_range, 3 as libc::c_uint, libc::c_uint::MAX, libc::CLOSE_RANGE_CLOEXEC);
}

#[cfg(not(target_os = "linux"))]
unsafe fn mark_inherited_fds_cloexec() {}

/// A fresh private directory, removed with everything in it when dropped.
struct ScratchDir {
    path: PathBuf,
}

impl ScratchDir {
    fn create() -> Result<Self, SandboxError> {
        static COUNTER: AtomicU64 = AtomicU64::new(0);
        let nanos = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.subsec_nanos());
        loop {
            let n = COUNTER.fetch_add(1, Ordering::Relaxed);
            let path = std::env::temp_dir().join(format!("edgeway-sandbox-{}-{n}-{nanos}", std::process::id()));
            match std::fs::DirBuilder::new().mode(0o700).create(&path) {
                Ok(()) => return Ok(ScratchDir { path }),
                Err(error) if error.kind() == std::io::ErrorKind::AlreadyExists => continue,
                Err(error) => {
                    return Err(SandboxError::Io { what: "create a temporary directory", reason: error.to_string() })
                }
            }
        }
    }
}

impl Drop for ScratchDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.path);
    }
}

/// The program's two output streams: the end of each, and a shared byte count against the cap.
#[derive(Clone)]
struct Output {
    streams: Arc<[Mutex<Vec<u8>>; 2]>,
    total: Arc<AtomicUsize>,
    over: Arc<AtomicBool>,
    cap: usize,
}

impl Output {
    fn new(cap: usize) -> Self {
        Output {
            streams: Arc::new([Mutex::new(Vec::new()), Mutex::new(Vec::new())]),
            total: Arc::new(AtomicUsize::new(0)),
            over: Arc::new(AtomicBool::new(false)),
            cap,
        }
    }

    /// Reads `pipe` to its end on a thread of its own, keeping its last bytes; says so on `done` when finished.
    fn read_in_background(&self, mut pipe: impl Read + Send + 'static, index: usize, done: mpsc::Sender<()>) {
        let output = self.clone();
        std::thread::spawn(move || {
            let mut buffer = [0u8; 8192];
            loop {
                let n = match pipe.read(&mut buffer) {
                    Ok(0) | Err(_) => break,
                    Ok(n) => n,
                };
                if output.total.fetch_add(n, Ordering::Relaxed) + n > output.cap {
                    output.over.store(true, Ordering::Relaxed);
                }
                let mut kept = output.streams[index].lock().unwrap_or_else(|poisoned| poisoned.into_inner());
                kept.extend_from_slice(&buffer[..n]);
                if kept.len() > 2 * KEPT_OUTPUT_BYTES {
                    let excess = kept.len() - KEPT_OUTPUT_BYTES;
                    kept.drain(..excess);
                }
            }
            let _ = done.send(());
        });
    }

    /// The last bytes of stream `index`, as text.
    fn kept(&self, index: usize) -> String {
        let kept = self.streams[index].lock().unwrap_or_else(|poisoned| poisoned.into_inner());
        let start = kept.len().saturating_sub(KEPT_OUTPUT_BYTES);
        String::from_utf8_lossy(&kept[start..]).into_owned()
    }
}

/// At most `max` characters of `text`.
fn shorten(text: &str, max: usize) -> String {
    match text.char_indices().nth(max) {
        Some((end, _)) => format!("{}…", &text[..end]),
        None => text.to_owned(),
    }
}

/// A signal's name (`SIGSEGV`), or its number.
pub fn signal_name(signal: i32) -> String {
    let name = match signal {
        libc::SIGABRT => "SIGABRT",
        libc::SIGBUS => "SIGBUS",
        libc::SIGFPE => "SIGFPE",
        libc::SIGILL => "SIGILL",
        libc::SIGKILL => "SIGKILL",
        libc::SIGPIPE => "SIGPIPE",
        libc::SIGSEGV => "SIGSEGV",
        libc::SIGSYS => "SIGSYS",
        libc::SIGTERM => "SIGTERM",
        libc::SIGTRAP => "SIGTRAP",
        libc::SIGXCPU => "SIGXCPU",
        libc::SIGXFSZ => "SIGXFSZ",
        _ => return format!("signal {signal}"),
    };
    name.to_owned()
}

/// The Python-level network block, used where no namespace can be made: an
/// audit hook (it cannot be removed) refuses internet sockets, name lookups and
/// new processes, then the program runs as `__main__`.
const SOCKET_BLOCK: &str = r#"import sys

def _edgeway_guard(event, args):
    if event == "socket.__new__" and len(args) > 1 and args[1] != 1:
        raise PermissionError("the sandbox blocks the network (only AF_UNIX sockets are allowed)")
    if event in ("socket.connect", "socket.sendto", "socket.sendmsg", "socket.getaddrinfo",
                 "socket.gethostbyname", "socket.gethostbyaddr"):
        raise PermissionError("the sandbox blocks the network")
    if event in ("os.system", "os.exec", "os.posix_spawn", "os.spawn", "os.fork", "os.forkpty",
                 "subprocess.Popen", "pty.spawn", "ctypes.dlsym"):
        raise PermissionError("the sandbox blocks " + event + " (a new process or native call could reach the network)")

sys.addaudithook(_edgeway_guard)
del _edgeway_guard
with open("program.py", "rb") as _edgeway_source:
    _edgeway_code = compile(_edgeway_source.read(), "program.py", "exec")
exec(_edgeway_code, {"__name__": "__main__", "__file__": "program.py", "__builtins__": __builtins__})
"#;

#[cfg(test)]
mod tests {
    use super::*;

    /// A sandbox with short time limits, so the runaway programs end quickly.
    fn quick(network: NetworkPolicy) -> Sandbox {
        let limits = Limits { wall: Duration::from_secs(3), cpu_seconds: 2, ..Limits::default() };
        Sandbox::new(SandboxConfig { limits, network, ..SandboxConfig::default() }).expect("python3 runs")
    }

    fn default_quick() -> Sandbox {
        quick(NetworkPolicy::NamespaceOrSocketBlock)
    }

    /// Whether process `pid` is gone (or a zombie waiting for its new parent to reap it).
    fn gone(pid: u32) -> bool {
        let deadline = Instant::now() + Duration::from_secs(3);
        loop {
            match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
                Err(_) => return true,
                Ok(stat) if stat.rsplit(')').next().is_some_and(|rest| rest.trim_start().starts_with(['Z', 'X'])) => {
                    return true
                }
                Ok(_) if Instant::now() >= deadline => return false,
                Ok(_) => std::thread::sleep(Duration::from_millis(20)),
            }
        }
    }

    #[test]
    fn a_correct_program_passes_and_a_wrong_one_fails_with_its_exception() {
        let sandbox = default_quick();
        let run = sandbox.run("assert sum([1, 2]) == 3\nprint('ok')").unwrap();
        assert_eq!(run.outcome, Outcome::Passed, "{}", run.stderr);
        assert_eq!(run.stdout.trim(), "ok");
        let run = sandbox.run("def f():\n    return 2\n\nassert f() == 3").unwrap();
        assert_eq!(run.outcome, Outcome::Failed { reason: "AssertionError".into() });
        assert_eq!(run.outcome.to_string(), "failed: AssertionError");
        let run = sandbox.run("undefined_name()").unwrap();
        assert_eq!(run.outcome.to_string(), "failed: NameError: name 'undefined_name' is not defined");
        let run = sandbox.run("import sys\nsys.exit(3)").unwrap();
        assert_eq!(run.outcome, Outcome::Failed { reason: "exit status 3".into() });
    }

    #[test]
    fn crashes_name_their_signal() {
        let sandbox = default_quick();
        let run = sandbox.run("import os\nos.abort()").unwrap();
        assert_eq!(run.outcome, Outcome::Crashed { signal: libc::SIGABRT });
        assert_eq!(run.outcome.to_string(), "crashed: SIGABRT");
        let run = sandbox.run("import ctypes\nctypes.string_at(0)").unwrap();
        assert_eq!(run.outcome.to_string(), "crashed: SIGSEGV");
    }

    #[test]
    fn loops_and_sleeps_time_out_within_the_limit() {
        let sandbox = default_quick();
        // A busy loop meets the CPU limit (2 s) or the wall limit (3 s) first, whichever a loaded machine gives.
        let run = sandbox.run("while True:\n    pass").unwrap();
        assert_eq!(run.outcome, Outcome::TimedOut);
        assert!(run.elapsed < Duration::from_secs(5), "{:?}", run.elapsed);
        // A sleep uses no CPU: only the wall clock stops it.
        let run = sandbox.run("import time\ntime.sleep(60)").unwrap();
        assert_eq!(run.outcome, Outcome::TimedOut);
        assert!(run.elapsed >= Duration::from_secs(3) && run.elapsed < Duration::from_secs(5), "{:?}", run.elapsed);
    }

    #[test]
    fn children_die_with_the_program() {
        let sandbox = default_quick();
        if sandbox.isolation() == Isolation::SocketBlock {
            eprintln!("skipped: the socket block refuses new processes");
            return;
        }
        let spawn = "import subprocess, sys\n\
                     child = subprocess.Popen([sys.executable, '-c', 'import time; time.sleep(60)'])\n\
                     print(child.pid, flush=True)\n";
        // The program loops and is killed: its sleeping child goes too.
        let run = sandbox.run(&format!("{spawn}while True:\n    pass")).unwrap();
        assert_eq!(run.outcome, Outcome::TimedOut);
        let pid: u32 = run.stdout.trim().parse().expect("the child's pid");
        assert!(gone(pid), "the looping program's child {pid} is still running");
        // The program ends normally and leaves its child behind: the child is killed all the same.
        let run = sandbox.run(spawn).unwrap();
        assert_eq!(run.outcome, Outcome::Passed, "{}", run.stderr);
        assert!(run.elapsed < Duration::from_secs(2), "waited for the orphan: {:?}", run.elapsed);
        let pid: u32 = run.stdout.trim().parse().expect("the child's pid");
        assert!(gone(pid), "the finished program's child {pid} is still running");
    }

    #[test]
    fn a_huge_allocation_fails_on_memory() {
        let run = default_quick().run("block = bytearray(4 << 30)\nprint(len(block))").unwrap();
        assert_eq!(run.outcome, Outcome::MemoryExceeded, "{}", run.stderr);
        assert_eq!(run.outcome.to_string(), "out of memory");
    }

    #[test]
    fn endless_output_is_cut() {
        let limits = Limits { wall: Duration::from_secs(5), output_bytes: 64 << 10, ..Limits::default() };
        let sandbox = Sandbox::new(SandboxConfig { limits, ..SandboxConfig::default() }).unwrap();
        let run = sandbox.run("while True:\n    print('x' * 1000)").unwrap();
        assert_eq!(run.outcome, Outcome::OutputExceeded);
        assert!(run.elapsed < Duration::from_secs(4), "{:?}", run.elapsed);
        assert!(run.stdout.len() <= KEPT_OUTPUT_BYTES);
        let run = sandbox.run("import sys\nwhile True:\n    sys.stderr.write('y' * 1000)").unwrap();
        assert_eq!(run.outcome, Outcome::OutputExceeded);
    }

    /// A program that connects to a listener this test opened on loopback.
    fn connect_to_own_listener(sandbox: &Sandbox) {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        listener.set_nonblocking(true).unwrap();
        let port = listener.local_addr().unwrap().port();
        let program = format!(
            "import socket\nsocket.create_connection(('127.0.0.1', {port}), timeout=2).sendall(b'leak')\nprint('connected')"
        );
        let run = sandbox.run(&program).unwrap();
        assert!(matches!(run.outcome, Outcome::Failed { .. }), "{:?} under {:?}", run.outcome, sandbox.isolation());
        assert!(!run.stdout.contains("connected"));
        assert!(listener.accept().is_err(), "the listener got a connection under {:?}", sandbox.isolation());
        eprintln!("under the {}: {}", sandbox.isolation().as_str(), run.outcome);
    }

    #[test]
    fn the_network_is_unreachable_even_on_loopback() {
        let sandbox = default_quick();
        connect_to_own_listener(&sandbox);
        if sandbox.isolation() == Isolation::Namespace {
            // The namespace holds one interface, loopback, and it is down.
            let run = sandbox.run("import socket\nassert [n for _, n in socket.if_nameindex()] == ['lo']").unwrap();
            assert_eq!(run.outcome, Outcome::Passed, "{}", run.stderr);
        } else {
            eprintln!("no user namespaces here: {} only", sandbox.isolation().as_str());
        }
    }

    #[test]
    fn the_socket_block_refuses_the_network_and_new_processes() {
        let sandbox = quick(NetworkPolicy::SocketBlock);
        assert_eq!(sandbox.isolation(), Isolation::SocketBlock);
        connect_to_own_listener(&sandbox);
        let run = sandbox.run("import subprocess\nsubprocess.run(['true'])").unwrap();
        assert!(
            matches!(&run.outcome, Outcome::Failed { reason } if reason.starts_with("PermissionError")),
            "{:?}",
            run.outcome
        );
        let run = sandbox.run("import socket\na, b = socket.socketpair()\nassert __name__ == '__main__'").unwrap();
        assert_eq!(run.outcome, Outcome::Passed, "{}", run.stderr);
    }

    #[test]
    fn runs_start_in_an_empty_private_directory_with_limits_and_no_environment() {
        let sandbox = default_quick();
        let program = "import os, resource, sys\n\
                       assert sorted(os.listdir('.')) in (['program.py'], ['guard.py', 'program.py']), os.listdir('.')\n\
                       assert set(os.environ) <= {'PATH', 'HOME', 'TMPDIR', 'LC_CTYPE'}, dict(os.environ)\n\
                       assert os.environ['HOME'] == os.getcwd()\n\
                       assert sys.flags.isolated == 1\n\
                       assert os.getsid(0) == os.getpid()\n\
                       limits = {name: resource.getrlimit(getattr(resource, name))[0] for name in\n\
                                 ('RLIMIT_AS', 'RLIMIT_FSIZE', 'RLIMIT_NOFILE', 'RLIMIT_NPROC', 'RLIMIT_CORE', 'RLIMIT_CPU')}\n\
                       print(limits)\n\
                       assert limits['RLIMIT_AS'] <= 1 << 30 and limits['RLIMIT_NOFILE'] <= 64\n\
                       assert limits['RLIMIT_NPROC'] <= 64 and limits['RLIMIT_CORE'] == 0 and limits['RLIMIT_CPU'] <= 2\n\
                       assert limits['RLIMIT_FSIZE'] <= 16 << 20\n\
                       open('big', 'wb').write(b'x' * (17 << 20))\n";
        let run = sandbox.run(program).unwrap();
        // Writing past RLIMIT_FSIZE fails (Python ignores SIGXFSZ and gets EFBIG).
        assert!(
            matches!(&run.outcome, Outcome::Failed { reason } if reason.contains("File too large")),
            "{:?}\n{}",
            run.outcome,
            run.stderr
        );
        let dir = sandbox.run("import os\nprint(os.getcwd())").unwrap().stdout;
        assert!(!Path::new(dir.trim()).exists(), "the directory {dir} was left behind");
    }

    #[test]
    fn a_missing_interpreter_is_an_error_not_a_failed_test() {
        let config = SandboxConfig { python: "/nonexistent/python3".into(), ..SandboxConfig::default() };
        let error = Sandbox::new(config).unwrap_err();
        assert!(matches!(error, SandboxError::Python { .. }), "{error}");
        assert!(error.to_string().contains(PYTHON_VARIABLE), "{error}");
    }
}
