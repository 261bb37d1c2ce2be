//! [`OsNet`]: [`Net`] over real non-blocking OS sockets, in real time, and
//! [`run_until`], a small blocking driver for agents on it.
//!
//! Every socket `OsNet` opens (UDP sockets, TCP connections, listening sockets and the
//! connections they accept) is registered with one readiness set owned by the `OsNet`
//! ([`emulator::fabric::kernel::Waiter`]: epoll through mio plus a timerfd), so a driver
//! waits with [`OsNet::wait`] until a socket is ready or its agents' next deadline,
//! to the nanosecond, instead of sleeping in steps. mio is edge-triggered: a socket
//! reported readable stays on a "not drained" list until a read on it would block
//! (`udp_recv` returned `None`, `tcp_recv` read to `EAGAIN`, the listener's queue was
//! accepted), and while anything is on that list [`OsNet::wait`] does not block.
//!
//! A host is a list of local IP addresses. Without an enter hook every host lives in the
//! current network namespace and sockets are bound to the host's addresses (so that hosts
//! on `127.0.0.0/8` stay distinct). With an enter hook ([`OsNet::with_enter`]) — the kernel
//! fabric's — the hook switches the calling thread into the host's network namespace while
//! a socket is created (a socket stays in the namespace it was created in), and sockets
//! opened without an explicit address are bound to the unspecified address there.
//!
//! TCP sockets are created with `SO_REUSEADDR` and `SO_REUSEPORT`, so that a connection
//! can be started from the local port of an existing connection (RFC 5128 §3.4
//! simultaneous open). A non-blocking connect is [`TcpPhase::Connecting`] while the
//! kernel has no peer (`EINPROGRESS`, `getpeername` = `ENOTCONN`), [`TcpPhase::Closed`]
//! once `SO_ERROR` reports an error, and [`TcpPhase::Established`] once it has a peer.
//!
//! # Driving agents
//!
//! ```no_run
//! use harness::agents::net::Net;
//! use harness::agents::os::{OsNet, run_until};
//! use harness::agents::steps::punch::{Punch, PunchProtocol};
//! use std::net::{IpAddr, Ipv4Addr};
//! use std::time::Duration;
//!
//! let lo = |n| vec![IpAddr::V4(Ipv4Addr::new(127, 0, 0, n))];
//! // hosts 0 and 1 punch, host 2 is the rendezvous
//! let mut net = OsNet::new(vec![lo(5), lo(6), lo(7)])?;
//! let mut punch = Punch::start(&mut net, PunchProtocol::Udp, [0, 1], 2, Duration::from_secs(3))?;
//! let deadline = net.now() + Duration::from_secs(5);
//! run_until(&mut net, &mut [&mut punch], deadline);
//! println!("{:?}", punch.outcome());
//! # Ok::<(), harness::agents::net::NetError>(())
//! ```

use super::net::{Agent, Net, NetError, TcpPhase};
use emulator::fabric::kernel::Waiter;
use mio::unix::SourceFd;
use mio::{Interest, Registry, Token};
use socket2::{Domain, Protocol, SockRef, Socket, Type};
use std::collections::{BTreeMap, VecDeque};
use std::io::{ErrorKind, Read, Write};
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr, TcpListener, TcpStream, UdpSocket};
use std::os::fd::{AsRawFd, RawFd};
use std::time::{Duration, Instant};

/// Tokens from here up are free for the caller's own sources registered with
/// [`OsNet::registry`] (a pidfd, a signal pipe, a waker): [`OsNet::wait`] returns when one
/// is ready and leaves it to the caller to find out what happened. `OsNet`'s own sockets
/// use tokens below it.
pub const EXTERNAL_TOKENS: usize = 1 << 48;

/// Listen backlog of a shared TCP listening socket.
const BACKLOG: i32 = 16;

/// Largest datagram [`Net::udp_recv`] returns.
const MAX_DATAGRAM: usize = 65_536;

