//! The kernel fabric's OS layer end to end: sandbox, two hosts joined by a userspace wire
//! between their TUN devices, per-host files, and teardown on SIGKILL, panic and SIGINT.
//!
//! `harness = false`: the user namespace can only be entered by a single-threaded process,
//! which the libtest harness is not. `main()` runs the checks, each in a fresh copy of this
//! binary started with `PINHOLE_KSYS_ROLE=<role>`. Where namespaces are unavailable the
//! checks are skipped with the reason, unless `PINHOLE_REQUIRE_NAMESPACES` is set.
// Teardown deadlines are wall-clock: this drives real processes, not a core.
#![allow(clippy::disallowed_methods)]

use std::collections::BTreeSet;
use std::fs;
use std::io::{BufRead, BufReader, Write};
use std::net::{IpAddr, UdpSocket};
use std::os::fd::AsFd;
use std::path::Path;
use std::process::{Child, ChildStdout, Command, ExitCode, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::thread;
use std::time::{Duration, Instant};

use emulator::fabric::kernel::sys::{self, HostNs, SysError};

const ROLE: &str = "PINHOLE_KSYS_ROLE";
const HOSTS: &str = "127.0.0.1 localhost\n::1 localhost\n10.0.0.2 alice\n10.0.0.3 bob\nfd00::2 alice\nfd00::3 bob\n";
const MARKER: &str = "/tmp/pinhole-ksys-marker";

type Check = (&'static str, fn() -> Result<(), String>);

const CHECKS: &[Check] = &[
    ("udp_over_a_userspace_wire_between_two_hosts", check_demo),
    ("sigkill_of_outer_process_removes_everything", check_sigkill),
    ("panic_inside_sandbox_removes_everything", check_panic),
    ("sigint_is_forwarded_and_removes_everything", check_sigint),
    ("threads_before_enter_sandbox_are_refused", check_threaded),
    ("exec_from_another_process_runs_in_a_host", check_exec),
    (
        "normal_user_runs_the_demo_with_a_single_id_map",
        check_unprivileged,
    ),
    ("tcp_and_udp_through_a_nat_with_tun_offloads", check_offload),
];

fn main() -> ExitCode {
    match std::env::var(ROLE).as_deref() {
        Ok("probe") => role_probe(),
        Ok("demo") => role_demo(),
        Ok("offload") => role_offload(),
        Ok("hold") => role_hold(),
        Ok("threaded") => role_threaded(),
        Ok("exec-server") => role_exec_server(),
        Ok("exec-client") => role_exec_client(),
        Ok(other) => {
            eprintln!("unknown {ROLE}={other}");
            ExitCode::FAILURE
        }
        Err(_) => run_checks(),
    }
}

// ===== the test driver (outside any namespace) =====

fn run_checks() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    if args.iter().any(|a| a == "--list") {
        for (name, _) in CHECKS {
            println!("{name}: test");
        }
        return ExitCode::SUCCESS;
    }
    // libtest's command line, as far as it matters here: filters, --skip, --exact.
    let (mut filters, mut skips) = (Vec::new(), Vec::new());
    let mut exact = false;
    let mut it = args.iter();
    while let Some(arg) = it.next() {
        match arg.as_str() {
            "--skip" => skips.extend(it.next()),
            "--exact" => exact = true,
            "--test-threads" | "--format" | "--color" | "--logfile" | "-Z" | "--shuffle-seed" => {
                it.next();
            }
            a if a.starts_with('-') => {}
            _ => filters.push(arg),
        }
    }
    let matches = |name: &str, f: &String| {
        if exact {
            name == f
        } else {
            name.contains(f.as_str())
        }
    };
    let selected: Vec<&Check> = CHECKS
        .iter()
        .filter(|(name, _)| filters.is_empty() || filters.iter().any(|f| matches(name, f)))
        .filter(|(name, _)| !skips.iter().any(|f| matches(name, f)))
        .collect();
    println!("\nrunning {} tests", selected.len());
    if selected.is_empty() {
        return ExitCode::SUCCESS;
    }
    let probe = self_command("probe")
        .stdin(Stdio::null())
        .output()
        .expect("run this test binary again");
    if !probe.status.success() {
        let why = String::from_utf8_lossy(&probe.stderr).trim().to_string();
        if std::env::var_os("PINHOLE_REQUIRE_NAMESPACES").is_some() {
            println!("namespaces are unavailable but PINHOLE_REQUIRE_NAMESPACES is set: {why}");
            return ExitCode::FAILURE;
        }
        println!("SKIPPED (namespaces unavailable here): {why}");
        return ExitCode::SUCCESS;
    }
    let mut failed = 0;
    for (name, check) in selected {
        let started = Instant::now();
        match check() {
            Ok(()) => println!("test {name} ... ok ({:.1?})", started.elapsed()),
            Err(e) => {
                failed += 1;
                println!("test {name} ... FAILED\n{e}");
            }
        }
    }
    if failed > 0 {
        println!("{failed} failed");
        ExitCode::FAILURE
    } else {
        println!("test result: ok");
        ExitCode::SUCCESS
    }
}

fn self_command(role: &str) -> Command {
    let mut cmd = Command::new(std::env::current_exe().expect("current_exe"));
    cmd.env(ROLE, role).env("RUST_BACKTRACE", "0");
    cmd
}

fn check_demo() -> Result<(), String> {
    let before = root_netns_state();
    let out = self_command("demo")
        .stdin(Stdio::null())
        .output()
        .map_err(|e| e.to_string())?;
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    if !out.status.success() || !stdout.contains("DEMO OK") {
        return Err(format!(
            "demo failed: {}\n--- stdout\n{stdout}--- stderr\n{stderr}",
            out.status
        ));
    }
    print!("{stdout}");
    if Path::new(MARKER).exists() {
        return Err(format!("{MARKER} leaked into the machine's /tmp"));
    }
    compare_root_netns(&before)
}

fn check_offload() -> Result<(), String> {
    let out = self_command("offload")
        .stdin(Stdio::null())
        .output()
        .map_err(|e| e.to_string())?;
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    if !out.status.success() || !stdout.contains("OFFLOAD OK") {
        return Err(format!(
            "offload check failed: {}\n--- stdout\n{stdout}--- stderr\n{stderr}",
            out.status
        ));
    }
    print!("{stdout}");
    Ok(())
}

/// A sandbox holding a `sleep 100` in a host, and every host pid of its PID namespace.
struct Held {
    outer: Child,
    stdout: BufReader<ChildStdout>,
    members: Vec<u32>,
    sleep_host_pid: u32,
}

fn start_hold() -> Result<Held, String> {
    let mut outer = self_command("hold")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .map_err(|e| e.to_string())?;
    let mut stdout = BufReader::new(outer.stdout.take().expect("piped"));
    let mut line = String::new();
    stdout.read_line(&mut line).map_err(|e| e.to_string())?;
    let inner_sleep: u32 = line
        .strip_prefix("READY ")
        .and_then(|p| p.trim().parse().ok())
        .ok_or_else(|| format!("hold role said {line:?}"))?;
    let members = sandbox_members(outer.id())?;
    let sleep_host_pid = members
        .iter()
        .copied()
        .find(|&p| {
            status_field(p, "NSpid")
                .and_then(|v| v.split_whitespace().last().map(str::to_string))
                .as_deref()
                == Some(&inner_sleep.to_string())
        })
        .ok_or_else(|| format!("sleep (pid {inner_sleep} inside) not found among {members:?}"))?;
    if members.len() < 3 {
        return Err(format!(
            "expected init, program and sleep, found {members:?}"
        ));
    }
    Ok(Held {
        outer,
        stdout,
        members,
        sleep_host_pid,
    })
}

/// Wait up to 2 s for every process of the sandbox to be gone.
fn all_gone(held: &Held) -> Result<(), String> {
    let deadline = Instant::now() + Duration::from_secs(2);
    loop {
        let alive: Vec<u32> = held.members.iter().copied().filter(|&p| alive(p)).collect();
        if alive.is_empty() {
            return Ok(());
        }
        if Instant::now() > deadline {
            return Err(format!(
                "still alive 2 s later: {alive:?} (sleep was {})",
                held.sleep_host_pid
            ));
        }
        thread::sleep(Duration::from_millis(20));
    }
}

fn check_sigkill() -> Result<(), String> {
    let before = root_netns_state();
    let mut held = start_hold()?;
    held.outer.kill().map_err(|e| e.to_string())?; // SIGKILL
    let status = held.outer.wait().map_err(|e| e.to_string())?;
    all_gone(&held)?;
    println!(
        "  SIGKILL: outer {status}, {} sandbox processes gone",
        held.members.len()
    );
    compare_root_netns(&before)
}

fn check_panic() -> Result<(), String> {
    let before = root_netns_state();
    let mut held = start_hold()?;
    let mut stdin = held.outer.stdin.take().expect("piped");
    stdin.write_all(b"panic\n").map_err(|e| e.to_string())?;
    let status = held.outer.wait().map_err(|e| e.to_string())?;
    all_gone(&held)?;
    if status.code() != Some(101) {
        return Err(format!("a panic should exit 101, outer exited {status}"));
    }
    let mut rest = String::new();
    let _ = std::io::Read::read_to_string(&mut held.stdout, &mut rest);
    println!(
        "  panic: outer {status}, {} sandbox processes gone",
        held.members.len()
    );
    compare_root_netns(&before)
}

fn check_sigint() -> Result<(), String> {
    let before = root_netns_state();
    let mut held = start_hold()?;
    let pid = held.outer.id().to_string();
    let killed = Command::new("kill")
        .args(["-INT", &pid])
        .status()
        .map_err(|e| e.to_string())?;
    if !killed.success() {
        return Err("kill -INT failed".into());
    }
    let status = held.outer.wait().map_err(|e| e.to_string())?;
    all_gone(&held)?;
    if status.code() != Some(128 + 2) {
        return Err(format!(
            "SIGINT should end the program (exit 130), outer exited {status}"
        ));
    }
    println!(
        "  SIGINT: outer {status}, {} sandbox processes gone",
        held.members.len()
    );
    compare_root_netns(&before)
}

fn check_threaded() -> Result<(), String> {
    let out = self_command("threaded")
        .stdin(Stdio::null())
        .output()
        .map_err(|e| e.to_string())?;
    let stderr = String::from_utf8_lossy(&out.stderr);
    if out.status.code() != Some(0) || !stderr.contains("before any thread exists") {
        return Err(format!("threaded role: {} {stderr}", out.status));
    }
    println!("  {}", stderr.trim());
    Ok(())
}

/// As root: run the demo again as `nobody` (uid 65534), whose user namespace maps only
/// itself. /dev/net/tun may be mode 0600 on the machine, so that run gets a 0666 copy of
/// the device node on a tmpfs in a private mount namespace (`unshare -m`), which leaves
/// the machine's /dev alone.
fn check_unprivileged() -> Result<(), String> {
    let euid = status_field(std::process::id(), "Uid")
        .and_then(|v| v.split_whitespace().nth(1).map(str::to_string));
    if euid.as_deref() != Some("0") {
        println!("  skipped: needs root to become another user");
        return Ok(());
    }
    let exe = std::env::current_exe().map_err(|e| e.to_string())?;
    let script = "mount -t tmpfs -o mode=755 tmpfs /dev/net && \
                  mknod -m 666 /dev/net/tun c 10 200 && \
                  exec setpriv --reuid=65534 --regid=65534 --clear-groups \"$0\"";
    let out = match Command::new("unshare")
        .args(["-m", "sh", "-c", script])
        .arg(&exe)
        .env(ROLE, "demo")
        .env("RUST_BACKTRACE", "0")
        .stdin(Stdio::null())
        .output()
    {
        Ok(out) => out,
        Err(e) => {
            println!("  skipped: cannot run unshare(1): {e}");
            return Ok(());
        }
    };
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    if !out.status.success() || !stdout.contains("DEMO OK") || !stdout.contains("Single") {
        return Err(format!(
            "demo as nobody: {}\n--- stdout\n{stdout}--- stderr\n{stderr}",
            out.status
        ));
    }
    print!("{stdout}");
    Ok(())
}

fn check_exec() -> Result<(), String> {
    let socket = std::env::temp_dir().join(format!("pinhole-ksys-{}.sock", std::process::id()));
    let mut server = self_command("exec-server")
        .env("PINHOLE_KSYS_SOCKET", &socket)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .spawn()
        .map_err(|e| e.to_string())?;
    let result = exec_against(&mut server, &socket);
    let _ = server.kill();
    let _ = server.wait();
    let _ = fs::remove_file(&socket);
    result
}

fn exec_against(server: &mut Child, socket: &Path) -> Result<(), String> {
    let mut ready = String::new();
    BufReader::new(server.stdout.take().expect("piped"))
        .read_line(&mut ready)
        .map_err(|e| e.to_string())?;
    if ready.trim() != "READY" {
        return Err(format!("exec server said {ready:?}"));
    }
    let devnull = fs::File::open("/dev/null").map_err(|e| e.to_string())?;
    let (mut out_r, out_w) = std::io::pipe().map_err(|e| e.to_string())?;
    let code = sys::exec_remote(
        socket,
        "alice",
        &[
            "sh".into(),
            "-c".into(),
            "grep bob /etc/hosts; echo \"X=$X\"; exit 7".into(),
        ],
        &[("X".into(), "from-client".into())],
        [devnull.as_fd(), out_w.as_fd(), out_w.as_fd()],
        false,
    )
    .map_err(|e| e.to_string())?;
    drop(out_w);
    let mut out = String::new();
    std::io::Read::read_to_string(&mut out_r, &mut out).map_err(|e| e.to_string())?;
    if code != 7 || !out.contains("10.0.0.3 bob") || !out.contains("X=from-client") {
        return Err(format!("exec in alice: code {code}, output {out:?}"));
    }
    println!(
        "  exec in alice from outside: exit {code}, output {:?}",
        out.trim()
    );

    match sys::exec_remote(
        socket,
        "carol",
        &["true".into()],
        &[],
        [devnull.as_fd(), devnull.as_fd(), devnull.as_fd()],
        false,
    ) {
        Err(e) if e.to_string().contains("no host named carol") => {
            println!("  unknown host: {e}")
        }
        other => return Err(format!("exec in a missing host: {other:?}")),
    }

    // A client forwards SIGINT to the remote program.
    let mut client = self_command("exec-client")
        .env("PINHOLE_KSYS_SOCKET", socket)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .spawn()
        .map_err(|e| e.to_string())?;
    let mut up = String::new();
    BufReader::new(client.stdout.take().expect("piped"))
        .read_line(&mut up)
        .map_err(|e| e.to_string())?;
    if up.trim() != "up" {
        let _ = client.kill();
        return Err(format!("remote program said {up:?}"));
    }
    let pid = client.id().to_string();
    Command::new("kill")
        .args(["-INT", &pid])
        .status()
        .map_err(|e| e.to_string())?;
    let status = client.wait().map_err(|e| e.to_string())?;
    if status.code() != Some(130) {
        return Err(format!("client after SIGINT: {status} (want exit 130)"));
    }
    println!("  SIGINT to the client ended the remote program: client {status}");

    // A client that dies leaves no remote program behind (SIGHUP).
    let mut client = self_command("exec-client")
        .env("PINHOLE_KSYS_SOCKET", socket)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .spawn()
        .map_err(|e| e.to_string())?;
    let mut up = String::new();
    BufReader::new(client.stdout.take().expect("piped"))
        .read_line(&mut up)
        .map_err(|e| e.to_string())?;
    let is_sleep =
        |p: &u32| fs::read_to_string(format!("/proc/{p}/comm")).is_ok_and(|c| c.trim() == "sleep");
    // "up" comes from sh just before it execs sleep: wait for the exec.
    let deadline = Instant::now() + Duration::from_secs(2);
    let mut remote: Vec<u32> = Vec::new();
    while remote.is_empty() && Instant::now() < deadline {
        thread::sleep(Duration::from_millis(10));
        remote = sandbox_members(server.id())?
            .into_iter()
            .filter(is_sleep)
            .collect();
    }
    if remote.len() != 1 {
        let _ = client.kill();
        return Err(format!("expected one remote sleep, found {remote:?}"));
    }
    client.kill().map_err(|e| e.to_string())?;
    let _ = client.wait();
    let deadline = Instant::now() + Duration::from_secs(2);
    while alive(remote[0]) {
        if Instant::now() > deadline {
            return Err(format!("remote sleep {} survived its client", remote[0]));
        }
        thread::sleep(Duration::from_millis(20));
    }
    println!("  SIGKILL of a client hung up its remote program");
    Ok(())
}

/// Host pids of every process in the PID namespace of the sandbox started as `outer`.
fn sandbox_members(outer: u32) -> Result<Vec<u32>, String> {
    let init = processes()
        .into_iter()
        .find(|&p| status_field(p, "PPid").as_deref() == Some(&outer.to_string()))
        .ok_or("no init process below the outer process")?;
    let pidns = fs::read_link(format!("/proc/{init}/ns/pid")).map_err(|e| e.to_string())?;
    Ok(processes()
        .into_iter()
        .filter(|p| fs::read_link(format!("/proc/{p}/ns/pid")).ok().as_ref() == Some(&pidns))
        .collect())
}

fn processes() -> Vec<u32> {
    fs::read_dir("/proc")
        .map(|d| {
            d.filter_map(|e| e.ok()?.file_name().to_str()?.parse().ok())
                .collect()
        })
        .unwrap_or_default()
}

fn status_field(pid: u32, field: &str) -> Option<String> {
    let status = fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    status.lines().find_map(|l| {
        l.strip_prefix(field)?
            .strip_prefix(':')
            .map(|v| v.trim().to_string())
    })
}

/// Exists and is not a zombie.
fn alive(pid: u32) -> bool {
    match status_field(pid, "State") {
        Some(state) => !state.starts_with('Z') && !state.starts_with('X'),
        None => false,
    }
}

/// Interfaces and named network namespaces of the machine's (root) network namespace.
fn root_netns_state() -> (BTreeSet<String>, BTreeSet<String>) {
    let names = |dir: &str| -> BTreeSet<String> {
        fs::read_dir(dir)
            .map(|d| {
                d.filter_map(|e| Some(e.ok()?.file_name().to_string_lossy().into_owned()))
                    .collect()
            })
            .unwrap_or_default()
    };
    (names("/sys/class/net"), names("/run/netns"))
}

fn compare_root_netns(before: &(BTreeSet<String>, BTreeSet<String>)) -> Result<(), String> {
    let after = root_netns_state();
    if after.0.iter().any(|i| i.starts_with("pht")) {
        return Err(format!(
            "a TUN of the sandbox is in the root network namespace: {:?}",
            after.0
        ));
    }
    let new_ifaces: Vec<_> = after.0.difference(&before.0).collect();
    if !new_ifaces.is_empty() {
        // Other programs on the machine may add interfaces; ours are all named pht*.
        println!("  note: interfaces appeared meanwhile (not ours): {new_ifaces:?}");
    }
    let new_netns: Vec<_> = after.1.difference(&before.1).collect();
    if !new_netns.is_empty() {
        return Err(format!("new entries in /run/netns: {new_netns:?}"));
    }
    Ok(())
}

// ===== roles (each is a fresh single-threaded process) =====

fn enter() -> sys::Sandbox {
    match sys::enter_sandbox() {
        Ok(sandbox) => sandbox,
        Err(e) => {
            eprintln!("{e}");
            std::process::exit(if e.is_unsupported() { 3 } else { 1 });
        }
    }
}

fn role_probe() -> ExitCode {
    let _sandbox = enter();
    // Also make sure a host with a TUN can be built here.
    match HostNs::create("probe", HOSTS).and_then(|h| {
        h.add_tun("pht0", 1500, &[(ip("10.0.0.2"), 24)], &[])
            .map(|_| ())
    }) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("{e}");
            ExitCode::from(3)
        }
    }
}

