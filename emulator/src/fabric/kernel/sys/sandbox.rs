//! The sandbox: fresh user + PID + mount + network namespaces for the whole program.
//!
//! Processes, from outside in:
//!
//! 1. **outer** — the process the user started. It forks a short-lived *helper*, unshares
//!    the four namespaces (the user namespace applies to itself, the PID namespace to its
//!    next child), lets the helper — still in the parent user namespace — write the uid/gid
//!    maps, then forks *init* and only waits: SIGINT, SIGTERM, SIGHUP, SIGQUIT, SIGUSR1 and
//!    SIGUSR2 are forwarded to init, and it exits with init's status (128 + signal number
//!    when killed by a signal).
//! 2. **init** — PID 1 of the new PID namespace, with `PR_SET_PDEATHSIG(SIGKILL)`: when
//!    the outer process dies, even by SIGKILL, the kernel kills init, and with it every
//!    process of the namespace; network namespaces, TUN devices and mounts go when their
//!    last process or fd does. It makes all mounts private, mounts a fresh `/proc`, brings
//!    `lo` up, forks the *program* and then only reaps: orphans re-parented to it are
//!    collected at once, signals are forwarded to the program, and it exits with the
//!    program's status as soon as the program exits.
//! 3. **program** — PID 2, where [`enter_sandbox`] returns. Keeping init separate means
//!    the program's own `waitpid`s (`std::process::Child::wait`) never race a reaper, and
//!    the program keeps normal signal semantics (PID 1 ignores signals it has no handler
//!    for).

use std::fs::{self, File};
use std::io::{self, Read, Write};
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::path::Path;
use std::process::Command;
use std::sync::atomic::{AtomicBool, AtomicI32, AtomicU8, Ordering};

use super::{SysError, cvt, netlink::Netlink};

static IN_SANDBOX: AtomicBool = AtomicBool::new(false);
static ID_MAP: AtomicU8 = AtomicU8::new(0);
/// The pid that forwarded signals go to (init for the outer process, the program for init).
static FORWARD_TO: AtomicI32 = AtomicI32::new(0);

const FORWARDED: [libc::c_int; 6] = [
    libc::SIGINT,
    libc::SIGTERM,
    libc::SIGHUP,
    libc::SIGQUIT,
    libc::SIGUSR1,
    libc::SIGUSR2,
];

/// How the sandbox's uids and gids map onto the machine's.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum IdMap {
    /// Every id maps to itself (pinhole started as root): 0..4294967295 on the machine
    /// itself, or every id the surrounding container has. Programs that drop privileges
    /// (`kamailio -u`) work.
    Full,
    /// Root inside is the invoking user; ids from 1 on map to the user's subordinate ranges
    /// from `/etc/subuid` and `/etc/subgid` (set by `newuidmap`/`newgidmap`).
    Subordinate,
    /// Only root inside exists (it is the invoking user); `setgroups` is denied. Programs
    /// that switch to another user fail.
    Single,
}

impl IdMap {
    fn code(self) -> u8 {
        match self {
            IdMap::Full => 1,
            IdMap::Subordinate => 2,
            IdMap::Single => 3,
        }
    }

    fn from_code(code: u8) -> IdMap {
        match code {
            1 => IdMap::Full,
            2 => IdMap::Subordinate,
            _ => IdMap::Single,
        }
    }
}

/// Proof that the program runs inside the sandbox; returned by [`enter_sandbox`].
#[derive(Debug, Clone, Copy)]
pub struct Sandbox {
    id_map: IdMap,
}

impl Sandbox {
    /// How uids and gids are mapped.
    pub fn id_map(&self) -> IdMap {
        self.id_map
    }
}

/// `true` in the program once [`enter_sandbox`] has returned `Ok` (and in processes it
/// forks without exec).
pub fn in_sandbox() -> bool {
    IN_SANDBOX.load(Ordering::Relaxed)
}