/// Undoes an [`EnterHook`] when dropped (e.g. switches the thread back to its original
/// network namespace).
pub struct NsGuard {
    restore: Option<Box<dyn FnOnce()>>,
}

impl NsGuard {
    /// A guard with nothing to undo.
    pub fn noop() -> NsGuard {
        NsGuard { restore: None }
    }

    /// A guard that runs `restore` when dropped.
    pub fn new(restore: impl FnOnce() + 'static) -> NsGuard {
        NsGuard {
            restore: Some(Box::new(restore)),
        }
    }
}

impl Drop for NsGuard {
    fn drop(&mut self) {
        if let Some(f) = self.restore.take() {
            f();
        }
    }
}

/// Switches the current thread into a host's network namespace until the returned guard
/// is dropped. [`OsNet`] calls it on the thread that creates the socket and holds the
/// guard only while it creates and binds that socket. `Send`, so that an `OsNet` can be
/// built on one thread and moved to the one that drives it.
pub type EnterHook = Box<dyn Fn(usize) -> Result<NsGuard, NetError> + Send>;

/// A socket of an [`OsNet`].
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct OsSocket(u64);

/// A TCP connection and what is known of its state.
struct Conn {
    stream: TcpStream,
    phase: TcpPhase,
}

impl Conn {
    fn new(stream: TcpStream, phase: TcpPhase) -> Conn {
        Conn { stream, phase }
    }

    /// Update a connecting socket's phase from `SO_ERROR` and `getpeername`.
    fn refresh(&mut self) -> TcpPhase {
        if self.phase == TcpPhase::Connecting {
            match self.stream.take_error() {
                Ok(Some(_)) | Err(_) => self.phase = TcpPhase::Closed,
                Ok(None) => match self.stream.peer_addr() {
                    Ok(_) => self.phase = TcpPhase::Established,
                    Err(e) if e.kind() == ErrorKind::NotConnected => {}
                    Err(_) => self.phase = TcpPhase::Closed,
                },
            }
        }
        self.phase
    }

    fn send(&mut self, data: &[u8]) -> Result<usize, NetError> {
        // After the remote's FIN (Closing) this side may still send (TCP half-close).
        if !matches!(self.refresh(), TcpPhase::Established | TcpPhase::Closing) {
            return Ok(0);
        }
        match self.stream.write(data) {
            Ok(n) => Ok(n),
            Err(e) if e.kind() == ErrorKind::WouldBlock => Ok(0),
            Err(e) => {
                self.phase = TcpPhase::Closed;
                Err(NetError::io("send", e))
            }
        }
    }

    fn recv(&mut self) -> Vec<u8> {
        let mut out = Vec::new();
        if !matches!(self.refresh(), TcpPhase::Established | TcpPhase::Closing) {
            return out;
        }
        let mut buf = [0u8; 4096];
        loop {
            match self.stream.read(&mut buf) {
                Ok(0) => {
                    self.phase = TcpPhase::Closing;
                    break;
                }
                Ok(n) => out.extend_from_slice(&buf[..n]),
                Err(e) if e.kind() == ErrorKind::Interrupted => {}
                Err(e) if e.kind() == ErrorKind::WouldBlock => break,
                Err(_) => {
                    self.phase = TcpPhase::Closed;
                    break;
                }
            }
        }
        out
    }

    /// Close with an RST (no lingering state), like the virtual fabric's abort.
    fn abort(self) {
        let _ = SockRef::from(&self.stream).set_linger(Some(Duration::ZERO));
    }
}

enum Sock {
    Udp(UdpSocket),
    Tcp(Conn),
    /// One connection to come from a shared listening socket.
    Slot {
        key: (usize, u16),
        conn: Option<Conn>,
    },
}

/// A listening socket shared by the slots of one `(host, port)`.
struct Listener {
    socket: TcpListener,
    /// Its token in the readiness set.
    token: usize,
    /// Slots still waiting for a connection, in the order they were opened.
    waiting: VecDeque<OsSocket>,
    /// Open slots (waiting or not).
    slots: usize,
}