fn ip(s: &str) -> IpAddr {
    s.parse().expect("literal address")
}

fn role_hold() -> ExitCode {
    let _sandbox = enter();
    let host = HostNs::create("alice", HOSTS).expect("create host");
    let _tun = host
        .add_tun(
            "pht0",
            1500,
            &[(ip("10.0.0.2"), 24), (ip("fd00::2"), 64)],
            &[],
        )
        .expect("add tun");
    // Never waited for on purpose: the test kills the whole sandbox under it.
    #[allow(clippy::zombie_processes)]
    let sleep = host
        .spawn(
            &["sleep".into(), "100".into()],
            &[],
            Stdio::null(),
            Stdio::null(),
            Stdio::inherit(),
        )
        .expect("spawn sleep");
    println!("READY {}", sleep.id());
    std::io::stdout().flush().expect("flush");
    let mut line = String::new();
    let _ = std::io::stdin().read_line(&mut line);
    if line.trim() == "panic" {
        panic!("panic requested by the test (expected)");
    }
    loop {
        thread::sleep(Duration::from_secs(60));
    }
}

fn role_threaded() -> ExitCode {
    let worker = thread::spawn(|| thread::sleep(Duration::from_millis(200)));
    let result = sys::enter_sandbox();
    let _ = worker.join();
    match result {
        Err(e @ SysError::Threaded { .. }) => {
            eprintln!("{e}");
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("wrong error: {e}");
            ExitCode::FAILURE
        }
        Ok(_) => {
            eprintln!("entered the sandbox from a threaded process");
            ExitCode::FAILURE
        }
    }
}

