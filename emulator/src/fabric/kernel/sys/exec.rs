//! `pinhole exec HOST -- CMD`: run a program in a host of a sandbox that another pinhole
//! process (`pinhole up`) keeps running.
//!
//! Nothing outside the sandbox may hold its namespaces (that is what makes teardown on
//! SIGKILL complete), so the client cannot `setns` into a host itself. The sandboxed
//! process listens on a unix stream socket ([`ExecServer`]); the client ([`exec_remote`])
//! connects and sends, in one message, the host name, argv and environment, with its
//! stdin, stdout and stderr attached as `SCM_RIGHTS`. The server checks that the peer is
//! the sandbox's own user (`SO_PEERCRED`; the socket is also mode 0600), spawns the
//! program with [`HostNs::spawn`] on those fds, and answers with lines:
//! `started`, then `exit <code>` (128 + signal number when killed), or `error <why>`.
//! While the program runs, each byte the client sends is a signal number to deliver to it;
//! when the client disconnects, the program gets SIGHUP.
//!
//! Socket location (the CLI's choice): `$XDG_RUNTIME_DIR/pinhole/<id>.sock`, or
//! `/run/pinhole/<id>.sock` as root. Compute it before [`enter_sandbox`](super::enter_sandbox)
//! (inside, every user is uid 0). The sandbox's mount namespace is a private copy of the
//! machine's, so a socket bound there on a real filesystem is reachable from outside.

use std::fs;
use std::io::{self, BufRead, BufReader, Read, Write};
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, FromRawFd, OwnedFd, RawFd};
use std::os::unix::fs::{DirBuilderExt, PermissionsExt};
use std::os::unix::net::{UnixListener, UnixStream};
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::atomic::{AtomicI32, Ordering};

use super::{HostNs, SysError};

const MAGIC: &str = "PINHOLE-EXEC-1";
const MAX_REQUEST: usize = 1 << 20;

/// Serves exec requests; bind it inside the sandbox. Removes its socket file on drop.
#[derive(Debug)]
pub struct ExecServer {
    listener: UnixListener,
    path: PathBuf,
}

/// One accepted request: where and what to run, and the client's stdio.
#[derive(Debug)]
pub struct ExecRequest {
    conn: UnixStream,
    host: String,
    argv: Vec<String>,
    env: Vec<(String, String)>,
    stdio: [OwnedFd; 3],
}

impl ExecServer {
    /// Listen on `path` (parent directories are created with mode 0700, the socket gets
    /// mode 0600). A leftover socket file that nobody answers on is replaced; one that
    /// answers means another sandbox uses the path.
    ///
    /// # Errors
    ///
    /// [`SysError::Invalid`] when another server answers on `path`; [`SysError::Os`] when
    /// the directory or socket cannot be made.
    pub fn bind(path: &Path) -> Result<ExecServer, SysError> {
        let at = |what: &str| format!("{what} {}", path.display());
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            fs::DirBuilder::new()
                .recursive(true)
                .mode(0o700)
                .create(dir)
                .map_err(|e| SysError::os(at("create the directory of"), e))?;
        }
        if path.exists() {
            if UnixStream::connect(path).is_ok() {
                return Err(SysError::Invalid(format!(
                    "{} is in use by another running pinhole sandbox",
                    path.display()
                )));
            }
            fs::remove_file(path).map_err(|e| SysError::os(at("remove stale socket"), e))?;
        }
        let listener = UnixListener::bind(path).map_err(|e| SysError::os(at("bind"), e))?;
        fs::set_permissions(path, fs::Permissions::from_mode(0o600))
            .map_err(|e| SysError::os(at("chmod 0600"), e))?;
        Ok(ExecServer {
            listener,
            path: path.to_path_buf(),
        })
    }

    /// The socket's path.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Wait for the next well-formed request from the sandbox's own user. Connections from
    /// other users and malformed requests are answered with an error and skipped.
    ///
    /// # Errors
    ///
    /// [`SysError::Os`] when `accept` itself fails.
    pub fn accept(&self) -> Result<ExecRequest, SysError> {
        loop {
            let (conn, _) = self
                .listener
                .accept()
                .map_err(|e| SysError::os(format!("accept on {}", self.path.display()), e))?;
            match read_request(conn) {
                Ok(request) => return Ok(request),
                Err((mut conn, why)) => {
                    let _ = writeln!(conn, "error {why}");
                }
            }
        }
    }
}