/// [`Net`] over real sockets and real time.
pub struct OsNet {
    hosts: Vec<Vec<IpAddr>>,
    enter: Option<EnterHook>,
    sockets: BTreeMap<OsSocket, Sock>,
    listeners: BTreeMap<(usize, u16), Listener>,
    next: u64,
    /// Receive buffer for datagrams.
    buf: Vec<u8>,
    /// The readiness set every socket is registered with; `None` when the OS refused one
    /// (out of file descriptors), and then [`OsNet::wait`] only sleeps to the deadline.
    waiter: Waiter,
    /// Tokens of sockets reported readable and not yet read until they would block, with
    /// the number of waits since (see [`UNREAD_PATIENCE`]).
    unread: BTreeMap<usize, u32>,
}

/// Waits that return at once for a socket reported readable that nobody reads (e.g. one
/// of an agent that has finished, still receiving): after this many it no longer keeps
/// the driver awake, until its next datagram or segment marks it again.
const UNREAD_PATIENCE: u32 = 8;

/// `fd` into `registry` as `token` (an OS refusal leaves the socket usable, only not
/// waited on: the driver then still wakes at its agents' deadlines).
fn register(registry: Option<&Registry>, fd: RawFd, token: usize, interest: Interest) {
    if let Some(r) = registry
        && let Err(e) = r.register(&mut SourceFd(&fd), Token(token), interest)
    {
        tracing::warn!("OsNet: cannot wait on a socket: {e}");
    }
}

fn deregister(registry: Option<&Registry>, fd: RawFd) {
    if let Some(r) = registry {
        let _ = r.deregister(&mut SourceFd(&fd));
    }
}

impl OsNet {
    /// Hosts given by their addresses (primary first), all in the current network
    /// namespace.
    ///
    /// # Errors
    ///
    /// The readiness set (epoll and a timerfd) cannot be created, e.g. out of file
    /// descriptors: there is no waiting without it (no sleep-polling instead).
    pub fn new(hosts: Vec<Vec<IpAddr>>) -> Result<OsNet, NetError> {
        let waiter = Waiter::new(64).map_err(|e| {
            NetError::io(
                "create the readiness set",
                std::io::Error::other(e.to_string()),
            )
        })?;
        Ok(OsNet {
            hosts,
            enter: None,
            sockets: BTreeMap::new(),
            listeners: BTreeMap::new(),
            next: 0,
            buf: vec![0; MAX_DATAGRAM],
            waiter,
            unread: BTreeMap::new(),
        })
    }

    /// Where a driver registers sources of its own next to the sockets (tokens from
    /// [`EXTERNAL_TOKENS`] up), so that [`OsNet::wait`] also returns when they are ready.
    pub fn registry(&self) -> &Registry {
        self.waiter.registry()
    }

    /// Block until one of the sockets (or a source registered through
    /// [`OsNet::registry`]) is ready, or until `deadline` (`None`: no deadline), with
    /// nanosecond precision. Returns at once while a socket reported readable earlier has
    /// not been read until it would block, so that no datagram waits behind a wait. A
    /// signal also ends the wait (so a stop flag set by a handler is seen).
    ///
    /// Spurious returns are possible (a socket that became writable, data that an agent
    /// then leaves unread): callers poll their agents and wait again. A socket left unread
    /// for a few waits (`UNREAD_PATIENCE`) stops keeping them short until new data comes.
    pub fn wait(&mut self, deadline: Option<Instant>) {
        self.unread.retain(|_, waits| {
            *waits += 1;
            *waits <= UNREAD_PATIENCE
        });
        let deadline = if self.unread.is_empty() {
            deadline
        } else {
            Some(self.now())
        };
        let w = &mut self.waiter;
        if let Err(e) = w.wait(deadline) {
            tracing::warn!("OsNet: wait: {e}");
            return;
        }
        for ev in w.events() {
            let t = ev.token().0;
            if t < EXTERNAL_TOKENS && (ev.is_readable() || ev.is_read_closed() || ev.is_error()) {
                self.unread.insert(t, 0);
            }
        }
    }

