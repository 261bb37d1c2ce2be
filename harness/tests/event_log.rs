//! The per-cell event log (report folder `events/`): bounded however many packets cross a
//! NAT, and present for punch and probe scenarios. (SIP ordering through the proxy with
//! real SIPp is checked in `kernel_scenarios.rs`.)

use emulator::fabric::sim::Sim;
use harness::cli::{self, RunOptions};
use harness::run::events::Recorder;
use reports::events::{Event, EventKind, from_jsonl};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

const NAT_SCENARIO: &str = r#"
version: 1
name: one nat
fabric: virtual
networks: { internet: 203.0.113.0/24, home: 10.0.1.0/24 }
nats:
  nat-a: { inside: home, outside: { network: internet, addresses: [203.0.113.11] }, type: port-restricted }
hosts:
  alice: { network: home }
  server: { network: internet, address: 203.0.113.5 }
"#;

/// 1,000 datagrams out through a NAT and 1,000 unsolicited ones in from another port give
/// a handful of records: one mapping, one refusal with its count, one drop with its count,
/// and the mapping's refresh summary — never a record per packet.
#[test]
fn a_thousand_packet_flow_through_a_nat_gives_a_bounded_log() {
    let s = harness::scenario::load_str(NAT_SCENARIO, "nat.yaml").unwrap();
    let cell = s.cells().unwrap().remove(0);
    let topo = harness::convert::topology(&cell.spec).unwrap();
    #[allow(clippy::disallowed_methods)] // the virtual clock's origin
    let t0 = Instant::now();
    let mut sim = Sim::new(topo, 1, t0).unwrap();
    let (alice, server) = (
        sim.topology().host_id("alice").unwrap(),
        sim.topology().host_id("server").unwrap(),
    );
    let (a, _) = sim.udp_bind(alice, None, 5000).unwrap();
    let (srv, _) = sim.udp_bind(server, None, 3478).unwrap();
    let (spray, _) = sim.udp_bind(server, None, 9999).unwrap();
    let to_server = "203.0.113.5:3478".parse().unwrap();
    let mut rec = Recorder::new(t0, reports::events::DEFAULT_LIMIT);
    let mut external = None;
    for i in 0..1000u64 {
        sim.udp_send(a, to_server, None, b"ping").unwrap();
        sim.advance(t0 + Duration::from_millis(i * 10 + 5));
        sim.flush();
        while let Some((from, _, _)) = sim.udp_recv(srv) {
            external = Some(from);
        }
        if let Some(ext) = external {
            sim.udp_send(spray, ext, None, b"unsolicited").unwrap();
        }
        sim.advance(t0 + Duration::from_millis(i * 10 + 10));
        sim.flush();
        while let Some((t, e)) = sim.poll_event() {
            rec.engine(t, e);
        }
    }
    assert!(
        sim.udp_recv(a).is_none(),
        "the NAT let a sprayed datagram in"
    );
    let live = vec![sim.nat(0).mappings()];
    let events = rec.finish(sim.topology(), sim.now(), &live);
    let kinds: Vec<&str> = events.iter().map(|e| e.kind.name()).collect();
    assert!(events.len() <= 8, "{} records: {kinds:?}", events.len());
    let created = events
        .iter()
        .filter(|e| matches!(e.kind, EventKind::MappingCreated { .. }))
        .count();
    assert_eq!(created, 1, "{kinds:?}");
    let live_refreshes: Vec<u32> = events
        .iter()
        .filter_map(|e| match e.kind {
            EventKind::MappingLive { refreshes, .. } => Some(refreshes),
            _ => None,
        })
        .collect();
    assert_eq!(live_refreshes, vec![1000]);
    let refused = events
        .iter()
        .find(|e| matches!(e.kind, EventKind::InboundRefused { .. }))
        .expect("the first refused datagram is recorded");
    let counted = events.iter().any(|e| {
        matches!(e.kind, EventKind::Repeated { first_seq, count, .. }
            if first_seq == refused.seq && count >= 999)
    });
    assert!(counted, "{events:?}");
}

