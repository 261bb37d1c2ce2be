//! One emulated host: a network namespace and a mount namespace, held by fds.

use std::fs;
use std::io;
use std::marker::PhantomData;
use std::net::IpAddr;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::os::unix::process::CommandExt;
use std::process::{Child, Command, Stdio};

use super::netlink::Netlink;
use super::tun::TunOffloads;
use super::{SysError, cvt, in_sandbox, tun};

/// What `/etc/resolv.conf` says inside every host: a resolver on a loopback address where
/// nothing listens, so lookups of names missing from `/etc/hosts` fail at once (port
/// unreachable) instead of leaking to the machine's DNS or hanging.
pub const RESOLV_CONF: &str = "# pinhole: emulated hosts have no DNS; names come from /etc/hosts\n\
                               nameserver 127.0.0.53\n\
                               options timeout:1 attempts:1\n";

/// One emulated host: its own network namespace (with `lo` up) and mount namespace (own
/// `/etc/hosts`, `/etc/resolv.conf`, `/tmp`). The namespaces live as long as this value
/// or any process running in them.
#[derive(Debug)]
pub struct HostNs {
    name: String,
    net: OwnedFd,
    mnt: OwnedFd,
}

/// The calling thread is in a host's network namespace until this is dropped; then it is
/// back in the namespace it was in before. Not `Send`: the switch belongs to one thread.
#[derive(Debug)]
#[must_use = "the thread switches back when the guard is dropped"]
pub struct NetnsGuard {
    previous: OwnedFd,
    _not_send: PhantomData<*const ()>,
}

impl Drop for NetnsGuard {
    fn drop(&mut self) {
        // SAFETY: setns(2) on a namespace fd we own.
        if unsafe { libc::setns(self.previous.as_raw_fd(), libc::CLONE_NEWNET) } == -1 {
            // Carrying on would open later sockets in the wrong host.
            eprintln!(
                "pinhole: cannot switch the thread back to its network namespace: {}",
                io::Error::last_os_error()
            );
            std::process::abort();
        }
    }
}

impl HostNs {
    /// Create the host's namespaces (from any thread of the sandboxed program).
    ///
    /// The mount namespace gets `hosts_file` as `/etc/hosts`, [`RESOLV_CONF`] as
    /// `/etc/resolv.conf` and an empty tmpfs on `/tmp` (mode 1777), shared by every
    /// program spawned in this host and by no other host. The two files are written to a
    /// private tmpfs that is bind-mounted over the originals and then detached, so it is
    /// reachable only through those two paths. `/etc/hosts` must exist on the machine; a
    /// missing or dangling `/etc/resolv.conf` is left alone (glibc then tries 127.0.0.1,
    /// which also goes nowhere). The network namespace starts with only `lo`, up.
    ///
    /// # Errors
    ///
    /// [`SysError::NotInSandbox`] outside [`enter_sandbox`](super::enter_sandbox);
    /// [`SysError::Invalid`] for an empty name or one with NUL; [`SysError::Os`] when a
    /// namespace or mount cannot be made.
    pub fn create(name: &str, hosts_file: &str) -> Result<HostNs, SysError> {
        if !in_sandbox() {
            return Err(SysError::NotInSandbox);
        }
        if name.is_empty() || name.contains('\0') {
            return Err(SysError::Invalid(format!("host name {name:?}")));
        }
        let owned_name = name.to_string();
        let hosts = hosts_file.to_string();
        // unshare(CLONE_NEWNS) also unshares the thread's filesystem context, so do it on a
        // throw-away thread: the caller's thread and the rest of the process stay put.
        let (net, mnt) = std::thread::Builder::new()
            .name(format!("pinhole-ns-{name}"))
            .spawn(move || create_on_this_thread(&owned_name, &hosts))
            .map_err(|e| SysError::os(format!("spawn the namespace thread for host {name}"), e))?
            .join()
            .map_err(|_| SysError::Invalid(format!("creating host {name} panicked")))??;
        Ok(HostNs {
            name: name.to_string(),
            net,
            mnt,
        })
    }