    /// Create each host's sockets inside whatever `enter(host)` switches the thread to
    /// (the kernel fabric: the host's network namespace).
    pub fn with_enter(mut self, enter: EnterHook) -> OsNet {
        self.enter = Some(enter);
        self
    }

    /// Open sockets.
    pub fn socket_count(&self) -> usize {
        self.sockets.len()
    }

    fn add(&mut self, s: Sock) -> OsSocket {
        let id = OsSocket(self.next);
        self.next += 1;
        let registry = Some(self.waiter.registry());
        match &s {
            Sock::Udp(u) => register(registry, u.as_raw_fd(), id.0 as usize, Interest::READABLE),
            Sock::Tcp(c) => register(
                registry,
                c.stream.as_raw_fd(),
                id.0 as usize,
                Interest::READABLE | Interest::WRITABLE,
            ),
            Sock::Slot { .. } => {}
        }
        self.sockets.insert(id, s);
        id
    }

    /// The local address to bind on `host`: `addr` if it is one of the host's, else (None
    /// or unspecified) the unspecified address in a namespace of the host's own, or the
    /// host's first address of `family`'s family when hosts share the namespace.
    fn local_ip(
        &self,
        host: usize,
        addr: Option<IpAddr>,
        family: Option<IpAddr>,
    ) -> Result<IpAddr, NetError> {
        let addrs = self.hosts.get(host).ok_or(NetError::NoHost(host))?;
        match addr.filter(|a| !a.is_unspecified()) {
            Some(a) if addrs.contains(&a) => Ok(a),
            Some(a) => Err(NetError::NotLocal(a, host)),
            None => {
                let same = |a: &&IpAddr| family.is_none_or(|f| f.is_ipv4() == a.is_ipv4());
                let first = addrs
                    .iter()
                    .find(same)
                    .copied()
                    .or(family)
                    .ok_or(NetError::NoHost(host))?;
                if self.enter.is_some() {
                    Ok(match first {
                        IpAddr::V4(_) => IpAddr::V4(Ipv4Addr::UNSPECIFIED),
                        IpAddr::V6(_) => IpAddr::V6(Ipv6Addr::UNSPECIFIED),
                    })
                } else {
                    Ok(first)
                }
            }
        }
    }

    /// A non-blocking socket of `host`, bound to `local`, created inside the host.
    fn socket(
        &self,
        host: usize,
        local: SocketAddr,
        ty: Type,
        reuse: bool,
    ) -> Result<Socket, NetError> {
        let _guard = match &self.enter {
            Some(enter) => enter(host)?,
            None => NsGuard::noop(),
        };
        let proto = if ty == Type::DGRAM {
            Protocol::UDP
        } else {
            Protocol::TCP
        };
        let s = Socket::new(Domain::for_address(local), ty, Some(proto))
            .map_err(|e| NetError::io("socket", e))?;
        s.set_nonblocking(true)
            .map_err(|e| NetError::io("set_nonblocking", e))?;
        if reuse {
            s.set_reuse_address(true)
                .map_err(|e| NetError::io("SO_REUSEADDR", e))?;
            s.set_reuse_port(true)
                .map_err(|e| NetError::io("SO_REUSEPORT", e))?;
        }
        s.bind(&local.into()).map_err(|e| NetError::io("bind", e))?;
        Ok(s)
    }

    /// Hand connections waiting on the listener of `key` to its waiting slots, in order.
    fn accept_pending(&mut self, key: (usize, u16)) {
        let Some(l) = self.listeners.get_mut(&key) else {
            return;
        };
        let registry = Some(self.waiter.registry());
        loop {
            match l.socket.accept() {
                Ok((stream, _)) => {
                    let Some(slot) = l.waiting.pop_front() else {
                        // More connections than slots: refuse the extra one.
                        Conn::new(stream, TcpPhase::Closed).abort();
                        continue;
                    };
                    let _ = stream.set_nonblocking(true);
                    if let Some(Sock::Slot { conn, .. }) = self.sockets.get_mut(&slot) {
                        register(
                            registry,
                            stream.as_raw_fd(),
                            slot.0 as usize,
                            Interest::READABLE | Interest::WRITABLE,
                        );
                        // Data may have come with the connection, before it was registered.
                        self.unread.insert(slot.0 as usize, 0);
                        *conn = Some(Conn::new(stream, TcpPhase::Established));
                    }
                }
                Err(e) if e.kind() == ErrorKind::Interrupted => {}
                Err(e) => {
                    if e.kind() == ErrorKind::WouldBlock {
                        self.unread.remove(&l.token);
                    }
                    break;
                }
            }
        }
    }

