//! The hidden `bench-relay-forwarder`: the do-nothing baseline of `pinhole bench relay`.
//! It knows nothing of RTP: per call a pair of UDP ports, and what arrives on one port
//! leaves from the other to a fixed address — epoll (mio) readiness, `recvmmsg(2)` of up to
//! 64 datagrams from a ready socket, one `sendmmsg(2)` of them from its partner. What a
//! relay does beyond this (latching, checks, counters) is what the comparison prices.
//!
//! Configuration on stdin, one call a line, `A_ADDR B_ADDR` (the two parties' media
//! addresses), then `end` (it prints `started` first, before it reads them): call `i` gets ports `first_port + 2i` (facing A: A sends
//! there, it sends to A from there) and `first_port + 2i + 1` (facing B). It prints
//! `ready` when every socket is bound and forwards until it is stopped (SIGTERM/SIGKILL by
//! the bench, by PID) or until stdin closes.

use crate::cli::EXIT_PASS;
use anyhow::{Context, Result, bail};
use emulator::fabric::kernel::sys;
use mio::unix::SourceFd;
use mio::{Events, Interest, Poll, Token};
use std::io::{BufRead, Write};
use std::net::{IpAddr, SocketAddr, UdpSocket};
use std::os::fd::{AsFd, AsRawFd};
use std::time::Duration;

/// Longest datagram forwarded whole.
const SLOT: usize = 2048;

/// Read the pairs from stdin, bind, print `ready`, forward.
pub fn forwarder(address: IpAddr, first_port: u16) -> Result<u8> {
    let _ = sys::raise_open_files_limit();
    {
        // The bench reads the idle memory here, before any socket exists.
        let mut out = std::io::stdout().lock();
        writeln!(out, "started")?;
        out.flush()?;
    }
    let stdin = std::io::stdin();
    let mut peers: Vec<SocketAddr> = Vec::new();
    for line in stdin.lock().lines() {
        let line = line?;
        let line = line.trim();
        if line == "end" {
            break;
        }
        let (a, b) = line
            .split_once(' ')
            .with_context(|| format!("a pair line must be `A_ADDR B_ADDR`: {line:?}"))?;
        // Socket 2i (facing A) sends to A, socket 2i+1 (facing B) to B.
        peers.push(a.parse().with_context(|| format!("address {a:?}"))?);
        peers.push(b.parse().with_context(|| format!("address {b:?}"))?);
    }
    if peers.is_empty() {
        bail!("no call configured on stdin");
    }
    let mut sockets = Vec::with_capacity(peers.len());
    for i in 0..peers.len() {
        let port = u16::try_from(usize::from(first_port) + i)
            .ok()
            .filter(|&p| p != 0)
            .context("the port range runs past 65535")?;
        let s = socket2::Socket::new(socket2::Domain::IPV4, socket2::Type::DGRAM, None)?;
        s.bind(&SocketAddr::new(address, port).into())
            .with_context(|| format!("bind {address}:{port}"))?;
        s.set_nonblocking(true)?;
        sockets.push(UdpSocket::from(s));
    }
    let mut poll = Poll::new()?;
    for (i, s) in sockets.iter().enumerate() {
        poll.registry()
            .register(&mut SourceFd(&s.as_raw_fd()), Token(i), Interest::READABLE)?;
    }
    {
        let mut out = std::io::stdout().lock();
        writeln!(out, "ready")?;
        out.flush()?;
    }
    // Stop when the bench closes stdin (it also stops us by PID).
    let (done_tx, done_rx) = std::sync::mpsc::channel::<()>();
    std::thread::spawn(move || {
        let mut sink = String::new();
        while std::io::stdin().read_line(&mut sink).is_ok_and(|n| n > 0) {
            sink.clear();
        }
        let _ = done_tx.send(());
    });
    let mut events = Events::with_capacity(1024);
    let mut buf = vec![0u8; sys::MAX_BATCH * SLOT];
    let mut lens = [0usize; sys::MAX_BATCH];
    loop {
        if done_rx.try_recv().is_ok() {
            return Ok(EXIT_PASS);
        }
        match poll.poll(&mut events, Some(Duration::from_millis(500))) {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(e.into()),
        }
        for ev in &events {
            let i = ev.token().0;
            let (from, to) = (&sockets[i], &sockets[i ^ 1]);
            let dest = peers[i ^ 1];
            // Edge-triggered: drain the socket.
            loop {
                let n = sys::recv_sized(from.as_fd(), &mut buf, SLOT, &mut lens)?;
                if n == 0 {
                    break;
                }
                let mut packets: [&[u8]; sys::MAX_BATCH] = [&[]; sys::MAX_BATCH];
                for (k, p) in packets.iter_mut().take(n).enumerate() {
                    *p = &buf[k * SLOT..k * SLOT + lens[k]];
                }
                // A full send buffer drops the rest of the batch, as a relay would.
                let _ = sys::send_batch_to(to.as_fd(), dest, &packets[..n]);
            }
        }
    }
}
