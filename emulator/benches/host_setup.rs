//! Time to build emulated hosts in the kernel fabric: `HostNs::create` (namespaces, files,
//! `lo` up over rtnetlink) and `HostNs::add_tun` (TUN device, then MTU, link up, an IPv4
//! and an IPv6 address and both default routes over rtnetlink). Prints the figures.
//!
//! Needs the kernel fabric (user namespaces, `/dev/net/tun`); everything lives in pinhole's
//! own sandbox and disappears with this process.
//!
//! `cargo bench -p pinhole-emulator --bench host_setup [-- HOSTS]` (default 100 hosts)
// Wall-clock timing of real system calls: this is a driver-side measurement, not a core.
#![allow(clippy::disallowed_methods)]

use std::net::IpAddr;
use std::process::ExitCode;
use std::time::{Duration, Instant};

use emulator::fabric::kernel::sys::{self, HostNs};

const HOSTS_FILE: &str = "127.0.0.1 localhost\n::1 localhost\n";

fn main() -> ExitCode {
    // libtest-style flags that `cargo bench` passes (`--bench`) are ignored.
    let hosts = std::env::args()
        .skip(1)
        .find_map(|a| a.parse::<u16>().ok())
        .unwrap_or(100);
    let _sandbox = match sys::enter_sandbox() {
        Ok(s) => s,
        Err(e) => {
            eprintln!("host_setup: skipped: {e}");
            return ExitCode::SUCCESS;
        }
    };
    let mut create = Vec::with_capacity(usize::from(hosts));
    let mut tun = Vec::with_capacity(usize::from(hosts));
    let mut keep = Vec::with_capacity(usize::from(hosts));
    for i in 0..hosts {
        let [hi, lo] = i.to_be_bytes();
        let v4 = IpAddr::from([10, hi, lo, 2]);
        let v6 = IpAddr::from([0xfd00, 0, 0, 0, 0, 0, i, 2]);
        let t0 = Instant::now();
        let host = match HostNs::create(&format!("h{i}"), HOSTS_FILE) {
            Ok(h) => h,
            Err(e) => {
                eprintln!("host_setup: create host h{i}: {e}");
                return ExitCode::FAILURE;
            }
        };
        let t1 = Instant::now();
        let fd = match host.add_tun("pht0", 1500, &[(v4, 24), (v6, 64)], &[]) {
            Ok(fd) => fd,
            Err(e) => {
                eprintln!("host_setup: add_tun in host h{i}: {e}");
                return ExitCode::FAILURE;
            }
        };
        let t2 = Instant::now();
        create.push(t1 - t0);
        tun.push(t2 - t1);
        keep.push((host, fd));
    }
    println!(
        "host_setup: {hosts} hosts, each one TUN with an IPv4 and an IPv6 address and both default routes"
    );
    report("HostNs::create", &mut create);
    report("HostNs::add_tun", &mut tun);
    ExitCode::SUCCESS
}

fn report(what: &str, samples: &mut [Duration]) {
    samples.sort_unstable();
    let n = samples.len();
    if n == 0 {
        return;
    }
    let total: Duration = samples.iter().sum();
    let us = |d: Duration| d.as_secs_f64() * 1e6;
    println!(
        "  {what:<16} median {:>8.1} µs  p90 {:>8.1} µs  max {:>8.1} µs  mean {:>8.1} µs",
        us(samples[n / 2]),
        us(samples[n * 9 / 10]),
        us(samples[n - 1]),
        us(total) / n as f64,
    );
}