    /// The connection of a TCP socket or listening slot.
    fn conn(&mut self, s: OsSocket) -> Option<&mut Conn> {
        // Every use of a slot also drains the listener's queue: connections go to the
        // waiting slots in order, and one that arrives when no slot waits is reset (as on
        // a stack where each listening socket takes one connection, like smoltcp's).
        if let Some(Sock::Slot { key, .. }) = self.sockets.get(&s) {
            let key = *key;
            self.accept_pending(key);
        }
        match self.sockets.get_mut(&s)? {
            Sock::Tcp(c) => Some(c),
            Sock::Slot { conn, .. } => conn.as_mut(),
            Sock::Udp(_) => None,
        }
    }

    fn udp(&self, s: OsSocket) -> Result<&UdpSocket, NetError> {
        match self.sockets.get(&s) {
            Some(Sock::Udp(u)) => Ok(u),
            _ => Err(NetError::NoSocket),
        }
    }
}

impl Net for OsNet {
    type Socket = OsSocket;

    #[allow(clippy::disallowed_methods)] // the real-time driver: the one place that reads the clock
    fn now(&self) -> Instant {
        Instant::now()
    }

    fn host_addresses(&self, host: usize) -> Vec<IpAddr> {
        self.hosts.get(host).cloned().unwrap_or_default()
    }

    fn ephemeral_port(&mut self, host: usize, tcp: bool) -> Result<u16, NetError> {
        let ip = self.local_ip(host, None, None)?;
        let ty = if tcp { Type::STREAM } else { Type::DGRAM };
        let s = self.socket(host, SocketAddr::new(ip, 0), ty, tcp)?;
        let local = s.local_addr().map_err(|e| NetError::io("getsockname", e))?;
        local
            .as_socket()
            .map(|a| a.port())
            .ok_or(NetError::NoSocket)
    }

    fn udp_bind(
        &mut self,
        host: usize,
        addr: Option<IpAddr>,
        port: u16,
    ) -> Result<(OsSocket, u16), NetError> {
        let ip = self.local_ip(host, addr, None)?;
        let s = self.socket(host, SocketAddr::new(ip, port), Type::DGRAM, false)?;
        let u = UdpSocket::from(s);
        let port = u
            .local_addr()
            .map_err(|e| NetError::io("getsockname", e))?
            .port();
        Ok((self.add(Sock::Udp(u)), port))
    }

    fn udp_send(&mut self, s: OsSocket, to: SocketAddr, data: &[u8]) -> Result<(), NetError> {
        self.udp(s)?
            .send_to(data, to)
            .map(|_| ())
            .map_err(|e| NetError::io("sendto", e))
    }

    fn udp_recv(&mut self, s: OsSocket) -> Option<(SocketAddr, Vec<u8>)> {
        let Some(Sock::Udp(u)) = self.sockets.get(&s) else {
            return None;
        };
        // A pending socket error (an ICMP error on some kernels) is consumed by the failed
        // read; a few retries skip past it without risking a busy loop.
        for _ in 0..4 {
            match u.recv_from(&mut self.buf) {
                Ok((n, from)) => return Some((from, self.buf[..n].to_vec())),
                Err(e) if e.kind() == ErrorKind::WouldBlock => {
                    self.unread.remove(&(s.0 as usize));
                    return None;
                }
                Err(_) => {}
            }
        }
        None
    }