/// Move the program into new user + PID + mount + network namespaces. Call it first thing
/// in `main()`, before any thread exists (the user namespace can only be entered by a
/// single-threaded process).
///
/// Only the sandboxed copy of the program (PID 2 of the new PID namespace, below a minimal
/// init as PID 1 — see the module docs) returns `Ok`; the original process never returns:
/// it waits, forwards SIGINT/SIGTERM/SIGHUP/SIGQUIT/SIGUSR1/SIGUSR2, and exits with the
/// sandbox's exit status. Everything created inside — host namespaces, TUN devices, child
/// processes, mounts — disappears when the program exits, panics, is interrupted or is
/// SIGKILLed (init and the program have `PR_SET_PDEATHSIG(SIGKILL)`; PID 1's death kills
/// the namespace).
///
/// Inside: uid/gid 0 is the invoking user. As root the whole 0..4294967295 range (or every
/// id of the surrounding container) maps to itself ([`IdMap::Full`]); as a normal user `newuidmap`/`newgidmap` map the ranges of
/// `/etc/subuid`/`/etc/subgid` when installed and configured ([`IdMap::Subordinate`]),
/// else only root ([`IdMap::Single`]). Mounts are private, `/proc` is fresh for the new PID
/// namespace (kept as it was where the kernel forbids a new one, e.g. in containers with
/// masked `/proc` paths), and `lo` is up.
///
/// Calling it again inside the sandbox returns `Ok` at once.
///
/// # Errors
///
/// [`SysError::Threaded`] when threads already exist; [`SysError::Unsupported`] (exit
/// code 3) when the kernel or user cannot create the namespaces — its message says why and
/// that `--fabric virtual` needs no privileges; [`SysError::Os`] for other failures. Errors
/// after the outer process has started waiting are returned in the sandboxed copy, so that
/// `main()` handles them the same way and the outer process exits with the same code.
pub fn enter_sandbox() -> Result<Sandbox, SysError> {
    if in_sandbox() {
        return Ok(Sandbox {
            id_map: IdMap::from_code(ID_MAP.load(Ordering::Relaxed)),
        });
    }
    let threads = thread_count()?;
    if threads > 1 {
        return Err(SysError::Threaded { threads });
    }
    preflight()?;

    // SAFETY: these never fail.
    let (pid, uid, gid) = unsafe { (libc::getpid(), libc::getuid(), libc::getgid()) };
    let (to_helper_rd, to_helper_wr) = pipe()?;
    let (from_helper_rd, from_helper_wr) = pipe()?;
    // SAFETY: the process is single-threaded (checked above), so the child may run any code.
    let helper = unsafe { libc::fork() };
    if helper == -1 {
        return Err(SysError::last_os("fork (id-map helper)"));
    }
    if helper == 0 {
        drop(to_helper_wr);
        drop(from_helper_rd);
        helper_main(pid, uid, gid, to_helper_rd, from_helper_wr);
        // SAFETY: leaving the helper without running the parent's exit handlers.
        unsafe { libc::_exit(0) };
    }
    drop(to_helper_rd);
    drop(from_helper_wr);

    let flags = libc::CLONE_NEWUSER | libc::CLONE_NEWNS | libc::CLONE_NEWNET | libc::CLONE_NEWPID;
    // SAFETY: unshare(2) with namespace flags only; single-threaded as required.
    if unsafe { libc::unshare(flags) } == -1 {
        let e = io::Error::last_os_error();
        drop(to_helper_wr); // the helper sees EOF and exits
        wait_for(helper);
        return Err(SysError::Unsupported {
            reason: explain_unshare(&e),
        });
    }
    let mut go = File::from(to_helper_wr);
    let wrote = go.write_all(&[1]);
    drop(go);
    let mut reply = String::new();
    let read = File::from(from_helper_rd).read_to_string(&mut reply);
    wait_for(helper);
    wrote
        .and(read)
        .map_err(|e| SysError::os("talking to the id-map helper", e))?;
    let id_map = match reply.as_str() {
        "full" => IdMap::Full,
        "subordinate" => IdMap::Subordinate,
        "single" => IdMap::Single,
        other => {
            return Err(SysError::Unsupported {
                reason: format!(
                    "the user namespace was created but its uid/gid map could not be written: {}",
                    other.strip_prefix("error: ").unwrap_or(other)
                ),
            });
        }
    };
    ID_MAP.store(id_map.code(), Ordering::Relaxed);

    // Init learns from this pipe whether the outer process died before PDEATHSIG was set.
    let (alive_rd, alive_wr) = pipe()?;
    // SAFETY: still single-threaded. The child is PID 1 of the new PID namespace.
    let init = unsafe { libc::fork() };
    match init {
        -1 => Err(SysError::last_os("fork (sandbox init)")),
        0 => {
            drop(alive_wr);
            init_main(alive_rd, id_map)
        }
        _ => {
            drop(alive_rd);
            outer_main(init, alive_wr)
        }
    }
}