    /// The host's name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// Create the TUN device `ifname` (IFF_TUN | IFF_NO_PI; fd non-blocking and
    /// close-on-exec) in this host, set its MTU, bring it and `lo` up, add `addrs` (IPv6
    /// without duplicate address detection, so usable at once) and, for each address
    /// family among `addrs`, a default route: via the first gateway of that family in
    /// `gateways`, or on-link through the TUN when there is none (a flat network: every
    /// destination is a neighbour). A host's second TUN keeps the first one's default
    /// routes. IPv6 needs an MTU of at least 1280.
    ///
    /// # Errors
    ///
    /// [`SysError::Invalid`] for a bad interface name (1..=15 bytes, no `/`, whitespace or
    /// NUL), prefix length, or a gateway of a family without an address;
    /// [`SysError::Unsupported`] when `/dev/net/tun` may not be opened; [`SysError::Os`]
    /// when the kernel refuses anything else (e.g. `EBUSY`: the name is taken).
    pub fn add_tun(
        &self,
        ifname: &str,
        mtu: u32,
        addrs: &[(IpAddr, u8)],
        gateways: &[IpAddr],
    ) -> Result<OwnedFd, SysError> {
        self.add_tun_offload(ifname, mtu, addrs, gateways, false)
            .map(|(fd, _)| fd)
    }

    /// [`HostNs::add_tun`], optionally with a virtio-net header on every packet and as
    /// many of the checksum and segmentation offloads as the kernel accepts (see
    /// [`TunOffloads`]): then every read and write on the fd must go through
    /// [`read_vnet`](super::read_vnet) and [`write_vnet`](super::write_vnet).
    pub fn add_tun_offload(
        &self,
        ifname: &str,
        mtu: u32,
        addrs: &[(IpAddr, u8)],
        gateways: &[IpAddr],
        offload: bool,
    ) -> Result<(OwnedFd, TunOffloads), SysError> {
        if ifname.is_empty()
            || ifname.len() >= libc::IFNAMSIZ
            || ifname
                .bytes()
                .any(|b| b == b'/' || b == b'\0' || b.is_ascii_whitespace())
            || ifname == "."
            || ifname == ".."
        {
            return Err(SysError::Invalid(format!(
                "interface name {ifname:?} (1 to 15 bytes, no '/', whitespace or NUL)"
            )));
        }
        for &(addr, prefix) in addrs {
            let max = if addr.is_ipv4() { 32 } else { 128 };
            if prefix > max {
                return Err(SysError::Invalid(format!("prefix length {addr}/{prefix}")));
            }
        }
        for gw in gateways {
            if !addrs.iter().any(|(a, _)| a.is_ipv4() == gw.is_ipv4()) {
                return Err(SysError::Invalid(format!(
                    "gateway {gw} on {ifname} of host {}: the interface has no address of its family",
                    self.name
                )));
            }
        }
        let ctx = |what: &str| format!("{what} for {ifname} in host {}", self.name);
        let _in_host = self.enter_net()?;
        let (fd, offloads) = tun::create(ifname, offload).map_err(|e| match e {
            SysError::Os { op, source }
                if matches!(source.raw_os_error(), Some(libc::EACCES | libc::EPERM)) =>
            {
                SysError::Unsupported {
                    reason: format!(
                        "{op} in host {}: {source}; /dev/net/tun must be readable and writable \
                         by the user running pinhole (usual mode 0666)",
                        self.name
                    ),
                }
            }
            SysError::Os { op, source } => {
                SysError::os(format!("{op} in host {}", self.name), source)
            }
            other => other,
        })?;
        let cname = std::ffi::CString::new(ifname).map_err(|_| SysError::Invalid(ifname.into()))?;
        // SAFETY: NUL-terminated name; the lookup runs in the host's namespace.
        let index = unsafe { libc::if_nametoindex(cname.as_ptr()) };
        if index == 0 {
            return Err(SysError::last_os(ctx("if_nametoindex")));
        }
        let mut nl = Netlink::open(&format!("host {}", self.name))?;
        nl.set_link(1, "lo", None)?;
        nl.set_link(index, ifname, Some(mtu))?;
        for &(addr, prefix) in addrs {
            nl.add_addr(index, ifname, addr, prefix)?;
        }
        for ipv6 in [false, true] {
            if !addrs.iter().any(|(a, _)| a.is_ipv6() == ipv6) {
                continue;
            }
            let gw = gateways.iter().copied().find(|g| g.is_ipv6() == ipv6);
            match nl.add_default_route(index, ifname, ipv6, gw) {
                Ok(()) => {}
                Err(SysError::Os { source, .. }) if source.raw_os_error() == Some(libc::EEXIST) => {
                }
                Err(e) => return Err(e),
            }
        }
        Ok((fd, offloads))
    }