    fn tcp_listen(&mut self, host: usize, port: u16) -> Result<OsSocket, NetError> {
        let key = if port != 0 && self.listeners.contains_key(&(host, port)) {
            (host, port)
        } else {
            let ip = self.local_ip(host, None, None)?;
            let s = self.socket(host, SocketAddr::new(ip, port), Type::STREAM, true)?;
            s.listen(BACKLOG).map_err(|e| NetError::io("listen", e))?;
            let socket = TcpListener::from(s);
            let port = socket
                .local_addr()
                .map_err(|e| NetError::io("getsockname", e))?
                .port();
            let token = self.next as usize;
            self.next += 1;
            register(
                Some(self.waiter.registry()),
                socket.as_raw_fd(),
                token,
                Interest::READABLE,
            );
            self.listeners.insert(
                (host, port),
                Listener {
                    socket,
                    token,
                    waiting: VecDeque::new(),
                    slots: 0,
                },
            );
            (host, port)
        };
        let id = self.add(Sock::Slot { key, conn: None });
        if let Some(l) = self.listeners.get_mut(&key) {
            l.waiting.push_back(id);
            l.slots += 1;
        }
        Ok(id)
    }

    fn tcp_connect(
        &mut self,
        host: usize,
        local_port: u16,
        remote: SocketAddr,
    ) -> Result<(OsSocket, u16), NetError> {
        let ip = self.local_ip(host, None, Some(remote.ip()))?;
        let s = self.socket(host, SocketAddr::new(ip, local_port), Type::STREAM, true)?;
        match s.connect(&remote.into()) {
            Ok(()) => {}
            Err(e)
                if e.raw_os_error() == Some(libc::EINPROGRESS)
                    || e.kind() == ErrorKind::WouldBlock => {}
            Err(e) => return Err(NetError::io("connect", e)),
        }
        let stream = TcpStream::from(s);
        let port = stream
            .local_addr()
            .map_err(|e| NetError::io("getsockname", e))?
            .port();
        let id = self.add(Sock::Tcp(Conn::new(stream, TcpPhase::Connecting)));
        Ok((id, port))
    }

    fn tcp_state(&mut self, s: OsSocket) -> TcpPhase {
        let slot = matches!(self.sockets.get(&s), Some(Sock::Slot { .. }));
        match self.conn(s) {
            Some(c) => c.refresh(),
            None if slot => TcpPhase::Listening,
            None => TcpPhase::Closed,
        }
    }

    fn tcp_remote(&mut self, s: OsSocket) -> Option<SocketAddr> {
        self.conn(s)?.stream.peer_addr().ok()
    }

    fn tcp_send(&mut self, s: OsSocket, data: &[u8]) -> Result<usize, NetError> {
        let exists = self.sockets.contains_key(&s);
        match self.conn(s) {
            Some(c) => c.send(data),
            None if exists => Ok(0),
            None => Err(NetError::NoSocket),
        }
    }

    fn tcp_recv(&mut self, s: OsSocket) -> Vec<u8> {
        let out = self.conn(s).map(Conn::recv).unwrap_or_default();
        // Conn::recv reads until the socket would block (or to its end, or an error); a
        // connection not yet established has nothing to read.
        self.unread.remove(&(s.0 as usize));
        out
    }

    fn tcp_shutdown(&mut self, s: OsSocket) {
        if let Some(c) = self.conn(s) {
            let _ = c.stream.shutdown(std::net::Shutdown::Write);
        }
    }

    fn close(&mut self, s: OsSocket) {
        self.unread.remove(&(s.0 as usize));
        let registry = Some(self.waiter.registry());
        match self.sockets.remove(&s) {
            Some(Sock::Tcp(c)) => {
                deregister(registry, c.stream.as_raw_fd());
                c.abort();
            }
            Some(Sock::Slot { key, conn }) => {
                if let Some(c) = conn {
                    deregister(registry, c.stream.as_raw_fd());
                    c.abort();
                }
                if let Some(l) = self.listeners.get_mut(&key) {
                    l.waiting.retain(|w| *w != s);
                    l.slots -= 1;
                    if l.slots == 0 {
                        deregister(registry, l.socket.as_raw_fd());
                        self.unread.remove(&l.token);
                        self.listeners.remove(&key);
                    }
                }
            }
            Some(Sock::Udp(u)) => deregister(registry, u.as_raw_fd()),
            None => {}
        }
    }
}

