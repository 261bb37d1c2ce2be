//! The timed event log of a cell: what the NATs, firewalls, links, the engine and every
//! pinhole service did, in scenario time. It is the one source of SIP ladders, NAT binding
//! timelines and "why did this call fail".
//!
//! Each cell's log is written to `events/CELL.jsonl` in the report folder, one [`Event`]
//! per line, in `(t_us, seq)` order. The records are plain data: this crate knows no driver
//! or core type. Drivers record places by id while a cell runs and resolve names only when
//! the log is written (harness `run::events`).
//!
//! What is recorded, and what is summarised instead of recorded packet by packet:
//! - NAT: every mapping created, expired or removed (with how often it was refreshed and
//!   when last), rebound; the first inbound packet a NAT refused per mapping (external
//!   endpoint) and peer, then one [`EventKind::Repeated`] with the count; the mappings
//!   still live when the cell ends ([`EventKind::MappingLive`]).
//! - Drops (links, routing, NATs, firewalls, hosts): the first per place and reason, then a
//!   count.
//! - Firewall: flows created and expired, the first denied packet per flow, then a count.
//! - SIP (the `sip-proxy` service): every message received and sent, with its method or
//!   status, Call-ID, CSeq, the peer's address and, resolved from the NAT mappings of the
//!   log, the host that sent it and the NATs it came through.
//! - STUN, TURN, HTTP proxy: what their cores report ([`EventKind::Service`]).
//!
//! A cell keeps at most its limit of records (default [`DEFAULT_LIMIT`]); what is cut is
//! counted in the last record ([`EventKind::EventsCut`]).

use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// Default bound on the records of one cell.
pub const DEFAULT_LIMIT: usize = 100_000;

/// One thing that happened.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Event {
    /// Scenario time, microseconds from t = 0 (virtual time on the virtual fabric).
    pub t_us: u64,
    /// Order of recording within the cell: simultaneous events keep their order.
    pub seq: u64,
    /// Where: a host, NAT, firewall, network, a link (`alice.up`), a service
    /// (`server/sip-proxy`), or `cell` for the log's own bookkeeping.
    pub place: String,
    /// What, with its details (`"kind": "mapping_created"`, …).
    #[serde(flatten)]
    pub kind: EventKind,
}

/// What happened. Addresses are `ip:port` text, protocols `udp`/`tcp`/`icmp`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
#[non_exhaustive]
pub enum EventKind {
    // ===== NAT =====
    /// A NAT created a mapping (RFC 4787 §4.1).
    MappingCreated {
        /// Protocol.
        proto: String,
        /// Internal endpoint.
        internal: String,
        /// External endpoint it was given.
        external: String,
        /// The remote the creating packet went to.
        remote: String,
    },
    /// A mapping went away.
    MappingExpired {
        /// Protocol.
        proto: String,
        /// Internal endpoint.
        internal: String,
        /// External endpoint it had.
        external: String,
        /// `timeout`, `reboot`, `rebind` (no free port for it) or `renumber`.
        cause: String,
        /// Packets that refreshed it, the creating one included.
        refreshes: u32,
        /// When it was last refreshed, µs.
        last_refresh_us: Option<u64>,
    },
    /// A NAT rebind moved a live mapping to a new external endpoint.
    MappingRebound {
        /// Protocol.
        proto: String,
        /// Internal endpoint.
        internal: String,
        /// The old external endpoint.
        old_external: String,
        /// The new external endpoint.
        new_external: String,
    },
    /// A mapping still live when the cell ended (its refresh summary).
    MappingLive {
        /// Protocol.
        proto: String,
        /// Internal endpoint.
        internal: String,
        /// External endpoint.
        external: String,
        /// Packets that refreshed it, the creating one included.
        refreshes: u32,
        /// When it was last refreshed, µs.
        last_refresh_us: u64,
    },
    /// The first inbound packet a NAT refused towards one external endpoint from one peer
    /// (later ones: [`EventKind::Repeated`]).
    InboundRefused {
        /// `filtered` (a mapping exists, RFC 4787 §5 filtering refused it), `no_mapping`, …
        reason: String,
        /// Protocol.
        proto: String,
        /// The packet's source.
        peer: String,
        /// The external endpoint it was sent to.
        external: String,
    },
    /// The SIP ALG rewrote a packet.
    SipAlg {
        /// What it did, in words.
        action: String,
    },
    // ===== engine, links, firewalls =====
    /// The first packet dropped at a place for a reason (later ones: [`EventKind::Repeated`]).
    Dropped {
        /// Why (`link_loss`, `queue_full`, `filtered`, `no_route`, …).
        reason: String,
    },
    /// A firewall flow started.
    FlowCreated {
        /// Protocol.
        proto: String,
        /// The side that sent first, `outbound` or `inbound`.
        initiator: String,
        /// One endpoint (the initiator's).
        src: String,
        /// The other.
        dst: String,
        /// What allowed it (`class`, `rule 2`, …).
        by: String,
    },
    /// A firewall flow reached its idle timeout.
    FlowExpired {
        /// Protocol.
        proto: String,
        /// One endpoint.
        src: String,
        /// The other.
        dst: String,
    },
    /// The first packet a firewall denied per direction and 5-tuple (later ones:
    /// [`EventKind::Repeated`]).
    Denied {
        /// `outbound` or `inbound`.
        direction: String,
        /// Protocol.
        proto: String,
        /// Source.
        src: String,
        /// Destination.
        dst: String,
        /// What refused it.
        by: String,
    },
    // ===== SIP =====
    /// A SIP message the `sip-proxy` service received or sent.
    Sip {
        /// `received` or `sent`.
        dir: String,
        /// `udp`, `tcp` or `tls`.
        transport: String,
        /// The request line's method and URI, or the status and its CSeq method
        /// (`INVITE sip:bob@…`, `200 OK (INVITE)`).
        summary: String,
        /// Call-ID.
        call_id: String,
        /// CSeq (`1 INVITE`).
        cseq: String,
        /// The proxy's address.
        local: String,
        /// The peer's address as the proxy saw it.
        remote: String,
        /// The host behind `remote`, when the log tells (through NAT mappings).
        peer_host: Option<String>,
        /// The NATs between the proxy and that host, nearest the proxy first.
        via_nats: Vec<String>,
    },
    // ===== other services =====
    /// An event of a STUN, TURN or HTTP proxy service core, or one the SIP proxy reports
    /// besides its messages (registrations, dialogs, drops).
    Service {
        /// `stun`, `turn`, `http-proxy`, `sip-proxy`.
        service: String,
        /// The core's event name (`AllocationCreated`, `BindingRequest`, …).
        event: String,
        /// Its fields, as text.
        detail: BTreeMap<String, String>,
    },
    // ===== bookkeeping =====
    /// The record `first_seq` stood for `count` occurrences in all (it and `count - 1`
    /// more, the last at `last_us`): coalesced drops, refusals and denials.
    Repeated {
        /// The `seq` of the first occurrence's record.
        first_seq: u64,
        /// Occurrences in all.
        count: u64,
        /// When the last one happened, µs.
        last_us: u64,
    },
    /// The cell's limit of records was reached: this many more were not kept.
    EventsCut {
        /// Records not kept.
        count: u64,
    },
}

