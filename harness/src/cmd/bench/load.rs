//! The hidden load programs `pinhole bench nat` runs inside its hosts
//! (`bench-udp-send`/`-recv`, `bench-tcp-send`/`-recv`): they print `ready`, move
//! packets or bytes for a bounded time, and print what they counted as JSON.

use super::nat::FIRST_PACKET_WAIT;
use crate::cli::EXIT_PASS;
use anyhow::{Result, bail};
use emulator::fabric::kernel::sys;
use serde_json::json;
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream, UdpSocket};
use std::os::fd::AsFd;
use std::time::Duration;

use super::{ip, now};

fn wait_first<T>(mut f: impl FnMut() -> Result<Option<T>>) -> Result<T> {
    let deadline = now() + FIRST_PACKET_WAIT;
    loop {
        if let Some(v) = f()? {
            return Ok(v);
        }
        if now() >= deadline {
            bail!("nothing arrived within {FIRST_PACKET_WAIT:?}");
        }
    }
}

fn ready() -> Result<()> {
    let mut out = std::io::stdout().lock();
    writeln!(out, "ready")?;
    out.flush()?;
    Ok(())
}

/// Hidden `bench-udp-recv`: bind UDP `port`, print `ready`, wait for the first datagram,
/// then count datagrams and bytes for `seconds` and print them as JSON.
pub fn udp_recv(port: u16, seconds: f64) -> Result<u8> {
    let sock = socket2::Socket::new(socket2::Domain::IPV4, socket2::Type::DGRAM, None)?;
    let _ = sock.set_recv_buffer_size(8 << 20);
    sock.bind(&SocketAddr::new(ip("0.0.0.0"), port).into())?;
    let sock: UdpSocket = sock.into();
    sock.set_read_timeout(Some(Duration::from_millis(100)))?;
    ready()?;
    let mut buf = vec![0u8; sys::MAX_BATCH * 2048];
    wait_first(|| Ok((sys::recv_many(sock.as_fd(), &mut buf, 2048)?.0 > 0).then_some(())))?;
    let start = now();
    let end = start + Duration::from_secs_f64(seconds);
    let (mut packets, mut bytes) = (0u64, 0u64);
    loop {
        let (n, b) = sys::recv_many(sock.as_fd(), &mut buf, 2048)?;
        let t = now();
        if t >= end {
            break;
        }
        packets += n as u64;
        bytes += b as u64;
    }
    println!(
        "{}",
        json!({"packets": packets, "bytes": bytes, "seconds": seconds})
    );
    Ok(EXIT_PASS)
}

/// Hidden `bench-udp-send`: send `size`-byte datagrams to `to` as fast as possible for
/// `seconds`, then print how many as JSON.
pub fn udp_send(to: SocketAddr, size: usize, seconds: f64, batch: usize) -> Result<u8> {
    let batch = batch.clamp(1, sys::MAX_BATCH);
    let sock = UdpSocket::bind(SocketAddr::new(ip("0.0.0.0"), 0))?;
    sock.connect(to)?;
    let datagram = vec![0x5a_u8; size];
    let start = now();
    let end = start + Duration::from_secs_f64(seconds);
    let mut sent = 0u64;
    while now() < end {
        // ECONNREFUSED (an ICMP error for an earlier datagram) and ENOBUFS are transient.
        if batch == 1 {
            if sock.send(&datagram).is_ok() {
                sent += 1;
            }
        } else if let Ok(n) = sys::send_repeated(sock.as_fd(), &datagram, batch) {
            sent += n as u64;
        }
    }
    let took = start.elapsed().as_secs_f64();
    println!("{}", json!({"packets": sent, "seconds": took}));
    Ok(EXIT_PASS)
}

/// Hidden `bench-tcp-recv`: listen on TCP `port`, print `ready`, accept one connection,
/// count bytes for `seconds` from the first one and print them as JSON.
pub fn tcp_recv(port: u16, seconds: f64) -> Result<u8> {
    let listener = TcpListener::bind(SocketAddr::new(ip("0.0.0.0"), port))?;
    // A blocking accept bounded by SO_RCVTIMEO (Linux applies it to accept(2)).
    socket2::SockRef::from(&listener).set_read_timeout(Some(FIRST_PACKET_WAIT))?;
    ready()?;
    let mut stream = match listener.accept() {
        Ok((s, _)) => s,
        Err(e)
            if matches!(
                e.kind(),
                std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
            ) =>
        {
            bail!("no connection within {FIRST_PACKET_WAIT:?}")
        }
        Err(e) => return Err(e.into()),
    };
    stream.set_nonblocking(false)?;
    stream.set_read_timeout(Some(Duration::from_millis(100)))?;
    let mut buf = vec![0u8; 256 * 1024];
    let first = wait_first(|| match stream.read(&mut buf) {
        Ok(0) => bail!("the sender closed before sending"),
        Ok(n) => Ok(Some(n)),
        Err(e)
            if matches!(
                e.kind(),
                std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
            ) =>
        {
            Ok(None)
        }
        Err(e) => Err(e.into()),
    })?;
    let _ = first;
    let end = now() + Duration::from_secs_f64(seconds);
    let mut bytes = 0u64;
    while now() < end {
        match stream.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => bytes += n as u64,
            Err(e)
                if matches!(
                    e.kind(),
                    std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                ) => {}
            Err(e) => return Err(e.into()),
        }
    }
    println!(
        "{}",
        json!({"packets": bytes.div_ceil(1448), "bytes": bytes, "seconds": seconds})
    );
    Ok(EXIT_PASS)
}

/// Hidden `bench-tcp-send`: connect to `to` and write `size`-byte buffers for `seconds`.
pub fn tcp_send(to: SocketAddr, size: usize, seconds: f64) -> Result<u8> {
    let end = now() + Duration::from_secs_f64(seconds);
    let mut stream = TcpStream::connect_timeout(&to, Duration::from_secs(5))?;
    stream.set_write_timeout(Some(Duration::from_millis(100)))?;
    let buf = vec![0x5a_u8; size.max(1)];
    let mut sent = 0u64;
    while now() < end {
        match stream.write(&buf) {
            Ok(n) => sent += n as u64,
            Err(e)
                if matches!(
                    e.kind(),
                    std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                ) => {}
            // The receiver closes when its window ends.
            Err(_) => break,
        }
    }
    println!("{}", json!({"bytes": sent}));
    Ok(EXIT_PASS)
}
