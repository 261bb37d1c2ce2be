//! Killing `pinhole run` with SIGKILL in the middle of a kernel-fabric scenario leaves
//! nothing behind: no program it started in a host, no network namespace, no interface
//! in the machine's own namespace.

#![allow(clippy::disallowed_methods)] // waits on real processes, in real time

mod kernel_common;

use kernel_common::required;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

/// Pids whose command line contains `marker`.
fn pids_with(marker: &str) -> Vec<u32> {
    let mut out = Vec::new();
    for e in std::fs::read_dir("/proc").unwrap().flatten() {
        let Ok(pid) = e.file_name().to_string_lossy().parse::<u32>() else {
            continue;
        };
        if let Ok(c) = std::fs::read(format!("/proc/{pid}/cmdline"))
            && String::from_utf8_lossy(&c)
                .replace('\0', " ")
                .contains(marker)
        {
            out.push(pid);
        }
    }
    out
}

fn interfaces() -> Vec<String> {
    let mut v: Vec<String> = std::fs::read_dir("/sys/class/net")
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    v.sort();
    v
}

#[test]
fn sigkill_mid_run_leaves_nothing_behind() {
    // A marker no other process has: a sleep duration unique to this test run.
    let marker = format!("86400.{}", std::process::id());
    let dir = std::env::temp_dir().join(format!("pinhole-kill-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let file = dir.join("kill.yaml");
    std::fs::write(
        &file,
        format!(
            "version: 1\nname: killed mid-run\nfabric: kernel\ntime_limit: 2m\n\
             networks: {{ internet: 203.0.113.0/24, home: 10.0.1.0/24 }}\n\
             nats: {{ nat: {{ inside: home, outside: {{ network: internet, addresses: [203.0.113.11] }} }} }}\n\
             hosts: {{ alice: {{ network: home }}, server: {{ network: internet }} }}\n\
             steps:\n  - run: {{ name: a, on: alice, cmd: [sleep, \"{marker}\"] }}\n\
             \x20 - run: {{ name: b, on: server, cmd: [sleep, \"{marker}\"] }}\n\
             \x20 - wait: 60s\n"
        ),
    )
    .unwrap();
    let before = interfaces();
    let mut pinhole = Command::new(env!("CARGO_BIN_EXE_pinhole"))
        .args(["run", "--no-report"])
        .arg(&file)
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    // Wait until both programs run inside their hosts.
    let t = Instant::now();
    while pids_with(&marker).len() < 2 {
        if let Some(st) = pinhole.try_wait().unwrap() {
            let mut err = String::new();
            std::io::Read::read_to_string(&mut pinhole.stderr.take().unwrap(), &mut err).unwrap();
            assert!(
                st.code() == Some(3) && !required(),
                "pinhole exited early ({st}): {err}"
            );
            eprintln!("skipped: the kernel fabric cannot run here: {err}");
            std::fs::remove_dir_all(&dir).unwrap();
            return;
        }
        assert!(
            t.elapsed() < Duration::from_secs(20),
            "the programs never started"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    let inner = pids_with(&marker);
    eprintln!(
        "programs running in the hosts: {inner:?}; killing pinhole {}",
        pinhole.id()
    );
    pinhole.kill().unwrap(); // SIGKILL
    pinhole.wait().unwrap();
    let t = Instant::now();
    while !pids_with(&marker).is_empty() {
        assert!(
            t.elapsed() < Duration::from_secs(3),
            "programs {inner:?} outlived pinhole: {:?}",
            pids_with(&marker)
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    assert_eq!(
        interfaces(),
        before,
        "interfaces appeared in the machine's namespace"
    );
    let netns = Command::new("ip").args(["netns", "list"]).output();
    if let Ok(o) = netns {
        assert!(
            o.stdout.is_empty(),
            "named network namespaces left: {}",
            String::from_utf8_lossy(&o.stdout)
        );
    }
    std::fs::remove_dir_all(&dir).unwrap();
}