impl EventKind {
    /// The `kind` tag as written in the JSON (`mapping_created`, …).
    pub fn name(&self) -> &'static str {
        match self {
            EventKind::MappingCreated { .. } => "mapping_created",
            EventKind::MappingExpired { .. } => "mapping_expired",
            EventKind::MappingRebound { .. } => "mapping_rebound",
            EventKind::MappingLive { .. } => "mapping_live",
            EventKind::InboundRefused { .. } => "inbound_refused",
            EventKind::SipAlg { .. } => "sip_alg",
            EventKind::Dropped { .. } => "dropped",
            EventKind::FlowCreated { .. } => "flow_created",
            EventKind::FlowExpired { .. } => "flow_expired",
            EventKind::Denied { .. } => "denied",
            EventKind::Sip { .. } => "sip",
            EventKind::Service { .. } => "service",
            EventKind::Repeated { .. } => "repeated",
            EventKind::EventsCut { .. } => "events_cut",
        }
    }
}

/// The log as JSON lines, one [`Event`] per line.
pub fn to_jsonl(events: &[Event]) -> String {
    let mut out = String::new();
    for e in events {
        // An Event holds only strings, numbers and maps of strings: it always serialises.
        if let Ok(line) = serde_json::to_string(e) {
            out.push_str(&line);
            out.push('\n');
        }
    }
    out
}

/// Parse a log written by [`to_jsonl`].
///
/// # Errors
///
/// The first line that is not an [`Event`], with its 1-based line number.
pub fn from_jsonl(text: &str) -> Result<Vec<Event>, (usize, serde_json::Error)> {
    text.lines()
        .enumerate()
        .filter(|(_, l)| !l.trim().is_empty())
        .map(|(i, l)| serde_json::from_str(l).map_err(|e| (i + 1, e)))
        .collect()
}

/// The file name of a cell's log inside the report folder's `events/`: the cell name
/// with every character outside `[A-Za-z0-9._=,-]` replaced by `_`, then `.jsonl`.
pub fn file_name(cell: &str) -> String {
    let safe: String = cell
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || "._=,-".contains(c) {
                c
            } else {
                '_'
            }
        })
        .collect();
    format!("{safe}.jsonl")
}

#[cfg(test)]
mod test {
    use super::*;

    #[test]
    fn jsonl_round_trip_with_flat_kind_tag() {
        let events = vec![
            Event {
                t_us: 1500,
                seq: 0,
                place: "nat-a".into(),
                kind: EventKind::MappingCreated {
                    proto: "udp".into(),
                    internal: "10.0.1.2:5060".into(),
                    external: "203.0.113.11:5060".into(),
                    remote: "203.0.113.5:5060".into(),
                },
            },
            Event {
                t_us: 1500,
                seq: 1,
                place: "nat-a".into(),
                kind: EventKind::Repeated {
                    first_seq: 0,
                    count: 3,
                    last_us: 9000,
                },
            },
        ];
        let text = to_jsonl(&events);
        let first = text.lines().next().unwrap();
        assert!(
            first.starts_with(r#"{"t_us":1500,"seq":0,"place":"nat-a","kind":"mapping_created""#)
        );
        assert_eq!(from_jsonl(&text).unwrap(), events);
        assert_eq!(events[1].kind.name(), "repeated");
        assert_eq!(from_jsonl("{}\n").unwrap_err().0, 1);
    }

    #[test]
    fn file_names_are_safe() {
        assert_eq!(
            file_name("punch[nat-a.type=full-cone,x=1/2]"),
            "punch_nat-a.type=full-cone,x=1_2_.jsonl"
        );
    }
}