    /// Run `argv` inside the host: fork; in the child enter the host's network and mount
    /// namespaces, `chdir("/")`, reset every signal disposition to its default and the
    /// signal mask to empty, then exec (`argv[0]` is looked up in `PATH` as seen from the
    /// host). The environment is the sandboxed program's plus `env` (which overrides).
    /// stdio follows [`Stdio`] as in [`Command`]: inherit, null, piped, or any fd
    /// converted into `Stdio`. The returned [`Child`]'s pid is the one in the sandbox's
    /// PID namespace; wait for it (or kill it) as usual. It dies with the sandbox.
    ///
    /// # Errors
    ///
    /// [`SysError::Invalid`] for an empty `argv`; [`SysError::Os`] when the fork, the
    /// namespace switch or the exec fails (the child's error is reported here).
    pub fn spawn(
        &self,
        argv: &[String],
        env: &[(String, String)],
        stdin: Stdio,
        stdout: Stdio,
        stderr: Stdio,
    ) -> Result<Child, SysError> {
        let (program, args) = argv
            .split_first()
            .ok_or_else(|| SysError::Invalid(format!("empty argv for host {}", self.name)))?;
        // The host's /tmp is a private tmpfs, so a program under the machine's /tmp (a
        // checkout's target/debug/pinhole, say) would not be found after the mount
        // namespace switch. Such a program is opened here, in the sandbox's view, and run
        // through its descriptor; argv[0] keeps its name. The fd is close-on-exec, which
        // suits binaries; a script there would lose its path (its interpreter reopens it),
        // so scripts under /tmp are not supported.
        let shadowed = program.starts_with("/tmp/") || program == "/tmp";
        let exe: Option<fs::File> = if shadowed {
            Some(fs::File::open(program).map_err(|e| {
                SysError::os(
                    format!("open {program:?} to run it in host {}", self.name),
                    e,
                )
            })?)
        } else {
            None
        };
        let mut cmd = match &exe {
            Some(f) => {
                let mut c = Command::new(format!("/proc/self/fd/{}", f.as_raw_fd()));
                c.arg0(program);
                c
            }
            None => Command::new(program),
        };
        cmd.args(args)
            .envs(env.iter().map(|(k, v)| (k, v)))
            .stdin(stdin)
            .stdout(stdout)
            .stderr(stderr);
        let net = self.net.as_raw_fd();
        let mnt = self.mnt.as_raw_fd();
        // SAFETY: the closure runs between fork and exec and only makes async-signal-safe
        // system calls (setns, chdir, sigaction, sigprocmask); the fds outlive `spawn`.
        unsafe {
            cmd.pre_exec(move || {
                if libc::setns(net, libc::CLONE_NEWNET) == -1
                    || libc::setns(mnt, libc::CLONE_NEWNS) == -1
                    || libc::chdir(c"/".as_ptr()) == -1
                {
                    return Err(io::Error::last_os_error());
                }
                for sig in 1..libc::SIGRTMAX() {
                    if sig != libc::SIGKILL && sig != libc::SIGSTOP {
                        libc::signal(sig, libc::SIG_DFL);
                    }
                }
                let mut set: libc::sigset_t = std::mem::zeroed();
                libc::sigemptyset(&raw mut set);
                libc::sigprocmask(libc::SIG_SETMASK, &raw const set, std::ptr::null_mut());
                Ok(())
            });
        }
        cmd.spawn()
            .map_err(|e| SysError::os(format!("run {program:?} in host {}", self.name), e))
    }

    /// Switch the calling thread into this host's network namespace until the guard is
    /// dropped — to open sockets inside the host from Rust code (a socket stays in the
    /// namespace it was created in). Only the network namespace changes; threads never
    /// switch mount namespaces.
    ///
    /// # Errors
    ///
    /// [`SysError::Os`] when the current namespace cannot be opened or `setns` fails.
    pub fn enter_net(&self) -> Result<NetnsGuard, SysError> {
        let previous = open_ns("/proc/thread-self/ns/net")?;
        // SAFETY: setns(2) on a namespace fd we own.
        let r = unsafe { libc::setns(self.net.as_raw_fd(), libc::CLONE_NEWNET) };
        cvt(r, || format!("setns(net) into host {}", self.name))?;
        Ok(NetnsGuard {
            previous,
            _not_send: PhantomData,
        })
    }
}

