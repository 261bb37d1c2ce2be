//! `pinhole up` / `exec` / `down`: keep a topology up on the kernel fabric and run
//! commands in its hosts from other shells.
//!
//! `up` builds the topology inside its sandbox and serves exec requests on a unix socket,
//! `<runtime dir>/<id>.sock`, with its pid in `<id>.pid` beside it. The runtime directory
//! is `/run/pinhole` for root, else `$XDG_RUNTIME_DIR/pinhole`, else
//! `/tmp/pinhole-<uid>`. `exec` sends a command and its stdio there; `down` sends SIGTERM
//! to the `up` process by its recorded pid, and the sandbox takes every namespace, device
//! and process of the topology with it. Topologies with different ids are independent.

use crate::convert;
use crate::scenario;
use anyhow::{Context, Result, anyhow, bail};
use emulator::fabric::kernel::KernelFabric;
use emulator::fabric::kernel::sys::{self, ExecServer};
use std::os::fd::AsFd;
use std::path::{Path, PathBuf};
use std::time::Duration;

/// Where the sockets and pid files of running topologies live.
pub fn runtime_dir() -> PathBuf {
    if nix_uid() == 0 {
        return PathBuf::from("/run/pinhole");
    }
    match std::env::var_os("XDG_RUNTIME_DIR") {
        Some(d) if !d.is_empty() => PathBuf::from(d).join("pinhole"),
        _ => std::env::temp_dir().join(format!("pinhole-{}", nix_uid())),
    }
}

fn nix_uid() -> u32 {
    // /proc/self/status "Uid:" line: real uid first.
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find_map(|l| l.strip_prefix("Uid:"))
                .and_then(|v| v.split_whitespace().next().map(str::to_string))
        })
        .and_then(|v| v.parse().ok())
        .unwrap_or(u32::MAX)
}

/// A topology id: `[a-z0-9][a-z0-9-]*`, like scenario names.
fn check_id(id: &str) -> Result<()> {
    let ok = id
        .chars()
        .next()
        .is_some_and(|c| c.is_ascii_lowercase() || c.is_ascii_digit())
        && id
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-');
    if !ok {
        bail!("topology id `{id}`: use lowercase letters, digits and `-` (e.g. `lab-1`)");
    }
    Ok(())
}

fn default_id(file: &Path) -> String {
    let stem = file
        .file_stem()
        .map(|s| s.to_string_lossy().to_lowercase())
        .unwrap_or_default();
    let id: String = stem
        .chars()
        .map(|c| if c.is_ascii_alphanumeric() { c } else { '-' })
        .collect();
    let id = id.trim_matches('-').to_string();
    if id.is_empty() { "topology".into() } else { id }
}

/// Whether `pid` is a live pinhole process (the command line is checked, so a recycled
/// pid of another program is never signalled).
fn pid_alive(pid: u32) -> bool {
    std::fs::read(format!("/proc/{pid}/cmdline"))
        .is_ok_and(|c| String::from_utf8_lossy(&c).contains("pinhole"))
}

fn read_pid(path: &Path) -> Option<u32> {
    std::fs::read_to_string(path).ok()?.trim().parse().ok()
}

/// The ids of topologies that are up (their `up` process is alive).
pub fn running() -> Vec<String> {
    let dir = runtime_dir();
    let Ok(entries) = std::fs::read_dir(&dir) else {
        return Vec::new();
    };
    let mut ids: Vec<String> = entries
        .filter_map(|e| {
            let p = e.ok()?.path();
            if p.extension()? != "pid" {
                return None;
            }
            let pid = read_pid(&p)?;
            let id = p.file_stem()?.to_string_lossy().into_owned();
            pid_alive(pid).then_some(id)
        })
        .collect();
    ids.sort();
    ids
}

fn resolve_id(id: Option<&str>) -> Result<String> {
    if let Some(id) = id {
        check_id(id)?;
        return Ok(id.to_string());
    }
    let up = running();
    match up.as_slice() {
        [one] => Ok(one.clone()),
        [] => bail!("no topology is up; start one with `pinhole up FILE`"),
        many => bail!(
            "{} topologies are up ({}); name one with --id",
            many.len(),
            many.join(", ")
        ),
    }
}