/// PID 1: set up the sandbox, fork the program (which returns), then reap forever.
fn init_main(alive_rd: OwnedFd, id_map: IdMap) -> Result<Sandbox, SysError> {
    die_with_parent();
    let mut pfd = libc::pollfd {
        fd: alive_rd.as_raw_fd(),
        events: libc::POLLIN,
        revents: 0,
    };
    // SAFETY: one valid pollfd.
    let r = unsafe { libc::poll(&raw mut pfd, 1, 0) };
    if r != 0 {
        // The outer process is gone (its end closed): nobody waits for us.
        // SAFETY: plain exit.
        unsafe { libc::_exit(1) };
    }
    drop(alive_rd);

    // SAFETY: mount(2) with NULL source/type only changes propagation.
    let r = unsafe {
        libc::mount(
            std::ptr::null(),
            c"/".as_ptr(),
            std::ptr::null(),
            libc::MS_REC | libc::MS_PRIVATE,
            std::ptr::null(),
        )
    };
    cvt(r, || {
        "making mounts private (mount / MS_REC|MS_PRIVATE)".into()
    })?;
    // A fresh /proc shows the new PID namespace. Where the kernel refuses (a container
    // with masked /proc paths), the inherited one still works for /proc/thread-self.
    // SAFETY: mounting procfs on an existing directory.
    let _ = unsafe {
        libc::mount(
            c"proc".as_ptr(),
            c"/proc".as_ptr(),
            c"proc".as_ptr(),
            libc::MS_NOSUID | libc::MS_NODEV | libc::MS_NOEXEC,
            std::ptr::null(),
        )
    };
    Netlink::open("the sandbox")?.set_link(1, "lo", None)?;

    // SAFETY: init is single-threaded.
    let program = unsafe { libc::fork() };
    match program {
        -1 => Err(SysError::last_os("fork (sandboxed program)")),
        0 => {
            die_with_parent();
            IN_SANDBOX.store(true, Ordering::Relaxed);
            Ok(Sandbox { id_map })
        }
        _ => {
            FORWARD_TO.store(program, Ordering::Relaxed);
            install_forwarders();
            loop {
                let mut status = 0;
                // SAFETY: waitpid with a valid status pointer.
                let r = unsafe { libc::waitpid(-1, &raw mut status, 0) };
                if r == program {
                    std::process::exit(exit_code(status));
                }
                if r == -1 && io::Error::last_os_error().kind() != io::ErrorKind::Interrupted {
                    std::process::exit(1);
                }
            }
        }
    }
}

/// The original process: wait for init, forward signals, exit with its status.
fn outer_main(init: libc::pid_t, alive_wr: OwnedFd) -> ! {
    FORWARD_TO.store(init, Ordering::Relaxed);
    install_forwarders();
    loop {
        let mut status = 0;
        // SAFETY: waitpid with a valid status pointer.
        let r = unsafe { libc::waitpid(init, &raw mut status, 0) };
        if r == init {
            drop(alive_wr);
            std::process::exit(exit_code(status));
        }
        if r == -1 && io::Error::last_os_error().kind() != io::ErrorKind::Interrupted {
            std::process::exit(1);
        }
    }
}

