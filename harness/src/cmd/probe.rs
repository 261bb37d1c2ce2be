//! `pinhole probe SERVER[:PORT]`: classify the NAT in front of this machine with the RFC
//! 5780 tests against a STUN server that has an alternate address (coturn with two
//! listening addresses, or pinhole's `stun` service), and write what it found as a NAT
//! profile that a scenario replays with `nats.NAME.profile: FILE`.
//!
//! It runs in the namespace it is started in (a customer's network, or a host of a
//! pinhole topology); it never enters pinhole's sandbox, which has no network of its own.

use crate::agents::os::{OsNet, run_until};
use crate::agents::steps::probe::Probe;
use anyhow::{Context, Result, anyhow};
use relay::stun::{Behavior, ProbeReport, ProberConfig, Tests};
use std::net::{SocketAddr, ToSocketAddrs, UdpSocket};
use std::path::Path;
use std::time::{Duration, Instant};

/// Options of `pinhole probe`.
#[derive(Clone, Debug)]
pub struct ProbeOptions {
    /// `HOST[:PORT]` of the STUN server (port 3478 by default).
    pub server: String,
    /// Where to write the profile (`-` for stdout).
    pub out: Option<String>,
    /// Also search the UDP binding lifetime (RFC 5780 §4.6), up to this long.
    pub lifetime_max: Option<Duration>,
}

/// `YYYY-MM-DDTHH:MM:SSZ` for a Unix time (proleptic Gregorian, UTC).
fn utc(secs: u64) -> String {
    let days = (secs / 86_400) as i64;
    let rem = secs % 86_400;
    // Days since 1970-01-01 to a civil date (Howard Hinnant's algorithm).
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + i64::from(m <= 2);
    format!(
        "{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}Z",
        rem / 3600,
        rem / 60 % 60,
        rem % 60
    )
}

/// The profile YAML for a probe report.
pub fn profile_yaml(server: SocketAddr, report: &ProbeReport, recorded_at: &str) -> Option<String> {
    let mapping = report.mapping?;
    let filtering = report.filtering?;
    let mut s = String::from(
        "# A NAT profile recorded by `pinhole probe`; replay it with `nats.NAME.profile: FILE`.\n",
    );
    s.push_str("name: probed NAT\n");
    s.push_str(&format!(
        "description: the NAT between {} and the STUN server {server}, as RFC 5780 saw it\n",
        report
            .mapped
            .map(|m| format!("this machine (mapped to {m})"))
            .unwrap_or_else(|| "this machine".into())
    ));
    s.push_str(&format!(
        "recorded: \"{recorded_at} by pinhole probe {} against {server}\"\n",
        env!("CARGO_PKG_VERSION")
    ));
    s.push_str(&format!("mapping: {}\n", mapping.as_str()));
    s.push_str(&format!("filtering: {}\n", filtering.as_str()));
    if let Some(h) = report.hairpinning {
        s.push_str(&format!("hairpinning: {h}\n"));
    }
    if let Some(a) = report.port_allocation {
        s.push_str(&format!("port_allocation: {}\n", a.as_str()));
    }
    if let Some(p) = report.port_parity {
        s.push_str(&format!("port_parity: {p}\n"));
    }
    if let Some(l) = report.binding_lifetime {
        s.push_str(&format!(
            "timeouts: {{ udp: {} }}   # lower bound of the search\n",
            crate::scenario::values::format_duration(Duration::from_secs(l.as_secs().max(1)))
        ));
    }
    Some(s)
}