/// `pinhole up FILE`: returns the exit code.
pub fn up(file: &Path, id: Option<&str>, cell_index: usize) -> Result<u8> {
    let id = match id {
        Some(i) => i.to_string(),
        None => default_id(file),
    };
    check_id(&id)?;
    let s = match scenario::load(file) {
        Ok(s) => s,
        Err(errs) => {
            eprintln!("{errs}");
            return Ok(crate::cli::EXIT_INVALID);
        }
    };
    let cells = match s.cells() {
        Ok(c) => c,
        Err(errs) => {
            eprintln!("{errs}");
            return Ok(crate::cli::EXIT_INVALID);
        }
    };
    let cell = cells.get(cell_index).ok_or_else(|| {
        anyhow!(
            "--cell {cell_index}: the scenario has {} cell(s), numbered from 0",
            cells.len()
        )
    })?;
    let topo = match convert::topology(&cell.spec) {
        Ok(t) => t,
        Err(e) => {
            eprintln!("pinhole: {}: {e}", file.display());
            return Ok(crate::cli::EXIT_INVALID);
        }
    };
    let dir = runtime_dir();
    let pid_file = dir.join(format!("{id}.pid"));
    let sock = dir.join(format!("{id}.sock"));
    if let Some(pid) = read_pid(&pid_file)
        && pid_alive(pid)
    {
        bail!(
            "topology `{id}` is already up (pid {pid}); `pinhole down --id {id}` first, or pick another --id"
        );
    }
    std::fs::create_dir_all(&dir).with_context(|| format!("create {}", dir.display()))?;
    // The outer process's pid: `down` signals it, and it forwards to the sandbox.
    std::fs::write(&pid_file, format!("{}\n", std::process::id()))
        .with_context(|| format!("write {}", pid_file.display()))?;
    if let Err(e) = sys::enter_sandbox() {
        let _ = std::fs::remove_file(&pid_file);
        eprintln!("pinhole: {e}");
        return Ok(if e.is_unsupported() {
            crate::cli::EXIT_ENVIRONMENT
        } else {
            crate::cli::EXIT_FAIL
        });
    }
    let fabric = match KernelFabric::start(topo, cell.seed, false) {
        Ok(f) => f,
        Err(e) => {
            let _ = std::fs::remove_file(&pid_file);
            eprintln!("pinhole: {e}");
            return Ok(if e.is_environment() {
                crate::cli::EXIT_ENVIRONMENT
            } else {
                crate::cli::EXIT_FAIL
            });
        }
    };
    let server = ExecServer::bind(&sock).map_err(|e| anyhow!("{e}"))?;
    let topo = fabric.topology();
    println!(
        "topology `{id}` is up ({}, cell {})",
        s.spec.name, cell.name
    );
    for h in &topo.hosts {
        let addrs: Vec<String> = h.addresses.iter().map(|a| a.to_string()).collect();
        println!("  {:<12} {}", h.name, addrs.join(", "));
    }
    println!("run a command in a host:  pinhole exec --id {id} HOST -- COMMAND…");
    println!("tear it down:             pinhole down --id {id}   (or Ctrl-C here)");
    std::thread::scope(|scope| {
        loop {
            let req = match server.accept() {
                Ok(r) => r,
                Err(e) => {
                    eprintln!("pinhole: exec request: {e}");
                    continue;
                }
            };
            match topo.host_id(req.host()) {
                Some(h) => {
                    let host = fabric.host(h);
                    scope.spawn(move || {
                        if let Err(e) = req.run(host) {
                            eprintln!("pinhole: exec: {e}");
                        }
                    });
                }
                None => {
                    let names: Vec<&str> = topo.hosts.iter().map(|h| h.name.as_str()).collect();
                    let why = format!("no host `{}`; hosts: {}", req.host(), names.join(", "));
                    req.reject(&why);
                }
            }
        }
    })
}

/// `pinhole exec HOST -- CMD…`: returns the program's exit code (clamped to 0–255).
pub fn exec(id: Option<&str>, host: &str, argv: &[String]) -> Result<u8> {
    let id = resolve_id(id)?;
    let sock = runtime_dir().join(format!("{id}.sock"));
    let env: Vec<(String, String)> = ["TERM", "LANG", "LC_ALL"]
        .iter()
        .filter_map(|k| std::env::var(k).ok().map(|v| (k.to_string(), v)))
        .collect();
    let stdin = std::io::stdin();
    let stdout = std::io::stdout();
    let stderr = std::io::stderr();
    let code = sys::exec_remote(
        &sock,
        host,
        argv,
        &env,
        [stdin.as_fd(), stdout.as_fd(), stderr.as_fd()],
        true,
    )
    .map_err(|e| anyhow!("{e}"))?;
    Ok(code.clamp(0, 255) as u8)
}

/// `pinhole down`: stop a topology started by `pinhole up`, and wait until it is gone.
pub fn down(id: Option<&str>) -> Result<u8> {
    let id = resolve_id(id)?;
    let dir = runtime_dir();
    let pid_file = dir.join(format!("{id}.pid"));
    let sock = dir.join(format!("{id}.sock"));
    let Some(pid) = read_pid(&pid_file) else {
        bail!("topology `{id}` is not up (no {})", pid_file.display());
    };
    if pid_alive(pid) {
        sys::signal(pid, sys::SIGTERM).map_err(|e| anyhow!("{e}"))?;
        #[allow(clippy::disallowed_methods)] // a deadline on the real clock
        let deadline = std::time::Instant::now() + Duration::from_secs(10);
        let exited =
            emulator::fabric::kernel::wait_for_exit(pid, deadline).map_err(|e| anyhow!("{e}"))?;
        if !exited && pid_alive(pid) {
            bail!("topology `{id}` (pid {pid}) did not stop within 10 s");
        }
    }
    let _ = std::fs::remove_file(&pid_file);
    let _ = std::fs::remove_file(&sock);
    println!("topology `{id}` is down");
    Ok(crate::cli::EXIT_PASS)
}