fn role_exec_server() -> ExitCode {
    let socket = std::env::var_os("PINHOLE_KSYS_SOCKET").expect("PINHOLE_KSYS_SOCKET");
    let _sandbox = enter();
    let alice = Arc::new(HostNs::create("alice", HOSTS).expect("create host"));
    let server = sys::ExecServer::bind(Path::new(&socket)).expect("bind");
    println!("READY");
    std::io::stdout().flush().expect("flush");
    loop {
        let request = server.accept().expect("accept");
        if request.host() == alice.name() {
            let alice = alice.clone();
            thread::spawn(move || request.run(&alice));
        } else {
            let why = format!("no host named {}", request.host());
            request.reject(&why);
        }
    }
}

fn role_exec_client() -> ExitCode {
    let socket = std::env::var_os("PINHOLE_KSYS_SOCKET").expect("PINHOLE_KSYS_SOCKET");
    let (stdin, stdout, stderr) = (std::io::stdin(), std::io::stdout(), std::io::stderr());
    let stdio = [stdin.as_fd(), stdout.as_fd(), stderr.as_fd()];
    let argv = ["sh", "-c", "echo up; exec sleep 100"].map(String::from);
    match sys::exec_remote(Path::new(&socket), "alice", &argv, &[], stdio, true) {
        Ok(code) => ExitCode::from(code as u8),
        Err(e) => {
            eprintln!("{e}");
            ExitCode::FAILURE
        }
    }
}

