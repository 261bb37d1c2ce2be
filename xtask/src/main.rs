//! `cargo xtask …`: pinhole's developer and CI entry points.
//!
//! `cargo xtask test` is the one command that passes all tests: it makes sure the real
//! programs the interop tests run against are installed (installing them when run as
//! root, otherwise failing with the exact install line), then runs the whole test suite.
//! [`DEBIAN_PACKAGES`] and [`PYPI_PACKAGES`] are the one place those programs are named.

use std::process::{Command, ExitCode};

/// Debian packages the interop tests need, with a program each provides (to check for it).
/// Grows as interop tests come in (see the issues).
const DEBIAN_PACKAGES: &[(&str, &str)] = &[
    // Decodes every pcap pinhole writes (harness/tests/pcap_tshark.rs).
    ("tshark", "tshark"),
    // RFC 5780 server and classifier: interop/coturn-natdiscovery-*.yaml; TURN client, peer
    // and server: interop/uclient-vs-pinhole-turn.yaml, pinhole-turn-client-vs-coturn.yaml.
    ("coturn", "turnutils_natdiscovery"),
    // A certificate for coturn's TLS listener: interop/pinhole-turn-client-vs-coturn.yaml.
    ("openssl", "openssl"),
    // The RFC 3489 pair: interop/stun-client-presets.yaml.
    ("stun-client", "stun"),
    ("stun-server", "stund"),
    // Small real UDP programs in interop/udp-binding-timeout.yaml.
    ("python3", "python3"),
    // `pinhole bench nat`: Linux's own masquerade in a router namespace, the figure pinhole's
    // NAT is measured against (harness/tests/bench_nat.rs).
    ("nftables", "nft"),
    // SIPp: its own scenario XMLs through pinhole's sip-proxy (interop/sipp-proxy-nat.yaml),
    // its built-in UAC through the SIP ALG (interop/sip-alg-sipp-udp.yaml).
    // `pinhole bench proxy`: SIPp load through Kamailio with its stock configuration
    // (harness/tests/bench_proxy.rs); Kamailio's system service is kept from starting on
    // install by the policy-rc.d in `ensure_deps`.
    ("sip-tester", "sipp"),
    ("kamailio", "kamailio"),
    // `pinhole bench relay --compare`: Debian's rtpengine in userspace (`--table=-1`) driven
    // over its ng port, next to coturn (above) and pinhole's relay
    // (harness/tests/bench_relay.rs); its system service is kept from starting on install
    // by the same policy-rc.d.
    ("rtpengine-daemon", "rtpengine"),
];

/// PyPI packages the interop tests need, with the module to import (to check for it).
const PYPI_PACKAGES: &[(&str, &str)] = &[];

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    match args.first().map(String::as_str) {
        Some("test") => test(&args[1..]),
        Some("deps") => match ensure_deps() {
            Ok(()) => ExitCode::SUCCESS,
            Err(e) => {
                eprintln!("xtask: {e}");
                ExitCode::FAILURE
            }
        },
        Some("-h" | "--help" | "help") | None => {
            println!(
                "usage: cargo xtask <command>\n\n\
                 commands:\n  \
                 test [ARGS…]  install what the interop tests need (as root) and run every test;\n                \
                 ARGS go to `cargo test` (e.g. a test name filter)\n  \
                 deps          only check/install the interop test programs"
            );
            ExitCode::SUCCESS
        }
        Some(other) => {
            eprintln!("xtask: unknown command `{other}`; try `cargo xtask --help`");
            ExitCode::from(2)
        }
    }
}

fn is_root() -> bool {
    Command::new("id")
        .arg("-u")
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).trim() == "0")
        .unwrap_or(false)
}

fn have_program(p: &str) -> bool {
    std::env::var_os("PATH").is_some_and(|paths| {
        std::env::split_paths(&paths).any(|d| d.join(p).is_file())
            || ["/usr/sbin", "/sbin"]
                .iter()
                .any(|d| std::path::Path::new(d).join(p).is_file())
    })
}

fn have_module(m: &str) -> bool {
    Command::new("python3")
        .args(["-c", &format!("import {m}")])
        .status()
        .is_ok_and(|s| s.success())
}

fn run(cmd: &mut Command) -> Result<(), String> {
    eprintln!("xtask: running {cmd:?}");
    let st = cmd
        .status()
        .map_err(|e| format!("cannot run {cmd:?}: {e}"))?;
    if st.success() {
        Ok(())
    } else {
        Err(format!("{cmd:?} failed with {st}"))
    }
}

fn ensure_deps() -> Result<(), String> {
    let missing_deb: Vec<&str> = DEBIAN_PACKAGES
        .iter()
        .filter(|(_, prog)| !have_program(prog))
        .map(|(pkg, _)| *pkg)
        .collect();
    let missing_py: Vec<&str> = PYPI_PACKAGES
        .iter()
        .filter(|(_, module)| !have_module(module))
        .map(|(pkg, _)| *pkg)
        .collect();
    if missing_deb.is_empty() && missing_py.is_empty() {
        return Ok(());
    }
    let apt_line = format!(
        "apt-get update && DEBIAN_FRONTEND=noninteractive apt-get install -y {}",
        missing_deb.join(" ")
    );
    let pip_line = format!("python3 -m pip install {}", missing_py.join(" "));
    if !is_root() {
        let mut msg =
            String::from("the interop tests need programs that are not installed; as root run:\n");
        if !missing_deb.is_empty() {
            msg += &format!("  {apt_line}\n");
        }
        if !missing_py.is_empty() {
            msg += &format!("  {pip_line}\n");
        }
        return Err(msg);
    }
    if !missing_deb.is_empty() {
        // Servers (coturn, kamailio, rtpengine) must not start as system services.
        let policy = std::path::Path::new("/usr/sbin/policy-rc.d");
        let had_policy = policy.exists();
        if !had_policy {
            std::fs::write(policy, "#!/bin/sh\nexit 101\n").map_err(|e| e.to_string())?;
            let _ = Command::new("chmod")
                .args(["+x", "/usr/sbin/policy-rc.d"])
                .status();
        }
        let r = run(Command::new("apt-get").arg("update")).and_then(|()| {
            run(Command::new("apt-get")
                .env("DEBIAN_FRONTEND", "noninteractive")
                .args(["install", "-y", "--no-install-recommends"])
                .args(&missing_deb))
        });
        if !had_policy {
            let _ = std::fs::remove_file(policy);
        }
        r?;
    }
    if !missing_py.is_empty() {
        run(Command::new("python3")
            .args(["-m", "pip", "install", "--quiet"])
            .args(&missing_py))?;
    }
    Ok(())
}

fn test(extra: &[String]) -> ExitCode {
    if let Err(e) = ensure_deps() {
        eprintln!("xtask: {e}");
        return ExitCode::FAILURE;
    }
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    // One build of the workspace in the test profile (optimised, see Cargo.toml): every
    // unit, integration and scenario test (benchmarks run once each, as tests), then the
    // documentation examples.
    for args in [
        &["test", "--workspace", "--all-targets"][..],
        &["test", "--workspace", "--doc"][..],
    ] {
        let st = Command::new(&cargo).args(args).args(extra).status();
        match st {
            Ok(s) if s.success() => {}
            Ok(_) => return ExitCode::FAILURE,
            Err(e) => {
                eprintln!("xtask: cannot run cargo: {e}");
                return ExitCode::FAILURE;
            }
        }
    }
    ExitCode::SUCCESS
}