fn create_on_this_thread(name: &str, hosts: &str) -> Result<(OwnedFd, OwnedFd), SysError> {
    // SAFETY: unshare(2) with namespace flags only, on this thread alone.
    let r = unsafe { libc::unshare(libc::CLONE_NEWNET | libc::CLONE_NEWNS) };
    cvt(r, || format!("unshare(net, mount) for host {name}"))?;
    let net = open_ns("/proc/thread-self/ns/net")?;
    let mnt = open_ns("/proc/thread-self/ns/mnt")?;
    mount_host_files(name, hosts)?;
    Netlink::open(&format!("host {name}"))?.set_link(1, "lo", None)?;
    Ok((net, mnt))
}

/// In the thread's new mount namespace: stage the files on a tmpfs at /tmp, bind them over
/// /etc, detach the staging tmpfs and mount the host's own empty /tmp.
fn mount_host_files(name: &str, hosts: &str) -> Result<(), SysError> {
    let at = |what: &str| format!("{what} for host {name}");
    mount_tmpfs(c"/tmp", c"mode=0755")
        .map_err(|e| SysError::os(at("mount staging tmpfs on /tmp"), e))?;
    fs::write("/tmp/hosts", hosts).map_err(|e| SysError::os(at("write staged hosts file"), e))?;
    fs::write("/tmp/resolv.conf", RESOLV_CONF)
        .map_err(|e| SysError::os(at("write staged resolv.conf"), e))?;
    bind(c"/tmp/hosts", c"/etc/hosts").map_err(|e| SysError::os(at("bind-mount /etc/hosts"), e))?;
    match bind(c"/tmp/resolv.conf", c"/etc/resolv.conf") {
        Ok(()) => {}
        Err(e) if e.kind() == io::ErrorKind::NotFound => {}
        Err(e) => return Err(SysError::os(at("bind-mount /etc/resolv.conf"), e)),
    }
    // SAFETY: umount2 on a NUL-terminated path.
    let r = unsafe { libc::umount2(c"/tmp".as_ptr(), libc::MNT_DETACH) };
    cvt(r, || at("detach the staging tmpfs"))?;
    mount_tmpfs(c"/tmp", c"mode=1777").map_err(|e| SysError::os(at("mount /tmp"), e))?;
    Ok(())
}

fn mount_tmpfs(target: &std::ffi::CStr, opts: &std::ffi::CStr) -> io::Result<()> {
    // SAFETY: mount(2) with NUL-terminated strings.
    let r = unsafe {
        libc::mount(
            c"tmpfs".as_ptr(),
            target.as_ptr(),
            c"tmpfs".as_ptr(),
            libc::MS_NOSUID | libc::MS_NODEV,
            opts.as_ptr().cast(),
        )
    };
    if r == -1 {
        Err(io::Error::last_os_error())
    } else {
        Ok(())
    }
}

fn bind(source: &std::ffi::CStr, target: &std::ffi::CStr) -> io::Result<()> {
    // SAFETY: mount(2) with NUL-terminated strings.
    let r = unsafe {
        libc::mount(
            source.as_ptr(),
            target.as_ptr(),
            std::ptr::null(),
            libc::MS_BIND,
            std::ptr::null(),
        )
    };
    if r == -1 {
        Err(io::Error::last_os_error())
    } else {
        Ok(())
    }
}

fn open_ns(path: &str) -> Result<OwnedFd, SysError> {
    let c = std::ffi::CString::new(path).map_err(|_| SysError::Invalid(path.into()))?;
    // SAFETY: open(2) on a NUL-terminated path; result checked.
    let fd = unsafe { libc::open(c.as_ptr(), libc::O_RDONLY | libc::O_CLOEXEC) };
    let fd = cvt(fd, || format!("open {path}"))?;
    // SAFETY: fresh fd owned by nobody else.
    Ok(unsafe { OwnedFd::from_raw_fd(fd) })
}