impl AsFd for ExecServer {
    /// The listening socket, to wait for requests with poll/epoll.
    fn as_fd(&self) -> BorrowedFd<'_> {
        self.listener.as_fd()
    }
}

impl Drop for ExecServer {
    fn drop(&mut self) {
        let _ = fs::remove_file(&self.path);
    }
}

impl ExecRequest {
    /// The host the client asked for.
    pub fn host(&self) -> &str {
        &self.host
    }

    /// The program and its arguments.
    pub fn argv(&self) -> &[String] {
        &self.argv
    }

    /// Extra environment variables.
    pub fn env(&self) -> &[(String, String)] {
        &self.env
    }

    /// Tell the client the request cannot be served (e.g. no such host).
    pub fn reject(mut self, why: &str) {
        let _ = writeln!(self.conn, "error {}", why.replace('\n', " "));
    }

    /// Run the program in `host` on the client's stdio and block until it exits (run this
    /// on a thread of its own), delivering the signals the client forwards; SIGHUP when
    /// the client goes away. Reports the exit code to the client and returns it.
    ///
    /// # Errors
    ///
    /// When the program cannot be started (the client is told why) or waiting fails.
    pub fn run(self, host: &HostNs) -> Result<i32, SysError> {
        let ExecRequest {
            mut conn,
            argv,
            env,
            stdio: [stdin, stdout, stderr],
            ..
        } = self;
        let mut child = match host.spawn(
            &argv,
            &env,
            Stdio::from(stdin),
            Stdio::from(stdout),
            Stdio::from(stderr),
        ) {
            Ok(child) => child,
            Err(e) => {
                let _ = writeln!(conn, "error {}", e.to_string().replace('\n', " "));
                return Err(e);
            }
        };
        let _ = writeln!(conn, "started");
        let pid = child.id() as libc::pid_t;
        // SAFETY: pidfd_open(2) on our own unreaped child.
        let raw = unsafe { libc::syscall(libc::SYS_pidfd_open, pid, 0) } as RawFd;
        let pidfd = if raw >= 0 {
            // SAFETY: fresh fd owned by nobody else.
            Some(unsafe { OwnedFd::from_raw_fd(raw) })
        } else {
            None
        };
        let mut client_open = true;
        loop {
            let mut fds = [
                libc::pollfd {
                    fd: if client_open { conn.as_raw_fd() } else { -1 },
                    events: libc::POLLIN,
                    revents: 0,
                },
                libc::pollfd {
                    fd: pidfd.as_ref().map_or(-1, AsRawFd::as_raw_fd),
                    events: libc::POLLIN,
                    revents: 0,
                },
            ];
            // Without a pidfd, look at the child every 100 ms.
            let timeout = if pidfd.is_some() { -1 } else { 100 };
            // SAFETY: a valid array of two pollfds.
            unsafe { libc::poll(fds.as_mut_ptr(), 2, timeout) };
            if fds[0].revents != 0 {
                let mut sigs = [0u8; 16];
                match conn.read(&mut sigs) {
                    Ok(0) | Err(_) => {
                        client_open = false;
                        // SAFETY: the child is not reaped yet, so `pid` is still it.
                        unsafe { libc::kill(pid, libc::SIGHUP) };
                    }
                    Ok(n) => {
                        for &sig in &sigs[..n] {
                            if (1..64).contains(&sig) {
                                // SAFETY: as above.
                                unsafe { libc::kill(pid, libc::c_int::from(sig)) };
                            }
                        }
                    }
                }
            }
            if fds[1].revents != 0 || (pidfd.is_none() && child.try_wait().ok().flatten().is_some())
            {
                break;
            }
        }
        let status = child
            .wait()
            .map_err(|e| SysError::os(format!("wait for {:?}", argv[0]), e))?;
        let code = match (
            status.code(),
            std::os::unix::process::ExitStatusExt::signal(&status),
        ) {
            (Some(code), _) => code,
            (None, Some(sig)) => 128 + sig,
            (None, None) => 1,
        };
        let _ = writeln!(conn, "exit {code}");
        Ok(code)
    }
}

static CLIENT_FD: AtomicI32 = AtomicI32::new(-1);

extern "C" fn send_signal(sig: libc::c_int) {
    let fd = CLIENT_FD.load(Ordering::Relaxed);
    if fd >= 0 {
        let byte = sig as u8;
        // SAFETY: send(2) is async-signal-safe; MSG_NOSIGNAL avoids SIGPIPE.
        unsafe { libc::send(fd, (&raw const byte).cast(), 1, libc::MSG_NOSIGNAL) };
    }
}