fn role_demo() -> ExitCode {
    let sandbox = enter();
    match demo(sandbox) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("demo: {e}");
            ExitCode::FAILURE
        }
    }
}

fn run_in(host: &HostNs, script: &str) -> Result<String, String> {
    let child = host
        .spawn(
            &["sh".into(), "-c".into(), script.into()],
            &[("PINHOLE_DEMO".into(), "1".into())],
            Stdio::null(),
            Stdio::piped(),
            Stdio::inherit(),
        )
        .map_err(|e| e.to_string())?;
    let out = child.wait_with_output().map_err(|e| e.to_string())?;
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    if out.status.success() {
        Ok(text)
    } else {
        Err(format!(
            "{script:?} in {} exited {}: {text}",
            host.name(),
            out.status
        ))
    }
}

fn demo(sandbox: sys::Sandbox) -> Result<(), Box<dyn std::error::Error>> {
    println!("  sandbox id map: {:?}", sandbox.id_map());
    let alice = HostNs::create("alice", HOSTS)?;
    let bob = HostNs::create("bob", HOSTS)?;
    let tun_a = alice.add_tun(
        "pht0",
        1500,
        &[(ip("10.0.0.2"), 24), (ip("fd00::2"), 64)],
        &[],
    )?;
    let tun_b = bob.add_tun(
        "pht0",
        1500,
        &[(ip("10.0.0.3"), 24), (ip("fd00::3"), 64)],
        &[],
    )?;

    // Addresses and routes as the kernel sees them inside alice.
    let v6 = run_in(&alice, "cat /proc/net/if_inet6")?;
    if !v6.contains("fd000000000000000000000000000002") || !v6.contains("pht0") {
        return Err(format!("alice's IPv6 addresses: {v6}").into());
    }
    let routes = run_in(&alice, "cat /proc/net/route")?;
    if !routes
        .lines()
        .any(|l| l.starts_with("pht0\t00000000\t00000000"))
    {
        return Err(format!("alice has no on-link IPv4 default route: {routes}").into());
    }
    if !v6
        .lines()
        .any(|l| l.starts_with("00000000000000000000000000000001") && l.ends_with("lo"))
    {
        return Err(format!("lo is not up in alice (no ::1): {v6}").into());
    }
    println!("  alice: fd00::2 on pht0, ::1 on lo, on-link IPv4 default route via pht0");

    // A request the kernel refuses comes back as its errno, with the operation named.
    let dup = (ip("10.0.9.2"), 24);
    match alice.add_tun("pht9", 1500, &[dup, dup], &[]) {
        Err(SysError::Os { op, source })
            if op == "add address 10.0.9.2/24 to pht9 in host alice"
                && source.raw_os_error() == Some(libc::EEXIST) =>
        {
            println!("  refused netlink request: {op}: {source}");
        }
        other => return Err(format!("a duplicate address on pht9: {other:?}").into()),
    }

    // UDP echo servers opened inside bob from this thread.
    let servers = {
        let _in_bob = bob.enter_net()?;
        [
            UdpSocket::bind("10.0.0.3:9000")?,
            UdpSocket::bind("[fd00::3]:9000")?,
        ]
    };
    for server in servers {
        server.set_read_timeout(Some(Duration::from_secs(20)))?;
        thread::spawn(move || {
            let mut buf = [0u8; 2048];
            while let Ok((n, from)) = server.recv_from(&mut buf) {
                let mut reply = b"pong:".to_vec();
                reply.extend_from_slice(&buf[..n]);
                let _ = server.send_to(&reply, from);
            }
        });
    }

    // The wire: every packet out of one TUN goes into the other.
    let stop = Arc::new(AtomicBool::new(false));
    let counts = Arc::new([AtomicUsize::new(0), AtomicUsize::new(0)]);
    let wire = {
        let stop = stop.clone();
        let counts = counts.clone();
        thread::spawn(move || -> Result<(), SysError> {
            let fds = [tun_a.as_fd(), tun_b.as_fd()];
            let mut ready = [false; 2];
            let mut buf = vec![0u8; 2048];
            while !stop.load(Ordering::Relaxed) {
                sys::wait_readable(&fds, Some(Duration::from_millis(20)), &mut ready)?;
                for from in 0..2 {
                    while ready[from] {
                        match sys::read_packet(fds[from], &mut buf)? {
                            Some(n) => {
                                sys::write_packet(fds[1 - from], &buf[..n])?;
                                counts[from].fetch_add(1, Ordering::Relaxed);
                            }
                            None => ready[from] = false,
                        }
                    }
                }
            }
            Ok(())
        })
    };

    for (label, target) in [("v4", "10.0.0.3"), ("v6", "fd00::3"), ("name", "bob")] {
        let script = format!(
            "exec 3<>/dev/udp/{target}/9000 && printf ping-{label} >&3 && \
             timeout 5 dd bs=2048 count=1 status=none <&3"
        );
        let child = alice.spawn(
            &["bash".into(), "-c".into(), script],
            &[],
            Stdio::null(),
            Stdio::piped(),
            Stdio::inherit(),
        )?;
        let out = child.wait_with_output()?;
        let got = String::from_utf8_lossy(&out.stdout);
        if !out.status.success() || got != format!("pong:ping-{label}") {
            return Err(format!("UDP {label} via {target}: {} {got:?}", out.status).into());
        }
        println!("  UDP {label}: alice -> {target}:9000 -> {got:?} back over the wire");
    }
    stop.store(true, Ordering::Relaxed);
    wire.join().map_err(|_| "wire thread panicked")??;
    println!(
        "  wire carried {} packets alice->bob, {} bob->alice",
        counts[0].load(Ordering::Relaxed),
        counts[1].load(Ordering::Relaxed)
    );

    // Per-host files.
    let hosts = run_in(&alice, "cat /etc/hosts")?;
    if hosts != HOSTS {
        return Err(format!("/etc/hosts in alice is {hosts:?}").into());
    }
    let resolv = run_in(&bob, "cat /etc/resolv.conf")?;
    if resolv != sys::RESOLV_CONF {
        return Err(format!("/etc/resolv.conf in bob is {resolv:?}").into());
    }
    run_in(&alice, &format!("echo alice > {MARKER}"))?;
    if run_in(&alice, &format!("cat {MARKER}"))? != "alice\n" {
        return Err("alice's /tmp did not keep its file between programs".into());
    }
    run_in(&bob, &format!("test ! -e {MARKER} && test -w /tmp"))?;
    if Path::new(MARKER).exists() {
        return Err("alice's /tmp is the sandbox's /tmp".into());
    }
    println!("  /etc/hosts, /etc/resolv.conf and a private /tmp per host: ok");

    // Orphans are re-parented to the sandbox's init, which reaps them.
    run_in(&bob, "sleep 0.2 >/dev/null 2>&1 & exit 0")?;
    thread::sleep(Duration::from_millis(600));
    let zombies: Vec<u32> = processes()
        .into_iter()
        .filter(|&p| status_field(p, "State").is_some_and(|s| s.starts_with('Z')))
        .collect();
    if !zombies.is_empty() {
        return Err(format!("zombies in the sandbox: {zombies:?}").into());
    }
    println!("  an orphaned background process was reaped by init");

    // Programs that drop privileges: with the whole id range mapped, they can.
    let dropped = run_in(
        &alice,
        "setpriv --reuid=65534 --regid=65534 --clear-groups id -u 2>&1",
    );
    match (sandbox.id_map(), dropped) {
        (sys::IdMap::Full, Ok(uid)) if uid.trim() == "65534" => {
            println!("  dropping privileges to uid 65534 inside alice: ok")
        }
        (sys::IdMap::Full, other) => {
            return Err(format!("setpriv inside alice with a full id map: {other:?}").into());
        }
        (map, Ok(uid)) => {
            return Err(format!("with id map {map:?} uid 65534 should not exist: {uid:?}").into());
        }
        (map, Err(_)) => println!("  id map {map:?}: dropping privileges fails, as expected"),
    }

    println!("DEMO OK");
    Ok(())
}

