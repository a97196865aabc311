//! Finding, launching and stopping Chromium. We launch it ourselves (not through
//! headless_chrome) with DevTools on a pipe (its fds 3 and 4; no TCP port), and so that it dies
//! with us: the child gets `PR_SET_PDEATHSIG = SIGKILL` from a
//! launcher thread that lives as long as the process (the signal follows the *thread* that forked),
//! runs in its own process group so shutdown can kill every helper at once, has crash reporting
//! off (crashpad re-parents to PID 1), and uses a profile directory of ours that is removed on
//! exit, or at the next start if we were killed.

use std::fs::File;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::OnceLock;
use std::sync::mpsc::{Sender, channel};
use std::time::Duration;

use super::{BrowserConfig, BrowserError};

/// Where browsers are usually installed, most likely first.
const CANDIDATES: &[&str] = &[
    "/usr/bin/chromium",
    "/usr/bin/chromium-browser",
    "/usr/bin/google-chrome",
    "/usr/bin/google-chrome-stable",
    "/snap/bin/chromium",
    "/Applications/Google Chrome.app/Contents/MacOS/Google Chrome",
    "/Applications/Chromium.app/Contents/MacOS/Chromium",
    r"C:\Program Files\Google\Chrome\Application\chrome.exe",
    r"C:\Program Files (x86)\Google\Chrome\Application\chrome.exe",
];

/// Advice shown when no browser is found.
pub const INSTALL_ADVICE: &str = "no Chromium or Chrome was found: install one (Debian/Ubuntu: `apt-get install chromium`; \
macOS: install Google Chrome), or point CHROME_PATH or the `browser.chrome_path` configuration key at it";

/// `CHROME_PATH` if set, else the configured path, else the usual install locations. An explicit
/// path that is not a file finds nothing (another browser is never silently used instead).
pub fn find_executable(configured: Option<&Path>) -> Option<PathBuf> {
    let explicit = std::env::var_os("CHROME_PATH")
        .filter(|v| !v.is_empty())
        .map(PathBuf::from)
        .or_else(|| configured.map(Path::to_path_buf));
    match explicit {
        Some(path) => path.is_file().then_some(path),
        None => CANDIDATES
            .iter()
            .map(PathBuf::from)
            .find(|path| path.is_file()),
    }
}

/// How to start a browser.
#[derive(Debug, Clone)]
pub struct LaunchSpec {
    pub executable: PathBuf,
    pub profile_dir: PathBuf,
    pub headless: bool,
    pub sandbox: bool,
    /// V8's old-space limit per renderer, MiB.
    pub renderer_heap_mb: u32,
}

impl LaunchSpec {
    fn args(&self) -> Vec<String> {
        let mut args: Vec<String> = [
            // DevTools on fds 3 and 4 only: no TCP listener any local process could drive.
            "--remote-debugging-pipe",
            "--no-first-run",
            "--no-default-browser-check",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
            "--disable-default-apps",
            "--disable-extensions",
            "--disable-crash-reporter",
            "--disable-breakpad",
            "--disable-domain-reliability",
            "--disable-client-side-phishing-detection",
            // One flag only: Chromium honours the last --disable-features it is given. The
            // WebUIOmnibox* features give every window (so every context) two hidden omnibox-popup
            // renderers of ~45 MB together; without them a context costs ~21 MB, not ~60 MB.
            "--disable-features=Translate,MediaRouter,OptimizationHints,AutofillServerCommunication,\
             WebUIOmniboxPopup,WebUIOmniboxAimPopup,WebUIOmniboxFullPopup",
            "--password-store=basic",
            "--use-mock-keychain",
            "--mute-audio",
            "--disable-dev-shm-usage",
        ]
        .iter()
        .map(|s| (*s).to_owned())
        .collect();
        args.push(format!("--user-data-dir={}", self.profile_dir.display()));
        // A page that allocates without end crashes its own renderer, not the machine.
        args.push(format!(
            "--js-flags=--max-old-space-size={}",
            self.renderer_heap_mb
        ));
        if self.headless {
            args.push("--headless".into());
            args.push("--disable-gpu".into());
        }
        if !self.sandbox {
            args.push("--no-sandbox".into());
        }
        args.push("about:blank".into());
        args
    }
}

/// A running Chromium we started.
pub struct ChromeProcess {
    child: Child,
    pub profile_dir: PathBuf,
}

/// Our ends of a browser's DevTools pipe: what it writes (its fd 4) and where it reads (fd 3).
pub struct PipeEnds {
    pub from_browser: File,
    pub to_browser: File,
}

struct LaunchRequest {
    spec: LaunchSpec,
    reply: Sender<std::io::Result<(Child, PipeEnds)>>,
}