fn run_virtual(file: &str, dir: &Path) -> reports::Report {
    let opts = RunOptions {
        fabric: None,
        report: Some(dir.to_path_buf()),
        jobs: 2,
        shard: None,
        json: false,
        quiet: true,
        pcap: None,
        events_limit: None,
    };
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../scenarios")
        .join(file);
    assert_eq!(cli::run(&[path], &opts).unwrap(), cli::EXIT_PASS);
    let text = std::fs::read_to_string(dir.join("report.json")).unwrap();
    serde_json::from_str(&text).unwrap()
}

fn cell_log(dir: &Path, report: &reports::Report, cell: &str) -> Vec<Event> {
    let c = report
        .scenarios
        .iter()
        .flat_map(|s| &s.cells)
        .find(|c| c.name.contains(cell))
        .unwrap_or_else(|| panic!("no cell named like {cell}"));
    let rel = c.events_file.as_ref().expect("the cell has an event log");
    let events = from_jsonl(&std::fs::read_to_string(dir.join(rel)).unwrap()).unwrap();
    assert_eq!(events.len() as u64, c.event_count);
    assert!(
        events
            .windows(2)
            .all(|w| (w[0].t_us, w[0].seq) < (w[1].t_us, w[1].seq) && w[0].seq + 1 == w[1].seq),
        "records are in (t_us, seq) order, seq counting from 0"
    );
    events
}

fn tmp(name: &str) -> PathBuf {
    std::env::temp_dir().join(format!("pinhole-events-{name}-{}", std::process::id()))
}

/// A punch between two port-restricted NATs: each NAT maps its peer's punch socket, and
/// the mapping towards the rendezvous comes before the first refused or passed probe.
#[test]
fn punch_cells_log_both_nats_mappings() {
    let dir = tmp("punch");
    let report = run_virtual("punch-udp-presets.yaml", &dir);
    let events = cell_log(
        &dir,
        &report,
        "nat-a.type=port-restricted,nat-b.type=port-restricted",
    );
    for nat in ["nat-a", "nat-b"] {
        let first = events
            .iter()
            .find(|e| e.place == nat)
            .unwrap_or_else(|| panic!("no record at {nat}: {events:?}"));
        assert_eq!(first.kind.name(), "mapping_created", "{first:?}");
        assert!(
            events
                .iter()
                .any(|e| e.place == nat && e.kind.name() == "mapping_live"),
            "{nat}'s mappings are summarised at the end"
        );
    }
    std::fs::remove_dir_all(&dir).unwrap();
}

/// An RFC 5780 probe: the STUN service logs the Binding requests it answered, the "change
/// IP and port" test answered from the alternate address.
#[test]
fn probe_cells_log_the_stun_service() {
    let dir = tmp("probe");
    let report = run_virtual("probe-presets.yaml", &dir);
    let events = cell_log(&dir, &report, "symmetric");
    let answered: Vec<_> = events
        .iter()
        .filter_map(|e| match &e.kind {
            EventKind::Service { event, detail, .. } if event == "binding_request" => {
                Some((e.place.as_str(), detail))
            }
            _ => None,
        })
        .collect();
    assert!(answered.len() >= 3, "{events:?}");
    assert!(answered.iter().all(|(p, _)| p.ends_with("/stun")));
    assert!(
        answered
            .iter()
            .any(|(_, d)| d["change_ip"] == "true" && d["responded_from"] != d["local"]),
        "{answered:?}"
    );
    // The symmetric NAT gives the probe one mapping per destination.
    let mappings = events
        .iter()
        .filter(|e| e.kind.name() == "mapping_created")
        .count();
    assert!(mappings >= 2, "{events:?}");
    std::fs::remove_dir_all(&dir).unwrap();
}