// ===== the kernel fabric with TUN offloads =====

fn role_offload() -> ExitCode {
    let _sandbox = enter();
    match offload() {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("offload: {e}");
            ExitCode::FAILURE
        }
    }
}

/// Bytes of the test stream at `i`: not periodic in any segment size.
fn pattern(i: u64) -> u8 {
    (i ^ (i >> 7) ^ (i >> 17)).wrapping_mul(31) as u8
}

/// Send `len` bytes of [`pattern`] over TCP from alice to the server through the fabric
/// and check every byte on arrival.
fn tcp_transfer(
    alice: &HostNs,
    server: &HostNs,
    to: IpAddr,
    port: u16,
    len: u64,
) -> Result<(), Box<dyn std::error::Error>> {
    use std::io::Read;
    let listener = {
        let _in = server.enter_net()?;
        std::net::TcpListener::bind((to, port))?
    };
    let reader = thread::spawn(move || -> Result<u64, String> {
        let (mut s, _) = listener.accept().map_err(|e| e.to_string())?;
        s.set_read_timeout(Some(Duration::from_secs(20)))
            .map_err(|e| e.to_string())?;
        let mut buf = vec![0u8; 1 << 16];
        let mut at = 0u64;
        loop {
            let n = s.read(&mut buf).map_err(|e| format!("read at {at}: {e}"))?;
            if n == 0 {
                return Ok(at);
            }
            for (k, b) in buf[..n].iter().enumerate() {
                if *b != pattern(at + k as u64) {
                    return Err(format!("byte {} differs", at + k as u64));
                }
            }
            at += n as u64;
        }
    });
    let mut stream = {
        let _in = alice.enter_net()?;
        std::net::TcpStream::connect_timeout(
            &std::net::SocketAddr::new(to, port),
            Duration::from_secs(5),
        )?
    };
    stream.set_write_timeout(Some(Duration::from_secs(20)))?;
    let mut chunk = vec![0u8; 1 << 16];
    let mut sent = 0u64;
    while sent < len {
        let n = chunk.len().min((len - sent) as usize);
        for (k, b) in chunk[..n].iter_mut().enumerate() {
            *b = pattern(sent + k as u64);
        }
        stream.write_all(&chunk[..n])?;
        sent += n as u64;
    }
    stream.shutdown(std::net::Shutdown::Write)?;
    let got = reader.join().map_err(|_| "reader panicked")??;
    if got != len {
        return Err(format!("received {got} of {len} bytes").into());
    }
    Ok(())
}