/// The launcher thread: lives as long as the process, so the parent-death signal of the browsers
/// it forks fires only when the whole server dies.
fn launcher() -> Option<&'static std::sync::Mutex<Sender<LaunchRequest>>> {
    static LAUNCHER: OnceLock<Option<std::sync::Mutex<Sender<LaunchRequest>>>> = OnceLock::new();
    LAUNCHER
        .get_or_init(|| {
            let (tx, rx) = channel::<LaunchRequest>();
            std::thread::Builder::new()
                .name("chromium-launcher".into())
                .spawn(move || {
                    for request in rx {
                        let _ = request.reply.send(spawn_child(&request.spec));
                    }
                })
                .ok()
                .map(|_| std::sync::Mutex::new(tx))
        })
        .as_ref()
}

/// The variables Chromium is started with, when the server has them: what it needs to find its
/// libraries, fonts, locale and display. Nothing else of the server's environment reaches the
/// browser (it holds `MCP_SESSIONS_PASSWORD`, `MCP_SESSIONS_JWT_SECRET` and the like).
const BROWSER_ENV: &[&str] = &[
    "PATH",
    "HOME",
    "USER",
    "LOGNAME",
    "LANG",
    "LANGUAGE",
    "LC_ALL",
    "LC_CTYPE",
    "LC_MESSAGES",
    "TZ",
    "TMPDIR",
    "DISPLAY",
    "WAYLAND_DISPLAY",
    "XAUTHORITY",
    "XDG_RUNTIME_DIR",
    "DBUS_SESSION_BUS_ADDRESS",
    "FONTCONFIG_FILE",
    "FONTCONFIG_PATH",
    "SYSTEMROOT",
    "WINDIR",
    "LOCALAPPDATA",
    "PROGRAMFILES",
];

/// A pipe whose ends close on exec (the child gets only the copies it is given as fds 3 and 4).
#[cfg(unix)]
fn cloexec_pipe() -> std::io::Result<(std::os::fd::OwnedFd, std::os::fd::OwnedFd)> {
    use std::os::fd::{FromRawFd, OwnedFd};
    let mut fds = [0 as libc::c_int; 2];
    // SAFETY: pipe2 writes two new descriptors into `fds`, which we then own.
    if unsafe { libc::pipe2(fds.as_mut_ptr(), libc::O_CLOEXEC) } != 0 {
        return Err(std::io::Error::last_os_error());
    }
    // SAFETY: both descriptors are fresh and owned by nobody else.
    Ok(unsafe { (OwnedFd::from_raw_fd(fds[0]), OwnedFd::from_raw_fd(fds[1])) })
}

#[cfg(unix)]
fn spawn_child(spec: &LaunchSpec) -> std::io::Result<(Child, PipeEnds)> {
    use std::os::fd::AsRawFd;
    // Commands: we write, the browser reads on fd 3. Answers: it writes on fd 4, we read.
    let (browser_reads, we_write) = cloexec_pipe()?;
    let (we_read, browser_writes) = cloexec_pipe()?;
    let (child_in, child_out) = (browser_reads.as_raw_fd(), browser_writes.as_raw_fd());
    let mut command = Command::new(&spec.executable);
    command.env_clear();
    for name in BROWSER_ENV {
        if let Some(value) = std::env::var_os(name) {
            command.env(name, value);
        }
    }
    command
        .args(spec.args())
        // Chromium's crash handler keeps its database under the config home: keep it in the profile.
        .env("XDG_CONFIG_HOME", spec.profile_dir.join("config"))
        .env("XDG_CACHE_HOME", spec.profile_dir.join("cache"))
        .stdin(Stdio::null())
        // stdout is the MCP channel: the browser must never write to it.
        .stdout(Stdio::null())
        .stderr(Stdio::null());
    use std::os::unix::process::CommandExt;
    command.process_group(0);
    let parent = std::process::id();
    // SAFETY: only async-signal-safe calls (fcntl, dup2, prctl, getppid) between fork and exec.
    unsafe {
        command.pre_exec(move || {
            // Copy both ends above 3 and 4 first, so that placing one cannot close the other;
            // dup2 clears close-on-exec on the copies the browser keeps.
            let input = libc::fcntl(child_in, libc::F_DUPFD_CLOEXEC, 10);
            let output = libc::fcntl(child_out, libc::F_DUPFD_CLOEXEC, 10);
            if input < 0 || output < 0 || libc::dup2(input, 3) < 0 || libc::dup2(output, 4) < 0 {
                return Err(std::io::Error::last_os_error());
            }
            #[cfg(target_os = "linux")]
            {
                if libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL) != 0 {
                    return Err(std::io::Error::last_os_error());
                }
                // The server died between fork and prctl: do not start an orphan.
                if libc::getppid() as u32 != parent {
                    return Err(std::io::Error::other("parent exited"));
                }
            }
            let _ = parent;
            Ok(())
        });
    }
    let child = command.spawn()?;
    // The browser holds its ends now; ours of them close here.
    drop((browser_reads, browser_writes));
    Ok((
        child,
        PipeEnds {
            from_browser: File::from(we_read),
            to_browser: File::from(we_write),
        },
    ))
}