/// The client side of `pinhole exec`: run `argv` in `host` of the sandbox serving
/// `socket`, with `stdio` (usually this process's fds 0, 1 and 2) as the program's stdin,
/// stdout and stderr, and wait for it. With `forward_signals`, SIGINT, SIGTERM, SIGHUP and
/// SIGQUIT received meanwhile are passed on to the program instead of acting here (their
/// previous handlers are restored on return; one forwarding call at a time per process). Returns the program's exit code (128 + signal number when
/// killed).
///
/// # Errors
///
/// [`SysError::Os`] when the socket cannot be reached (is `pinhole up` running?) or the
/// connection breaks; [`SysError::Invalid`] when the server refuses (e.g. unknown host).
pub fn exec_remote(
    socket: &Path,
    host: &str,
    argv: &[String],
    env: &[(String, String)],
    stdio: [BorrowedFd<'_>; 3],
    forward_signals: bool,
) -> Result<i32, SysError> {
    if argv.is_empty() {
        return Err(SysError::Invalid("empty argv".into()));
    }
    let strings = [host, MAGIC].iter().any(|s| s.contains('\0'))
        || argv.iter().any(|s| s.contains('\0'))
        || env
            .iter()
            .any(|(k, v)| k.contains(['\0', '=']) || v.contains('\0'));
    if strings {
        return Err(SysError::Invalid(
            "NUL in host, argv or env, or '=' in a variable name".into(),
        ));
    }
    let conn = UnixStream::connect(socket).map_err(|e| {
        SysError::os(
            format!("connect to {} (is `pinhole up` running?)", socket.display()),
            e,
        )
    })?;
    let mut body = Vec::new();
    let mut push = |s: &str| {
        body.extend_from_slice(s.as_bytes());
        body.push(0);
    };
    push(MAGIC);
    push(host);
    push(&argv.len().to_string());
    argv.iter().for_each(|a| push(a));
    push(&env.len().to_string());
    for (k, v) in env {
        push(k);
        push(v);
    }
    let mut message = (body.len() as u32).to_le_bytes().to_vec();
    message.extend_from_slice(&body);
    let fds = stdio.map(|fd| fd.as_raw_fd());
    send_with_fds(&conn, &message, &fds).map_err(|e| SysError::os("send the exec request", e))?;

    const FORWARD: [libc::c_int; 4] = [libc::SIGINT, libc::SIGTERM, libc::SIGHUP, libc::SIGQUIT];
    // SAFETY: sigaction is plain data; zeroed is a valid placeholder until overwritten.
    let mut previous: [libc::sigaction; 4] = unsafe { std::mem::zeroed() };
    if forward_signals {
        CLIENT_FD.store(conn.as_raw_fd(), Ordering::Relaxed);
        for (sig, old) in FORWARD.iter().zip(previous.iter_mut()) {
            // SAFETY: a zeroed sigaction is valid; the handler only calls send(2); the
            // previous action is saved to be restored below.
            unsafe {
                let mut sa: libc::sigaction = std::mem::zeroed();
                sa.sa_sigaction = send_signal as extern "C" fn(libc::c_int) as libc::sighandler_t;
                sa.sa_flags = libc::SA_RESTART;
                libc::sigemptyset(&raw mut sa.sa_mask);
                libc::sigaction(*sig, &raw const sa, old);
            }
        }
    }
    let result = read_replies(&conn);
    if forward_signals {
        for (sig, old) in FORWARD.iter().zip(previous.iter()) {
            // SAFETY: restoring the action saved above.
            unsafe { libc::sigaction(*sig, old, std::ptr::null_mut()) };
        }
        CLIENT_FD.store(-1, Ordering::Relaxed);
    }
    result
}

fn read_replies(conn: &UnixStream) -> Result<i32, SysError> {
    let mut lines = BufReader::new(conn);
    let mut line = String::new();
    loop {
        line.clear();
        let n = lines
            .read_line(&mut line)
            .map_err(|e| SysError::os("read the exec reply", e))?;
        if n == 0 {
            return Err(SysError::os(
                "read the exec reply",
                io::Error::new(
                    io::ErrorKind::UnexpectedEof,
                    "the sandbox closed the connection",
                ),
            ));
        }
        let line = line.trim_end();
        if let Some(why) = line.strip_prefix("error ") {
            return Err(SysError::Invalid(format!("pinhole exec: {why}")));
        }
        if let Some(code) = line.strip_prefix("exit ") {
            return code
                .parse()
                .map_err(|_| SysError::Invalid(format!("bad exec reply {line:?}")));
        }
        // "started" and anything unknown: keep waiting.
    }
}

fn read_request(mut conn: UnixStream) -> Result<ExecRequest, (UnixStream, String)> {
    match peer_uid(&conn) {
        // SAFETY: never fails.
        Some(uid) if uid == unsafe { libc::geteuid() } => {}
        Some(uid) => return Err((conn, format!("uid {uid} may not use this sandbox"))),
        None => return Err((conn, "cannot check the peer's credentials".into())),
    }
    let mut head = [0u8; 4];
    let (n, fds) = match recv_with_fds(&conn, &mut head) {
        Ok(r) => r,
        Err(e) => return Err((conn, format!("receiving the request failed: {e}"))),
    };
    if let Err(e) = conn.read_exact(&mut head[n..]) {
        return Err((conn, format!("short request: {e}")));
    }
    let Ok(stdio) = <[OwnedFd; 3]>::try_from(fds) else {
        return Err((
            conn,
            "the request must carry exactly 3 fds (stdin, stdout, stderr)".into(),
        ));
    };
    let len = u32::from_le_bytes(head) as usize;
    if len > MAX_REQUEST {
        return Err((conn, format!("request of {len} bytes is too large")));
    }
    let mut body = vec![0u8; len];
    if let Err(e) = conn.read_exact(&mut body) {
        return Err((conn, format!("short request: {e}")));
    }
    match parse_request(&body) {
        Ok((host, argv, env)) => Ok(ExecRequest {
            conn,
            host,
            argv,
            env,
            stdio,
        }),
        Err(why) => Err((conn, why)),
    }
}

type Parsed = (String, Vec<String>, Vec<(String, String)>);

fn parse_request(body: &[u8]) -> Result<Parsed, String> {
    let text = std::str::from_utf8(body).map_err(|_| "request is not UTF-8".to_string())?;
    let mut parts = text
        .strip_suffix('\0')
        .ok_or("request does not end with NUL")?
        .split('\0');
    let mut next = || parts.next().ok_or_else(|| "request ends early".to_string());
    if next()? != MAGIC {
        return Err(format!("not a {MAGIC} request"));
    }
    let host = next()?.to_string();
    let argc: usize = next()?.parse().map_err(|_| "bad argv count".to_string())?;
    let argv = (0..argc)
        .map(|_| next().map(str::to_string))
        .collect::<Result<Vec<_>, _>>()?;
    if argv.is_empty() {
        return Err("empty argv".into());
    }
    let envc: usize = next()?.parse().map_err(|_| "bad env count".to_string())?;
    let env = (0..envc)
        .map(|_| Ok((next()?.to_string(), next()?.to_string())))
        .collect::<Result<Vec<_>, String>>()?;
    if next().is_ok() {
        return Err("trailing data in request".into());
    }
    Ok((host, argv, env))
}

fn peer_uid(conn: &UnixStream) -> Option<libc::uid_t> {
    // SAFETY: ucred is plain data.
    let mut cred: libc::ucred = unsafe { std::mem::zeroed() };
    let mut len = std::mem::size_of::<libc::ucred>() as libc::socklen_t;
    // SAFETY: getsockopt(SO_PEERCRED) into a ucred of the size passed.
    let r = unsafe {
        libc::getsockopt(
            conn.as_raw_fd(),
            libc::SOL_SOCKET,
            libc::SO_PEERCRED,
            (&raw mut cred).cast(),
            &raw mut len,
        )
    };
    (r == 0).then_some(cred.uid)
}

/// Room for the control message carrying 3 fds, 8-byte aligned.
type CmsgBuf = [u64; 8];

fn send_with_fds(conn: &UnixStream, data: &[u8], fds: &[RawFd; 3]) -> io::Result<()> {
    let mut cbuf: CmsgBuf = [0; 8];
    let fd_bytes = std::mem::size_of_val(fds) as u32;
    let mut iov = libc::iovec {
        iov_base: data.as_ptr() as *mut libc::c_void,
        iov_len: data.len(),
    };
    // SAFETY: msghdr is plain data; the pointers set below stay valid during sendmsg, and
    // the control buffer is larger than CMSG_SPACE(12).
    let sent = unsafe {
        let mut msg: libc::msghdr = std::mem::zeroed();
        msg.msg_iov = &raw mut iov;
        msg.msg_iovlen = 1;
        msg.msg_control = cbuf.as_mut_ptr().cast();
        msg.msg_controllen = libc::CMSG_SPACE(fd_bytes) as _;
        let cmsg = libc::CMSG_FIRSTHDR(&raw const msg);
        (*cmsg).cmsg_level = libc::SOL_SOCKET;
        (*cmsg).cmsg_type = libc::SCM_RIGHTS;
        (*cmsg).cmsg_len = libc::CMSG_LEN(fd_bytes) as _;
        std::ptr::copy_nonoverlapping(fds.as_ptr(), libc::CMSG_DATA(cmsg).cast::<RawFd>(), 3);
        libc::sendmsg(conn.as_raw_fd(), &raw const msg, libc::MSG_NOSIGNAL)
    };
    if sent < 0 {
        return Err(io::Error::last_os_error());
    }
    // The fds went with the first byte; the rest, if any, is plain data.
    (&*conn).write_all(&data[sent as usize..])
}

fn recv_with_fds(conn: &UnixStream, buf: &mut [u8]) -> io::Result<(usize, Vec<OwnedFd>)> {
    let mut cbuf: CmsgBuf = [0; 8];
    let mut iov = libc::iovec {
        iov_base: buf.as_mut_ptr().cast(),
        iov_len: buf.len(),
    };
    // SAFETY: msghdr is plain data; the pointers stay valid during recvmsg.
    let mut msg: libc::msghdr = unsafe { std::mem::zeroed() };
    msg.msg_iov = &raw mut iov;
    msg.msg_iovlen = 1;
    msg.msg_control = cbuf.as_mut_ptr().cast();
    msg.msg_controllen = std::mem::size_of::<CmsgBuf>() as _;
    // SAFETY: as above; MSG_CMSG_CLOEXEC so received fds do not leak into programs.
    let n = unsafe { libc::recvmsg(conn.as_raw_fd(), &raw mut msg, libc::MSG_CMSG_CLOEXEC) };
    if n < 0 {
        return Err(io::Error::last_os_error());
    }
    let mut fds = Vec::new();
    // SAFETY: walking the control messages the kernel wrote into `cbuf`.
    unsafe {
        let mut cmsg = libc::CMSG_FIRSTHDR(&raw const msg);
        while !cmsg.is_null() {
            if (*cmsg).cmsg_level == libc::SOL_SOCKET && (*cmsg).cmsg_type == libc::SCM_RIGHTS {
                let bytes = (*cmsg).cmsg_len as usize - libc::CMSG_LEN(0) as usize;
                let data = libc::CMSG_DATA(cmsg).cast::<RawFd>();
                for i in 0..bytes / std::mem::size_of::<RawFd>() {
                    fds.push(OwnedFd::from_raw_fd(data.add(i).read_unaligned()));
                }
            }
            cmsg = libc::CMSG_NXTHDR(&raw const msg, cmsg);
        }
    }
    if msg.msg_flags & libc::MSG_CTRUNC != 0 {
        return Err(io::Error::other("control message truncated (too many fds)"));
    }
    Ok((n as usize, fds))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// NUL-terminated parts, as the client writes them.
    fn request(parts: &[&str]) -> Vec<u8> {
        parts.iter().flat_map(|p| p.bytes().chain([0])).collect()
    }

    #[test]
    fn requests_round_trip_through_the_wire_format() {
        let body = request(&[MAGIC, "alice", "2", "sh", "-c", "1", "A", "b c"]);
        let (host, argv, env) = parse_request(&body).expect("well-formed");
        assert_eq!(host, "alice");
        assert_eq!(argv, ["sh", "-c"]);
        assert_eq!(env, [("A".to_string(), "b c".to_string())]);
    }

    #[test]
    fn malformed_requests_are_refused() {
        assert!(parse_request(&request(&[MAGIC, "alice", "3", "sh"])).is_err());
        assert!(parse_request(&request(&[MAGIC, "alice", "0", "0"])).is_err());
        assert!(parse_request(&request(&["OTHER", "alice", "1", "sh", "0"])).is_err());
        assert!(parse_request(&request(&[MAGIC, "alice", "1", "sh", "0", "extra"])).is_err());
        let mut unterminated = request(&[MAGIC, "alice", "1", "sh", "0"]);
        unterminated.pop();
        assert!(parse_request(&unterminated).is_err());
    }
}