/// Datagrams of several sizes from alice to the server and back through the NAT.
fn udp_exchange(
    alice: &HostNs,
    server: &HostNs,
    port: u16,
    max: usize,
) -> Result<(), Box<dyn std::error::Error>> {
    let srv = {
        let _in = server.enter_net()?;
        UdpSocket::bind(("203.0.113.5", port))?
    };
    let cli = {
        let _in = alice.enter_net()?;
        UdpSocket::bind("0.0.0.0:0")?
    };
    srv.set_read_timeout(Some(Duration::from_secs(5)))?;
    cli.set_read_timeout(Some(Duration::from_secs(5)))?;
    let mut buf = vec![0u8; 2048];
    for size in [1usize, 63, 64, 1200, 1372, 1472]
        .into_iter()
        .filter(|s| *s <= max)
    {
        let msg: Vec<u8> = (0..size as u64).map(pattern).collect();
        cli.send_to(&msg, ("203.0.113.5", port))?;
        let (n, from) = srv
            .recv_from(&mut buf)
            .map_err(|e| format!("UDP {size} B to the server: {e}"))?;
        if buf[..n] != msg[..] || from.ip() != ip("203.0.113.11") {
            return Err(format!("UDP {size} B: got {n} B from {from}").into());
        }
        srv.send_to(&msg, from)?;
        let n = cli
            .recv(&mut buf)
            .map_err(|e| format!("UDP {size} B reply: {e}"))?;
        if buf[..n] != msg[..] {
            return Err(format!("UDP {size} B reply: got {n} B").into());
        }
    }
    Ok(())
}