/// Run `pinhole probe`; returns the exit code.
pub fn probe(opts: &ProbeOptions) -> Result<u8> {
    let with_port = if opts
        .server
        .rsplit_once(':')
        .is_some_and(|(_, p)| p.parse::<u16>().is_ok())
        && !opts.server.ends_with(']')
    {
        opts.server.clone()
    } else {
        format!("{}:3478", opts.server)
    };
    let server = with_port
        .to_socket_addrs()
        .with_context(|| format!("cannot resolve `{}`", opts.server))?
        .next()
        .ok_or_else(|| anyhow!("`{}` has no address", opts.server))?;
    // The local address that routes to the server (connecting a UDP socket sends nothing).
    let route = UdpSocket::bind(if server.is_ipv4() {
        "0.0.0.0:0"
    } else {
        "[::]:0"
    })
    .and_then(|s| s.connect(server).map(|()| s))
    .and_then(|s| s.local_addr())
    .with_context(|| format!("no route to {server}"))?;
    let mut config = ProberConfig::new(server);
    config.tests = Tests {
        mapping: true,
        filtering: true,
        hairpinning: true,
        lifetime: opts.lifetime_max,
        port_allocation: true,
    };
    let mut net = OsNet::new(vec![vec![route.ip()]])?;
    #[allow(clippy::disallowed_methods)] // a command-line driver: the real clock
    let (start, seed) = (
        Instant::now(),
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_nanos() as u64)
            .unwrap_or(0),
    );
    let limit = config.negative_test_duration() * 8
        + opts.lifetime_max.map(|m| m * 8).unwrap_or_default()
        + Duration::from_secs(5);
    eprintln!(
        "pinhole probe: RFC 5780 tests from {} against {server}{}",
        route.ip(),
        match opts.lifetime_max {
            Some(m) => format!(
                ", with the binding lifetime search up to {} (this takes several times that)",
                crate::scenario::values::format_duration(m)
            ),
            None => String::new(),
        }
    );
    let mut p = Probe::start(&mut net, 0, config, seed).map_err(|e| anyhow!("{e}"))?;
    let done = run_until(&mut net, &mut [&mut p], start + limit);
    let Some(report) = p.report().cloned().filter(|_| done) else {
        eprintln!("pinhole probe: no result within {limit:?}");
        return Ok(crate::cli::EXIT_FAIL);
    };
    for e in &report.errors {
        eprintln!("pinhole probe: {e}");
    }
    let show = |b: Option<Behavior>| b.map(Behavior::as_str).unwrap_or("unknown");
    eprintln!(
        "  mapped address:  {}",
        report
            .mapped
            .map(|a| a.to_string())
            .unwrap_or_else(|| "none".into())
    );
    eprintln!(
        "  NAT:             {}",
        match report.nat_detected {
            Some(true) => "yes",
            Some(false) => "no (the mapped address is this machine's own)",
            None => "unknown",
        }
    );
    eprintln!("  mapping:         {}", show(report.mapping));
    eprintln!("  filtering:       {}", show(report.filtering));
    eprintln!(
        "  hairpinning:     {}",
        report
            .hairpinning
            .map(|h| h.to_string())
            .unwrap_or_else(|| "unknown".into())
    );
    eprintln!(
        "  port allocation: {}{}",
        report
            .port_allocation
            .map(|a| a.as_str())
            .unwrap_or("unknown"),
        match report.port_parity {
            Some(true) => ", keeps parity",
            Some(false) => ", ignores parity",
            None => "",
        }
    );
    if let Some(l) = report.binding_lifetime {
        eprintln!("  binding lifetime: at least {l:?}");
    }
    if report.nat_detected == Some(false) {
        eprintln!("pinhole probe: there is no NAT to record; no profile written");
        return Ok(crate::cli::EXIT_PASS);
    }
    #[allow(clippy::disallowed_methods)] // the recording's wall-clock date
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0);
    let Some(yaml) = profile_yaml(server, &report, &utc(now)) else {
        eprintln!("pinhole probe: mapping or filtering unknown; no profile written");
        return Ok(crate::cli::EXIT_FAIL);
    };
    match opts.out.as_deref() {
        Some("-") => print!("{yaml}"),
        Some(path) => {
            std::fs::write(Path::new(path), &yaml).with_context(|| format!("write {path}"))?;
            eprintln!("pinhole probe: profile written to {path}");
        }
        None => {
            eprintln!("pinhole probe: profile (save it with --out FILE):");
            print!("{yaml}");
        }
    }
    Ok(crate::cli::EXIT_PASS)
}

#[cfg(test)]
mod test {
    use super::*;

    #[test]
    fn utc_dates() {
        assert_eq!(utc(0), "1970-01-01T00:00:00Z");
        assert_eq!(utc(951_782_400), "2000-02-29T00:00:00Z");
        assert_eq!(utc(1_795_437_296), "2026-11-23T12:34:56Z");
    }

    #[test]
    fn profile_parses_as_a_nat_profile() {
        let mut report = ProbeReport::default();
        report.mapped = Some("203.0.113.11:4000".parse().unwrap());
        report.nat_detected = Some(true);
        report.mapping = Some(Behavior::AddressDependent);
        report.filtering = Some(Behavior::AddressAndPortDependent);
        report.hairpinning = Some(false);
        report.port_allocation = Some(relay::stun::PortAllocation::Sequential);
        report.port_parity = Some(true);
        report.binding_lifetime = Some(Duration::from_millis(29_400));
        let yaml = profile_yaml(
            "203.0.113.5:3478".parse().unwrap(),
            &report,
            "2026-11-23T00:00:00Z",
        )
        .unwrap();
        let dir = std::env::temp_dir().join(format!("pinhole-profile-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(dir.join("p.yaml"), &yaml).unwrap();
        let scenario = "version: 1\nname: t\nfabric: virtual\nnetworks: { internet: 203.0.113.0/24, home: 10.0.1.0/24 }\n\
             nats: { nat: { inside: home, outside: { network: internet }, profile: p.yaml } }\n";
        let s = crate::scenario::load_str(scenario, dir.join("s.yaml")).unwrap();
        let n = s.spec.topology.nat("nat").unwrap();
        assert_eq!(n.config.mapping.as_str(), "address-dependent");
        assert_eq!(n.config.filtering.as_str(), "address-and-port-dependent");
        assert!(!n.config.hairpinning);
        assert_eq!(n.config.port_allocation.as_str(), "sequential");
        assert!(n.config.port_parity);
        assert_eq!(n.config.timeouts.udp, Duration::from_secs(29));
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