/// Poll `agents` on `net` until every one is done (true) or `deadline` passes (false).
///
/// Each round polls every agent once, then waits ([`OsNet::wait`]) until a socket is
/// ready or the earliest agent timeout (or `deadline`), whichever comes first.
pub fn run_until(net: &mut OsNet, agents: &mut [&mut dyn Agent<OsNet>], deadline: Instant) -> bool {
    loop {
        for a in agents.iter_mut() {
            a.poll(net);
        }
        if agents.iter().all(|a| a.is_done()) {
            return true;
        }
        if net.now() >= deadline {
            return false;
        }
        let wake = agents
            .iter()
            .filter_map(|a| a.poll_timeout())
            .fold(deadline, Instant::min);
        net.wait(Some(wake));
    }
}

#[cfg(test)]
mod test {
    //! Loopback only (127.0.0.0/8).
    use super::*;

    fn lo(last: u8) -> IpAddr {
        IpAddr::V4(Ipv4Addr::new(127, 0, 0, last))
    }

    /// Check `f` whenever a socket is ready (or every 10 ms) for up to 2 s until it holds.
    fn eventually(net: &mut OsNet, mut f: impl FnMut(&mut OsNet) -> bool) -> bool {
        let end = net.now() + Duration::from_secs(2);
        while net.now() < end {
            if f(net) {
                return true;
            }
            let next = (net.now() + Duration::from_millis(10)).min(end);
            net.wait(Some(next));
        }
        false
    }

    #[test]
    fn wait_reports_a_readable_socket_until_it_is_drained() {
        let mut net = OsNet::new(vec![vec![lo(15)], vec![lo(16)]]).unwrap();
        let (rx, port) = net.udp_bind(0, None, 0).unwrap();
        let (tx, _) = net.udp_bind(1, None, 0).unwrap();
        let to = SocketAddr::new(lo(15), port);
        net.udp_send(tx, to, b"one").unwrap();
        net.udp_send(tx, to, b"two").unwrap();
        // Woken by the socket, not by the (distant) deadline: it is marked not drained.
        net.wait(Some(net.now() + Duration::from_secs(30)));
        assert!(net.unread.contains_key(&(rx.0 as usize)));
        assert_eq!(net.udp_recv(rx).unwrap().1, b"one");
        // Edge-triggered: no new edge for the second datagram, but it is still marked, so
        // the next wait does not block on it.
        assert!(net.unread.contains_key(&(rx.0 as usize)));
        net.wait(None);
        assert_eq!(net.udp_recv(rx).unwrap().1, b"two");
        assert!(net.udp_recv(rx).is_none());
        assert!(net.unread.is_empty());
        // A datagram nobody reads keeps the waits short only for a while.
        net.udp_send(tx, to, b"three").unwrap();
        net.wait(Some(net.now() + Duration::from_secs(30)));
        assert!(net.unread.contains_key(&(rx.0 as usize)));
        for _ in 0..=UNREAD_PATIENCE {
            net.wait(Some(net.now() + Duration::from_millis(20)));
        }
        assert!(!net.unread.contains_key(&(rx.0 as usize)));
        // It is still there to read.
        assert_eq!(net.udp_recv(rx).unwrap().1, b"three");
        net.close(rx);
        net.close(tx);
    }