/// A burst of datagrams of one flow (the engine may coalesce them into USO writes): all
/// arrive, in order, intact. Keep `count` small enough for the receiver's default socket
/// buffer (about 200 KiB of skbs).
fn udp_burst(
    alice: &HostNs,
    server: &HostNs,
    to: IpAddr,
    port: u16,
    count: usize,
) -> Result<(), Box<dyn std::error::Error>> {
    let srv = {
        let _in = server.enter_net()?;
        UdpSocket::bind((to, port))?
    };
    let cli = {
        let _in = alice.enter_net()?;
        UdpSocket::bind(if to.is_ipv4() { "0.0.0.0:0" } else { "[::]:0" })?
    };
    srv.set_read_timeout(Some(Duration::from_secs(5)))?;
    let msg = |i: usize| -> Vec<u8> {
        let len = if i % 50 == 49 { 33 } else { 700 };
        (0..len as u64).map(|k| pattern(k + i as u64)).collect()
    };
    for i in 0..count {
        cli.send_to(&msg(i), (to, port))?;
    }
    let mut buf = vec![0u8; 2048];
    for i in 0..count {
        let n = srv
            .recv(&mut buf)
            .map_err(|e| format!("burst datagram {i} of {count}: {e}"))?;
        if buf[..n] != msg(i)[..] {
            return Err(format!("burst datagram {i}: {n} B, not the one sent").into());
        }
    }
    Ok(())
}

