//! What the demo and the bench share: making sure the `mcp-sessions` binary they drive is built
//! and current, and starting it the way a host would, with throw-away data and config
//! directories so that a run leaves nothing behind.

use std::ffi::OsString;
use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{Context, bail};

/// `<target>/<profile>/` of the running example: where cargo put it, wherever that is
/// (`CARGO_TARGET_DIR`, `--target-dir`, or `target/` beside Cargo.toml).
pub fn profile_dir() -> anyhow::Result<PathBuf> {
    let exe = std::env::current_exe().context("cannot locate the running example")?;
    exe.parent()
        .and_then(Path::parent)
        .map(Path::to_path_buf)
        .context("the example does not sit in <target>/<profile>/examples/")
}

/// The server binary next to this example's build, built first with the example's own profile.
///
/// `cargo run --example X` builds the example but not the crate's binary target, and an older
/// binary left in `target/` would silently show stale behaviour, so the example runs
/// `cargo build --bin mcp-sessions` itself (a no-op when the binary is current). Examples live in
/// `<target>/<profile>/examples/`; the binary in `<target>/<profile>/`.
///
/// `MCP_SESSIONS_BENCH_SERVER=<path>` runs that binary instead (nothing is built): the way to
/// measure an earlier build beside the current one on the same machine.
pub fn server_binary() -> anyhow::Result<PathBuf> {
    if let Some(path) = std::env::var_os("MCP_SESSIONS_BENCH_SERVER").filter(|p| !p.is_empty()) {
        let path = PathBuf::from(path);
        anyhow::ensure!(
            path.is_file(),
            "MCP_SESSIONS_BENCH_SERVER: {} is not a file",
            path.display()
        );
        return Ok(path);
    }
    let binary = profile_dir()?.join(format!("mcp-sessions{}", std::env::consts::EXE_SUFFIX));
    cargo_build(&["--bin", "mcp-sessions"], binary)
}

/// Runs `cargo build <target>` (`--bin NAME` or `--example NAME`) with the running example's
/// profile and target directory, and returns `binary`, where that build leaves it.
pub fn cargo_build(target: &[&str], binary: PathBuf) -> anyhow::Result<PathBuf> {
    let profile_dir = profile_dir()?;
    let target_dir = profile_dir
        .parent()
        .context("the example does not sit in <target>/<profile>/examples/")?;
    let profile = profile_dir
        .file_name()
        .and_then(|name| name.to_str())
        .unwrap_or("debug");

    let cargo = std::env::var_os("CARGO").unwrap_or_else(|| OsString::from("cargo"));
    let manifest = Path::new(env!("CARGO_MANIFEST_DIR")).join("Cargo.toml");
    let mut build = Command::new(&cargo);
    build
        .arg("build")
        .arg("--quiet")
        .args(target)
        .arg("--manifest-path")
        .arg(&manifest)
        .arg("--target-dir")
        .arg(target_dir);
    match profile {
        "debug" => {}
        "release" => {
            build.arg("--release");
        }
        other => {
            build.arg("--profile").arg(other);
        }
    }
    eprintln!(
        "(making sure it is built: {} build {}{})",
        Path::new(&cargo)
            .file_name()
            .map_or_else(|| "cargo".into(), |n| n.to_string_lossy()),
        target.join(" "),
        match profile {
            "debug" => String::new(),
            "release" => " --release".to_owned(),
            other => format!(" --profile {other}"),
        }
    );
    match build.status() {
        Ok(status) if status.success() => {}
        Ok(status) => bail!(
            "building {} failed ({status}); see cargo's messages above",
            target.join(" ")
        ),
        Err(e) if binary.exists() => {
            eprintln!(
                "(cannot run {}: {e}; using the existing {})",
                cargo.to_string_lossy(),
                binary.display()
            );
        }
        Err(e) => bail!(
            "cannot run {} to build {} ({e}), and {} does not exist",
            cargo.to_string_lossy(),
            target.join(" "),
            binary.display()
        ),
    }
    if !binary.exists() {
        bail!("{} is not there after building it", binary.display());
    }
    Ok(binary)
}

/// Temporary data and config directories for one server, removed on drop.
pub struct Scratch {
    root: tempfile::TempDir,
    pub data_dir: PathBuf,
    pub config_dir: PathBuf,
}

impl Scratch {
    pub fn new(label: &str) -> anyhow::Result<Self> {
        let root = tempfile::Builder::new()
            .prefix(&format!("mcp-sessions-{label}-"))
            .tempdir()
            .context("cannot create a temporary directory")?;
        let data_dir = root.path().join("data");
        let config_dir = root.path().join("config");
        std::fs::create_dir_all(&data_dir).context("cannot create the data directory")?;
        std::fs::create_dir_all(&config_dir).context("cannot create the config directory")?;
        Ok(Self {
            root,
            data_dir,
            config_dir,
        })
    }

    /// Where the servers' stderr goes, so that it does not interleave with the example's output.
    pub fn stderr_file(&self) -> PathBuf {
        self.root.path().join("server-stderr.log")
    }

    /// A handle appending to [`Self::stderr_file`], to give a spawned server as its stderr.
    pub fn stderr_sink(&self) -> anyhow::Result<std::fs::File> {
        std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.stderr_file())
            .context("cannot open the server's stderr log")
    }
}

/// The command a host would run: the binary with `args`, its directories in `scratch`, and no
/// `MCP_SESSIONS_*` variable inherited from the caller's environment (a bootstrap user or a
/// configuration key set there would change what the example shows). The caller pipes stdin and
/// stdout and sends stderr to [`Scratch::stderr_sink`].
pub fn server_command(binary: &Path, scratch: &Scratch, args: &[&str]) -> Command {
    let mut command = Command::new(binary);
    command.args(args);
    for (name, _) in std::env::vars_os() {
        if name.to_string_lossy().starts_with("MCP_SESSIONS_") {
            command.env_remove(name);
        }
    }
    command
        .env("MCP_SESSIONS_DATA_DIR", &scratch.data_dir)
        .env("MCP_SESSIONS_CONFIG_DIR", &scratch.config_dir);
    command
}

/// The last lines of a server's stderr log, for error messages.
pub fn stderr_tail(stderr_file: &Path) -> String {
    let text = std::fs::read_to_string(stderr_file).unwrap_or_default();
    let lines: Vec<&str> = text.lines().collect();
    let start = lines.len().saturating_sub(20);
    lines[start..].join("\n")
}