#[cfg(not(unix))]
fn spawn_child(_spec: &LaunchSpec) -> std::io::Result<(Child, PipeEnds)> {
    Err(std::io::Error::other(
        "DevTools over a pipe needs a Unix system",
    ))
}

impl ChromeProcess {
    /// Starts a browser; returns it with our ends of its DevTools pipe.
    pub fn launch(spec: &LaunchSpec) -> Result<(Self, PipeEnds), BrowserError> {
        // Profiles hold cookies and storage: owner-only, also under a data dir that existed.
        crate::files::ensure_private_dir(&spec.profile_dir).map_err(|e| {
            BrowserError::Launch(format!("cannot create the profile directory: {e}"))
        })?;
        let (reply, response) = channel();
        let request = LaunchRequest {
            spec: spec.clone(),
            reply,
        };
        let sent = launcher()
            .and_then(|l| l.lock().ok())
            .map(|l| l.send(request).is_ok())
            .unwrap_or(false);
        if !sent {
            return Err(BrowserError::Launch(
                "the launcher thread is not running".into(),
            ));
        }
        let (child, ends) = response
            .recv()
            .map_err(|_| BrowserError::Launch("the launcher thread did not answer".into()))?
            .map_err(|e| {
                BrowserError::Launch(format!("cannot start {}: {e}", spec.executable.display()))
            })?;
        Ok((
            ChromeProcess {
                child,
                profile_dir: spec.profile_dir.clone(),
            },
            ends,
        ))
    }

    pub fn is_alive(&mut self) -> bool {
        matches!(self.child.try_wait(), Ok(None))
    }

    /// Kills the browser and every process of its group, reaps it and removes its profile.
    pub fn stop(&mut self) {
        #[cfg(unix)]
        {
            let pgid = self.child.id() as libc::pid_t;
            // SAFETY: plain syscall; the group id is our own child's.
            unsafe {
                libc::kill(-pgid, libc::SIGKILL);
            }
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
        remove_profile(&self.profile_dir);
    }
}

impl Drop for ChromeProcess {
    fn drop(&mut self) {
        self.stop();
    }
}

/// Removes a profile directory; Chromium's helpers may still be writing for a moment.
fn remove_profile(dir: &Path) {
    for _ in 0..20 {
        match std::fs::remove_dir_all(dir) {
            Ok(()) => return,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return,
            Err(_) => std::thread::sleep(Duration::from_millis(25)),
        }
    }
    tracing::warn!("could not remove the browser profile {}", dir.display());
}

/// Profile directories are named `<server pid>-<n>`; removes those whose server is gone.
pub fn remove_stale_profiles(root: &Path) {
    restrict_to_owner(root);
    let Ok(entries) = std::fs::read_dir(root) else {
        return;
    };
    for entry in entries.flatten() {
        let name = entry.file_name();
        let pid = name
            .to_str()
            .and_then(|n| n.split('-').next())
            .and_then(|p| p.parse::<u32>().ok());
        if let Some(pid) = pid
            && pid != std::process::id()
            && !process_alive(pid)
        {
            remove_profile(&entry.path());
        }
    }
}

/// A profiles directory an earlier version created with the default mode becomes owner-only.
fn restrict_to_owner(dir: &Path) {
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        if let Ok(meta) = std::fs::symlink_metadata(dir)
            && meta.is_dir()
            && meta.permissions().mode() & 0o077 != 0
            && let Err(e) = std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o700))
        {
            tracing::warn!("cannot make {} owner-only: {e}", dir.display());
        }
    }
    #[cfg(not(unix))]
    let _ = dir;
}

fn process_alive(pid: u32) -> bool {
    #[cfg(unix)]
    {
        // SAFETY: signal 0 only checks for existence.
        unsafe { libc::kill(pid as libc::pid_t, 0) == 0 }
    }
    #[cfg(not(unix))]
    {
        let _ = pid;
        true
    }
}

/// Whether Chromium runs sandboxed: "auto" means on unless running as root, which Chromium
/// refuses.
pub fn sandbox_enabled(config: &BrowserConfig) -> bool {
    match config.sandbox.as_str() {
        "on" => true,
        "off" => false,
        _ => !running_as_root(),
    }
}

fn running_as_root() -> bool {
    #[cfg(unix)]
    {
        // SAFETY: geteuid has no preconditions.
        unsafe { libc::geteuid() == 0 }
    }
    #[cfg(not(unix))]
    {
        false
    }
}