/// The helper, still in the parent user namespace: wait until the outer process has
/// unshared, write its id maps, report "full" / "subordinate" / "single" / "error: …".
fn helper_main(pid: libc::pid_t, uid: libc::uid_t, gid: libc::gid_t, go: OwnedFd, reply: OwnedFd) {
    let mut byte = [0u8; 1];
    if !matches!(File::from(go).read(&mut byte), Ok(1)) {
        return; // unshare failed; the outer process reports it
    }
    let msg = match write_id_maps(pid, uid, gid) {
        Ok(IdMap::Full) => "full".to_string(),
        Ok(IdMap::Subordinate) => "subordinate".to_string(),
        Ok(IdMap::Single) => "single".to_string(),
        Err(e) => format!("error: {e}"),
    };
    let _ = File::from(reply).write_all(msg.as_bytes());
}

fn write_id_maps(pid: libc::pid_t, uid: libc::uid_t, gid: libc::gid_t) -> Result<IdMap, String> {
    let proc = format!("/proc/{pid}");
    // SAFETY: never fails.
    let euid = unsafe { libc::geteuid() };
    // As root: every id our own user namespace has (0..4294967295 on the machine itself,
    // fewer inside a container), mapped to itself.
    if euid == 0
        && let (Some(uids), Some(gids)) = (identity_map("uid_map"), identity_map("gid_map"))
        && fs::write(format!("{proc}/uid_map"), uids).is_ok()
    {
        fs::write(format!("{proc}/gid_map"), gids)
            .map_err(|e| format!("writing the gid map as root failed: {e}"))?;
        return Ok(IdMap::Full);
    }
    if euid != 0
        && let Some(map) = subordinate_maps(pid, uid, gid)
    {
        return Ok(map);
    }
    // Unprivileged rules: only our own ids, and setgroups must be denied first.
    match fs::write(format!("{proc}/setgroups"), "deny") {
        Ok(()) => {}
        Err(e) if e.kind() == io::ErrorKind::NotFound => {}
        Err(e) => return Err(format!("writing {proc}/setgroups failed: {e}")),
    }
    fs::write(format!("{proc}/uid_map"), format!("0 {uid} 1\n"))
        .map_err(|e| format!("writing {proc}/uid_map (\"0 {uid} 1\") failed: {e}"))?;
    fs::write(format!("{proc}/gid_map"), format!("0 {gid} 1\n"))
        .map_err(|e| format!("writing {proc}/gid_map (\"0 {gid} 1\") failed: {e}"))?;
    Ok(IdMap::Single)
}

/// `/proc/self/<file>` turned into an identity map of the same ids ("first first count"
/// per extent), so the child namespace gets every id this one has.
fn identity_map(file: &str) -> Option<String> {
    let text = fs::read_to_string(format!("/proc/self/{file}")).ok()?;
    let mut map = String::new();
    for line in text.lines() {
        let mut f = line.split_whitespace();
        let first: u64 = f.next()?.parse().ok()?;
        let _outside = f.next()?;
        let count: u64 = f.next()?.parse().ok()?;
        map.push_str(&format!("{first} {first} {count}\n"));
    }
    (!map.is_empty()).then_some(map)
}