    #[test]
    fn listen_slots_take_connections_in_order_and_refuse_extra() {
        // host 0 listens, host 1 connects three times
        let mut net = OsNet::new(vec![vec![lo(9)], vec![lo(10)]]).unwrap();
        let port = net.ephemeral_port(0, true).unwrap();
        let slots = [
            net.tcp_listen(0, port).unwrap(),
            net.tcp_listen(0, port).unwrap(),
        ];
        assert_eq!(net.tcp_state(slots[0]), TcpPhase::Listening);
        let to = SocketAddr::new(lo(9), port);
        let (c0, p0) = net.tcp_connect(1, 0, to).unwrap();
        assert!(eventually(&mut net, |n| n.tcp_state(c0) == TcpPhase::Established));
        assert!(eventually(&mut net, |n| n.tcp_state(slots[0]) == TcpPhase::Established));
        assert_eq!(net.tcp_state(slots[1]), TcpPhase::Listening);
        assert_eq!(net.tcp_remote(slots[0]), Some(SocketAddr::new(lo(10), p0)));
        let (c1, _) = net.tcp_connect(1, 0, to).unwrap();
        assert!(eventually(&mut net, |n| n.tcp_state(slots[1]) == TcpPhase::Established));
        // data both ways
        assert_eq!(net.tcp_send(c1, b"hello").unwrap(), 5);
        let mut got = Vec::new();
        assert!(eventually(&mut net, |n| {
            got.extend(n.tcp_recv(slots[1]));
            got == b"hello"
        }));
        assert_eq!(net.tcp_send(slots[0], b"back").unwrap(), 4);
        let mut got = Vec::new();
        assert!(eventually(&mut net, |n| {
            got.extend(n.tcp_recv(c0));
            got == b"back"
        }));
        // a third connection finds no slot: accepted by the kernel, then reset
        let (c2, _) = net.tcp_connect(1, 0, to).unwrap();
        assert!(eventually(&mut net, |n| {
            n.tcp_state(slots[0]);
            n.tcp_recv(c2);
            n.tcp_state(c2) == TcpPhase::Closed
        }));
        for s in [c0, c1, c2, slots[0], slots[1]] {
            net.close(s);
        }
        assert_eq!(net.socket_count(), 0);
        assert!(net.listeners.is_empty());
    }

    #[test]
    fn connect_reuses_the_local_port_of_a_live_connection() {
        // host 0 has two listeners; host 1 connects to both from one local port
        let mut net = OsNet::new(vec![vec![lo(11)], vec![lo(12)]]).unwrap();
        let (pa, pb) = (
            net.ephemeral_port(0, true).unwrap(),
            net.ephemeral_port(0, true).unwrap(),
        );
        let la = net.tcp_listen(0, pa).unwrap();
        let lb = net.tcp_listen(0, pb).unwrap();
        let (first, local) = net.tcp_connect(1, 0, SocketAddr::new(lo(11), pa)).unwrap();
        assert!(eventually(&mut net, |n| n.tcp_state(first) == TcpPhase::Established));
        let (second, again) = net
            .tcp_connect(1, local, SocketAddr::new(lo(11), pb))
            .unwrap();
        assert_eq!(again, local);
        assert!(eventually(&mut net, |n| n.tcp_state(second) == TcpPhase::Established));
        assert!(eventually(&mut net, |n| n.tcp_state(la)
            == TcpPhase::Established
            && n.tcp_state(lb) == TcpPhase::Established));
        assert_eq!(net.tcp_remote(lb), Some(SocketAddr::new(lo(12), local)));
    }

    #[test]
    fn refused_connect_is_closed_and_bad_addresses_are_errors() {
        let mut net = OsNet::new(vec![vec![lo(13)], vec![lo(14)]]).unwrap();
        let port = net.ephemeral_port(0, true).unwrap();
        let (c, _) = net
            .tcp_connect(1, 0, SocketAddr::new(lo(13), port))
            .unwrap();
        assert!(eventually(&mut net, |n| n.tcp_state(c) == TcpPhase::Closed));
        assert_eq!(net.tcp_send(c, b"x").unwrap(), 0);
        assert!(matches!(
            net.udp_bind(1, Some(lo(13)), 0),
            Err(NetError::NotLocal(..))
        ));
        assert!(matches!(net.udp_bind(7, None, 0), Err(NetError::NoHost(7))));
        assert!(net.host_addresses(7).is_empty());
    }
}