fn offload() -> Result<(), Box<dyn std::error::Error>> {
    use emulator::fabric::kernel::KernelFabric;
    use emulator::link::LinkConfig;
    use emulator::nat::{NatConfig, Preset};
    use emulator::topology::{Attachment, Topology};
    let topo = Topology::builder()
        .network("internet", "203.0.113.0/24")
        .network("home", "10.0.1.0/24")
        .host("alice", "home", "10.0.1.2")
        .host("server", "internet", "203.0.113.5")
        .nat(
            "nat",
            "home",
            "internet",
            NatConfig::preset(Preset::PortRestricted, vec![ip("203.0.113.11")]),
        )
        .build()?;
    let fabric = KernelFabric::start_with(topo, 1, false, true)?;
    let (alice, server) = (fabric.host(0), fabric.host(1));
    let s0 = fabric.snapshot()?;
    if !s0.offloads.vnet_hdr || s0.offloads.flags & sys::TUN_F_TSO4 == 0 {
        return Err(format!("TUN offloads not in force: {}", s0.offloads).into());
    }
    println!("  TUN offloads: {}", s0.offloads);

    // 1. A plain path: super-segments cross the NAT whole.
    const LEN: u64 = 16 << 20;
    udp_exchange(alice, server, 7001, 1472)?;
    udp_burst(alice, server, ip("203.0.113.5"), 7004, 64)?;
    tcp_transfer(alice, server, ip("203.0.113.5"), 7000, LEN)?;
    let s1 = fabric.snapshot()?;
    let packets = s1.engine.sent - s0.engine.sent;
    println!(
        "  plain path: {LEN} bytes in {packets} engine packets (both directions), {} cut in userspace, \
         {} UDP datagrams coalesced",
        s1.segmented, s1.coalesced
    );
    if s1.segmented != 0 || s1.offload_errors != 0 {
        return Err(format!(
            "plain path: {} segmented, {} offload errors",
            s1.segmented, s1.offload_errors
        )
        .into());
    }
    // One MSS-sized packet per 1448 bytes would be LEN / 1448 data packets alone.
    if packets * 1448 >= LEN {
        return Err(format!("no aggregation: {packets} packets for {LEN} bytes").into());
    }

    // 2. A link with delay and a smaller MTU towards the server: every super-segment is
    //    cut in userspace; the server's kernel verifies every checksum of what it gets,
    //    and path MTU discovery runs through the NAT's ICMP translation.
    let link = LinkConfig {
        delay: Duration::from_millis(1),
        mtu: Some(1400),
        ..LinkConfig::default()
    };
    fabric.set_link(Attachment::Host(1), false, link)?;
    // 1372 B of payload fill the 1400-byte MTU exactly.
    udp_exchange(alice, server, 7003, 1372)?;
    udp_burst(alice, server, ip("203.0.113.5"), 7005, 64)?;
    tcp_transfer(alice, server, ip("203.0.113.5"), 7002, LEN / 4)?;
    let s2 = fabric.snapshot()?;
    println!(
        "  impaired path: {} bytes, {} super-segments cut in userspace, drops {:?}",
        LEN / 4,
        s2.segmented,
        s2.engine.drops
    );
    if s2.segmented == 0 || s2.offload_errors != 0 {
        return Err(format!(
            "impaired path: {} segmented, {} offload errors",
            s2.segmented, s2.offload_errors
        )
        .into());
    }
    drop(fabric);
    offload_v6()?;
    println!("OFFLOAD OK");
    Ok(())
}

/// The same over IPv6 through a NAT66: TCPv6 super-segments (TSO6) whole, then cut at a
/// delayed 1400-byte-MTU link (ICMPv6 Packet Too Big through the NAT); USO6 bursts.
fn offload_v6() -> Result<(), Box<dyn std::error::Error>> {
    use emulator::fabric::kernel::KernelFabric;
    use emulator::link::LinkConfig;
    use emulator::nat::{NatConfig, Preset};
    use emulator::topology::{Attachment, Topology};
    let topo = Topology::builder()
        .network("internet6", "2001:db8:1::/64")
        .network("home6", "fd00:a::/64")
        .host("alice6", "home6", "fd00:a::2")
        .host("server6", "internet6", "2001:db8:1::5")
        .nat(
            "nat66",
            "home6",
            "internet6",
            NatConfig::preset(Preset::PortRestricted, vec![ip("2001:db8:1::11")]),
        )
        .build()?;
    let fabric = KernelFabric::start_with(topo, 1, false, true)?;
    let (alice, server) = (fabric.host(0), fabric.host(1));
    let to = ip("2001:db8:1::5");
    let s0 = fabric.snapshot()?;
    if s0.offloads.flags & sys::TUN_F_TSO6 == 0 {
        return Err(format!("TSO6 not in force: {}", s0.offloads).into());
    }
    const LEN: u64 = 16 << 20;
    udp_burst(alice, server, to, 7104, 64)?;
    tcp_transfer(alice, server, to, 7100, LEN)?;
    let s1 = fabric.snapshot()?;
    let packets = s1.engine.sent - s0.engine.sent;
    println!(
        "  IPv6 plain path: {LEN} bytes in {packets} engine packets, {} UDP datagrams coalesced",
        s1.coalesced
    );
    if s1.segmented != 0 || s1.offload_errors != 0 || packets * 1428 >= LEN {
        return Err(format!(
            "IPv6 plain path: {packets} packets, {} segmented, {} offload errors",
            s1.segmented, s1.offload_errors
        )
        .into());
    }
    let link = LinkConfig {
        delay: Duration::from_millis(1),
        mtu: Some(1400),
        ..LinkConfig::default()
    };
    fabric.set_link(Attachment::Host(1), false, link)?;
    udp_burst(alice, server, to, 7105, 64)?;
    tcp_transfer(alice, server, to, 7102, LEN / 4)?;
    let s2 = fabric.snapshot()?;
    println!(
        "  IPv6 impaired path: {} bytes, {} super-segments cut in userspace, drops {:?}",
        LEN / 4,
        s2.segmented,
        s2.engine.drops
    );
    if s2.segmented == 0 || s2.offload_errors != 0 {
        return Err(format!(
            "IPv6 impaired path: {} segmented, {} offload errors",
            s2.segmented, s2.offload_errors
        )
        .into());
    }
    Ok(())
}