/// `newuidmap`/`newgidmap` with the user's first `/etc/subuid`, `/etc/subgid` ranges.
/// `None` when they are missing or fail before anything was written.
fn subordinate_maps(pid: libc::pid_t, uid: libc::uid_t, gid: libc::gid_t) -> Option<IdMap> {
    let newuidmap = find_program("newuidmap")?;
    let newgidmap = find_program("newgidmap")?;
    let user = user_name(uid);
    let (us, uc) = subid_range("/etc/subuid", user.as_deref(), uid)?;
    let (gs, gc) = subid_range("/etc/subgid", None, gid).or_else(|| {
        // /etc/subgid is keyed by user name too.
        subid_range("/etc/subgid", user.as_deref(), uid)
    })?;
    let run = |prog: &Path, id: u32, start: u64, count: u64| {
        Command::new(prog)
            .args([
                pid.to_string(),
                "0".into(),
                id.to_string(),
                "1".into(),
                "1".into(),
                start.to_string(),
                count.to_string(),
            ])
            .status()
            .map(|s| s.success())
            .unwrap_or(false)
    };
    if !run(&newuidmap, uid, us, uc) {
        return None;
    }
    if !run(&newgidmap, gid, gs, gc) {
        // Uids are mapped; fall back to our own gid only.
        let proc = format!("/proc/{pid}");
        let _ = fs::write(format!("{proc}/setgroups"), "deny");
        fs::write(format!("{proc}/gid_map"), format!("0 {gid} 1\n")).ok()?;
    }
    Some(IdMap::Subordinate)
}

fn find_program(name: &str) -> Option<std::path::PathBuf> {
    let path = std::env::var_os("PATH").unwrap_or_default();
    std::env::split_paths(&path)
        .chain(["/usr/bin".into(), "/bin".into(), "/usr/sbin".into()])
        .map(|d| d.join(name))
        .find(|p| p.is_file())
}

fn user_name(uid: libc::uid_t) -> Option<String> {
    let passwd = fs::read_to_string("/etc/passwd").ok()?;
    passwd.lines().find_map(|l| {
        let mut f = l.split(':');
        let name = f.next()?;
        let _pw = f.next()?;
        (f.next()?.parse::<u32>().ok()? == uid).then(|| name.to_string())
    })
}

/// The first `name:start:count` or `id:start:count` line for this user.
fn subid_range(file: &str, name: Option<&str>, id: u32) -> Option<(u64, u64)> {
    let text = fs::read_to_string(file).ok()?;
    let id = id.to_string();
    text.lines().find_map(|l| {
        let mut f = l.trim().split(':');
        let who = f.next()?;
        if who != id && Some(who) != name {
            return None;
        }
        let start = f.next()?.parse().ok()?;
        let count = f.next()?.parse().ok()?;
        Some((start, count))
    })
}

fn preflight() -> Result<(), SysError> {
    if !Path::new("/proc/self/ns/user").exists() {
        return Err(SysError::Unsupported {
            reason: "this kernel has no user namespaces (/proc/self/ns/user is missing)".into(),
        });
    }
    if !Path::new("/dev/net/tun").exists() {
        return Err(SysError::Unsupported {
            reason: "there is no /dev/net/tun (load the `tun` module with `modprobe tun`, or \
                     pass --device /dev/net/tun to the container)"
                .into(),
        });
    }
    // SAFETY: access(2) on a NUL-terminated literal.
    if unsafe { libc::access(c"/dev/net/tun".as_ptr(), libc::R_OK | libc::W_OK) } == -1 {
        return Err(SysError::Unsupported {
            reason: format!(
                "/dev/net/tun is not readable and writable by this user ({}); its usual mode \
                 is 0666 (`chmod 0666 /dev/net/tun`), or run pinhole as root",
                io::Error::last_os_error()
            ),
        });
    }
    if read_sysctl("/proc/sys/user/max_user_namespaces") == Some(0) {
        return Err(SysError::Unsupported {
            reason: "user namespaces are disabled (sysctl user.max_user_namespaces = 0)".into(),
        });
    }
    Ok(())
}

fn explain_unshare(e: &io::Error) -> String {
    let mut why = format!("creating user, PID, mount and network namespaces failed ({e})");
    // SAFETY: never fails.
    let root = unsafe { libc::geteuid() } == 0;
    match e.raw_os_error() {
        Some(libc::EPERM | libc::EACCES) => {
            if !root && read_sysctl("/proc/sys/kernel/unprivileged_userns_clone") == Some(0) {
                why.push_str(
                    ": unprivileged user namespaces are disabled (sysctl \
                     kernel.unprivileged_userns_clone = 0); run as root or set it to 1",
                );
            } else if !root
                && read_sysctl("/proc/sys/kernel/apparmor_restrict_unprivileged_userns") == Some(1)
            {
                why.push_str(
                    ": AppArmor restricts unprivileged user namespaces (sysctl \
                     kernel.apparmor_restrict_unprivileged_userns = 1); run as root or give \
                     pinhole an AppArmor profile with `userns,`",
                );
            } else {
                why.push_str(
                    ": probably blocked by a container's seccomp profile or a security \
                     module; run pinhole as root on the host or in a privileged container",
                );
            }
        }
        Some(libc::ENOSPC | libc::EUSERS) => {
            let max = read_sysctl("/proc/sys/user/max_user_namespaces")
                .map_or_else(|| "?".to_string(), |m| m.to_string());
            why.push_str(&format!(
                ": the limit on user namespaces is reached (sysctl user.max_user_namespaces = {max})"
            ));
        }
        Some(libc::EINVAL) => why.push_str(
            ": the kernel lacks user, PID, mount or network namespace support, or the \
             process is chrooted",
        ),
        _ => {}
    }
    why
}

fn read_sysctl(path: &str) -> Option<i64> {
    fs::read_to_string(path).ok()?.trim().parse().ok()
}

fn thread_count() -> Result<usize, SysError> {
    let status = fs::read_to_string("/proc/self/status")
        .map_err(|e| SysError::os("read /proc/self/status", e))?;
    Ok(status
        .lines()
        .find_map(|l| l.strip_prefix("Threads:"))
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or(1))
}

fn pipe() -> Result<(OwnedFd, OwnedFd), SysError> {
    let mut fds = [0; 2];
    // SAFETY: `fds` has room for the two fds.
    let r = unsafe { libc::pipe2(fds.as_mut_ptr(), libc::O_CLOEXEC) };
    cvt(r, || "pipe2".into())?;
    // SAFETY: two fresh fds owned by nobody else.
    Ok(unsafe { (OwnedFd::from_raw_fd(fds[0]), OwnedFd::from_raw_fd(fds[1])) })
}

fn wait_for(pid: libc::pid_t) {
    let mut status = 0;
    // SAFETY: waitpid with a valid status pointer.
    while unsafe { libc::waitpid(pid, &raw mut status, 0) } == -1
        && io::Error::last_os_error().kind() == io::ErrorKind::Interrupted
    {}
}

fn die_with_parent() {
    // SAFETY: prctl with integer arguments.
    unsafe {
        libc::prctl(
            libc::PR_SET_PDEATHSIG,
            libc::SIGKILL as libc::c_ulong,
            0,
            0,
            0,
        )
    };
}

fn exit_code(status: libc::c_int) -> i32 {
    if libc::WIFEXITED(status) {
        libc::WEXITSTATUS(status)
    } else if libc::WIFSIGNALED(status) {
        128 + libc::WTERMSIG(status)
    } else {
        1
    }
}

extern "C" fn forward_signal(sig: libc::c_int) {
    let pid = FORWARD_TO.load(Ordering::Relaxed);
    if pid > 0 {
        // SAFETY: kill(2) is async-signal-safe.
        unsafe { libc::kill(pid, sig) };
    }
}

fn install_forwarders() {
    for sig in FORWARDED {
        // SAFETY: a zeroed sigaction is valid; the handler only calls kill(2).
        unsafe {
            let mut sa: libc::sigaction = std::mem::zeroed();
            sa.sa_sigaction = forward_signal as extern "C" fn(libc::c_int) as libc::sighandler_t;
            sa.sa_flags = libc::SA_RESTART;
            libc::sigemptyset(&raw mut sa.sa_mask);
            libc::sigaction(sig, &raw const sa, std::ptr::null_mut());
        }
    }
}
