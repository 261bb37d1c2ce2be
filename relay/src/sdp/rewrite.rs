//! The offer/answer rewrite that puts a media relay between two endpoints (the
//! MediaProxy/rtpengine model): for each `m=` stream the proxy asks a [`MediaControl`] for
//! the relay's address:port, and writes it where the endpoint's own address was — the
//! effective `c=` (RFC 8866 §5.7), the `m=` port (§5.14) and `a=rtcp` (RFC 3605) — then
//! applies the [`IcePolicy`] of the `sip-proxy.ice` scenario key.
//!
//! The rewrite is all-or-nothing on the description: every stream is asked for first, and
//! the SDP is changed only when all answers are in (an error leaves it untouched; streams
//! the relay already allocated are the relay's to release). Streams that carry no media
//! to relay are left alone and reported ([`SkipReason`]).
//!
//! BUNDLE (RFC 9143): streams sharing one transport (same port in every `m=`) are still
//! asked for one by one, so a relay that allocates per stream un-bundles them; a relay
//! that supports BUNDLE must return the same endpoint for every stream of the group.
//!
//! What is never changed: `o=` (the origin identifies the session and its version; the
//! endpoint's own versioning stays consistent across re-offers when every version goes
//! through the same rewrite), directions, formats, and every line the rules below do not
//! name.

use super::fields::{Connection, HoldKind, MediaDirection, candidate_foundation_component};
use super::session::{Line, Media, Sdp};
use std::net::{IpAddr, SocketAddr};

/// Identifies a call's media session towards the relay (RFC 3261 §12: a dialog is
/// Call-ID + the two tags). The callee's tag is unknown while the first offer travels.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct SessionKey<'a> {
    /// The Call-ID header value.
    pub call_id: &'a str,
    /// The From tag (the caller's).
    pub from_tag: &'a str,
    /// The To tag (the callee's), once known.
    pub to_tag: Option<&'a str>,
}

/// Which side of the call wrote the description being rewritten: the relay keeps one port
/// pair per stream per side, and this says whose media the rewritten address will receive.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Party {
    /// The party that sent the initial INVITE (From side).
    Caller,
    /// The party it called (To side).
    Callee,
}

/// Offer or answer (RFC 3264 §5, §6).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Role {
    /// An offer (INVITE, re-INVITE, UPDATE, or a 200 to an offerless INVITE).
    Offer,
    /// The answer to it.
    Answer,
}

/// What to do with ICE attributes (RFC 8839) when the media goes through the relay: the
/// `sip-proxy.ice` scenario key.
///
/// The problem it addresses: once `c=`/`m=` point at the relay, the default candidate no
/// longer matches any `a=candidate`, and an RFC 8445 agent that sees this answers with
/// `a=ice-mismatch` (RFC 8839 §4.4.1.1) and drops ICE — or, with a candidate list that
/// still names the endpoints' own addresses, connects directly around the relay.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum IcePolicy {
    /// `add-relay-candidate`: in every relayed stream that uses ICE (it has `a=candidate`
    /// lines, or ICE credentials at media or session level), add one `typ relay`
    /// candidate per component for the relay's address:port (component 1 RTP, component 2
    /// RTCP unless `a=rtcp-mux`) with `raddr`/`rport` the endpoint's original address:port,
    /// priority by RFC 8445 §5.1.2.1 ([`relay_candidate_priority`]) and a foundation of its
    /// own. They go after the stream's last candidate (before `a=end-of-candidates`). The
    /// default candidate then matches a candidate, ICE runs, and the relay candidate is the
    /// fallback when direct pairs fail. Streams over TCP get none.
    AddRelayCandidate,
    /// `strip`: remove every ICE attribute (`candidate`, `remote-candidates`,
    /// `end-of-candidates`, `ice-ufrag`, `ice-pwd`, `ice-options`, `ice-lite`,
    /// `ice-mismatch`, `ice-pacing`) at session level and in every stream, relayed or not,
    /// so both endpoints fall back to plain offer/answer media through the relay.
    Strip,
    /// `passthrough`: leave ICE attributes exactly as they are (to show the ICE mismatch
    /// problem, or for endpoints that reach each other without the relay).
    Passthrough,
}

impl IcePolicy {
    /// The scenario keywords, in the order SCENARIO-FORMAT.md lists them.
    pub const VALUES: &'static [&'static str] = &["add-relay-candidate", "strip", "passthrough"];

    /// The policy a scenario keyword names.
    pub fn from_keyword(s: &str) -> Option<IcePolicy> {
        match s {
            "add-relay-candidate" => Some(IcePolicy::AddRelayCandidate),
            "strip" => Some(IcePolicy::Strip),
            "passthrough" => Some(IcePolicy::Passthrough),
            _ => None,
        }
    }

    /// The scenario keyword.
    pub fn as_str(self) -> &'static str {
        match self {
            IcePolicy::AddRelayCandidate => "add-relay-candidate",
            IcePolicy::Strip => "strip",
            IcePolicy::Passthrough => "passthrough",
        }
    }
}

impl std::fmt::Display for IcePolicy {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// What the relay is asked for one stream: where this party receives (its original
/// address:ports), and everything the relay needs to key and shape the stream.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StreamRequest<'a> {
    /// The call.
    pub session: SessionKey<'a>,
    /// Who wrote this description.
    pub party: Party,
    /// Offer or answer.
    pub role: Role,
    /// The stream's position among the `m=` lines (0-based); offer and answer pair
    /// streams by position (RFC 3264 §6).
    pub index: usize,
    /// `audio`, `video`, `application`, …
    pub media: &'a str,
    /// The `m=` proto (`RTP/AVP`, `UDP/TLS/RTP/SAVPF`, …).
    pub proto: &'a str,
    /// Where the party receives RTP: effective `c=` address, `m=` port.
    pub rtp: SocketAddr,
    /// Where it receives RTCP: `a=rtcp` (port, and address when given), else the RTP
    /// address with port + 1 (RFC 3550 §11), or the RTP port with `a=rtcp-mux`.
    pub rtcp: SocketAddr,
    /// `a=rtcp-mux` (RFC 5761): RTP and RTCP on one port.
    pub rtcp_mux: bool,
    /// The effective direction.
    pub direction: MediaDirection,
    /// `Some(SendOnly)` for a stream put on hold that may still carry media (music on
    /// hold); the other hold forms are never requested ([`SkipReason::Held`]).
    pub hold: Option<HoldKind>,
}

/// The relay's answer for one stream: the address:ports the *other* party must send to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct RelayEndpoint {
    /// Where to send RTP.
    pub rtp: SocketAddr,
    /// Where to send RTCP (equal to `rtp` under rtcp-mux).
    pub rtcp: SocketAddr,
}

/// A media relay, as the SDP rewrite sees it. A MediaProxy-style relay implements it by
/// allocating (or finding, for re-offers and answers) a port pair keyed by call-id,
/// from-tag/to-tag, [`Party`] and stream index, and remembering `rtp`/`rtcp` of the request
/// as where that party receives.
pub trait MediaControl {
    /// Why the relay could not serve a stream (no ports left, unknown session, …).
    type Error: std::error::Error + 'static;

    /// Serve one stream; called once per relayed stream, in `m=` order, before the
    /// description is changed.
    fn relay_stream(&mut self, request: &StreamRequest<'_>) -> Result<RelayEndpoint, Self::Error>;

    /// The call is over: release everything allocated for `session` (all parties, all
    /// streams). Called once when the session ends — BYE (RFC 3261 §15.1), the INVITE
    /// cancelled (§9) or failed with a final non-2xx response (§13.2.2.3), no final
    /// response before Timer B (§17.1.1.2), the dialog idle past the proxy's dialog
    /// timeout — and after a refused offer, for streams the relay allocated before it
    /// refused. `to_tag` is the callee's tag when one was seen; a relay keys its sessions by
    /// Call-ID and From tag and must release them whatever `to_tag` says. Releasing an
    /// unknown session is not an error.
    fn end_session(&mut self, session: SessionKey<'_>);
}

/// Why a stream was left as it was.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum SkipReason {
    /// Port 0: rejected or disabled (RFC 3264 §6, §8.2).
    Disabled,
    /// On hold with no media to carry: `a=inactive`, or `c=` 0.0.0.0 (RFC 3264 §8.4). A
    /// trickle-ICE placeholder (RFC 8840 §5.2: port 9, `c=` 0.0.0.0) looks the same.
    Held(HoldKind),
    /// No `c=` applies to it (invalid per RFC 8866 §5.7).
    NoAddress,
    /// Its `c=` is a name, not an address literal.
    Unresolved,
    /// Its `c=` is a multicast address, or it has a TTL/count: not relayed.
    Multicast,
    /// Its `m=` has a port count (layered encoding, RFC 8866 §5.14): not relayed.
    PortCount,
    /// It carries media, but a relay asked over ng returned it as the endpoint wrote it
    /// (the proxy reads the report from the two descriptions; never from
    /// [`rewrite_offer`]/[`rewrite_answer`]).
    LeftByRelay,
}

/// What happened to one stream.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StreamOutcome {
    /// Rewritten to the relay.
    Relayed {
        /// Stream index.
        index: usize,
        /// Where the party receives RTP (before the rewrite).
        original_rtp: SocketAddr,
        /// Where the party receives RTCP (before the rewrite).
        original_rtcp: SocketAddr,
        /// What was written.
        relay: RelayEndpoint,
        /// `Some(SendOnly)` when the stream is on hold but still relayed.
        hold: Option<HoldKind>,
        /// Relay candidates added ([`IcePolicy::AddRelayCandidate`]).
        candidates_added: usize,
    },
    /// Left alone.
    Skipped {
        /// Stream index.
        index: usize,
        /// Why.
        reason: SkipReason,
    },
}

/// The typed result of a rewrite.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct RewriteReport {
    /// One entry per `m=` line, in order.
    pub streams: Vec<StreamOutcome>,
    /// ICE attribute lines removed ([`IcePolicy::Strip`]).
    pub ice_lines_removed: usize,
}

impl RewriteReport {
    /// Indices of the relayed streams.
    pub fn relayed(&self) -> Vec<usize> {
        self.streams
            .iter()
            .filter_map(|s| match s {
                StreamOutcome::Relayed { index, .. } => Some(*index),
                StreamOutcome::Skipped { .. } => None,
            })
            .collect()
    }

    /// Indices of the streams on hold (relayed `sendonly` ones and skipped held ones).
    pub fn held(&self) -> Vec<usize> {
        self.streams
            .iter()
            .filter_map(|s| match s {
                StreamOutcome::Relayed {
                    index,
                    hold: Some(_),
                    ..
                }
                | StreamOutcome::Skipped {
                    index,
                    reason: SkipReason::Held(_),
                } => Some(*index),
                _ => None,
            })
            .collect()
    }
}

/// The relay refused a stream; the description was not changed.
#[derive(Debug, thiserror::Error)]
#[error("media relay refused stream {index}: {source}")]
pub struct RewriteError<E: std::error::Error + 'static> {
    /// The stream.
    pub index: usize,
    /// The relay's error.
    #[source]
    pub source: E,
}

/// Where the relay candidate of [`IcePolicy::AddRelayCandidate`] ranks among an
/// endpoint's candidates (the `sip-proxy.ice_priority` scenario key, ng's pinhole
/// extension `ice-priority`).
///
/// RFC 8445 §5.1.2.1: priority = 2²⁴·type preference + 2⁸·local preference + (256 −
/// component). The RFC recommends type preference 0 for relayed candidates, so they are
/// tried last and chosen only when no direct pair works ([`IcePriority::Lowest`], the
/// default). [`IcePriority::Highest`] gives the relay candidate type preference 126, the
/// value the RFC recommends for host candidates, so that it ranks with the best and ICE
/// nominates the relayed pair when it works — for deployments that want media through
/// the relay whatever ICE could find (accounting, lawful recording, a stable path).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum IcePriority {
    /// `lowest`: type preference 0 (RFC 8445 §5.1.2.2's value for relayed candidates).
    #[default]
    Lowest,
    /// `highest`: type preference 126 (the host value of §5.1.2.2).
    Highest,
}

impl std::fmt::Display for IcePriority {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

impl IcePriority {
    /// The scenario/ng keywords.
    pub const VALUES: &'static [&'static str] = &["lowest", "highest"];

    /// The policy a keyword names.
    pub fn from_keyword(s: &str) -> Option<IcePriority> {
        match s {
            "lowest" => Some(IcePriority::Lowest),
            "highest" => Some(IcePriority::Highest),
            _ => None,
        }
    }

    /// The keyword.
    pub fn as_str(self) -> &'static str {
        match self {
            IcePriority::Lowest => "lowest",
            IcePriority::Highest => "highest",
        }
    }

    /// The RFC 8445 §5.1.2.1 type preference: 0 or 126.
    pub fn type_preference(self) -> u32 {
        match self {
            IcePriority::Lowest => 0,
            IcePriority::Highest => 126,
        }
    }
}

/// RFC 8445 §5.1.2.1 priority of a relayed candidate: type preference 0 (relayed, the
/// RFC's recommendation), local preference 65535 (one relay address), component 1 or 2.
pub fn relay_candidate_priority(component: u16) -> u32 {
    relay_candidate_priority_with(IcePriority::Lowest, component)
}

/// RFC 8445 §5.1.2.1 priority of the relay candidate under `priority` (type preference 0
/// or 126, local preference 65535, component 1 or 2).
pub fn relay_candidate_priority_with(priority: IcePriority, component: u16) -> u32 {
    let local_pref: u32 = 65_535;
    (priority.type_preference() << 24)
        + (local_pref << 8)
        + (256 - u32::from(component.clamp(1, 256)))
}

/// Rewrites an offer written by `party` (see the module docs).
pub fn rewrite_offer<M: MediaControl>(
    sdp: &mut Sdp,
    session: SessionKey<'_>,
    party: Party,
    ice: IcePolicy,
    control: &mut M,
) -> Result<RewriteReport, RewriteError<M::Error>> {
    rewrite(
        sdp,
        session,
        party,
        Role::Offer,
        ice,
        IcePriority::Lowest,
        control,
    )
}

/// Rewrites an answer written by `party` (see the module docs).
pub fn rewrite_answer<M: MediaControl>(
    sdp: &mut Sdp,
    session: SessionKey<'_>,
    party: Party,
    ice: IcePolicy,
    control: &mut M,
) -> Result<RewriteReport, RewriteError<M::Error>> {
    rewrite(
        sdp,
        session,
        party,
        Role::Answer,
        ice,
        IcePriority::Lowest,
        control,
    )
}

/// [`rewrite_offer`]/[`rewrite_answer`] with the relay candidate's [`IcePriority`] (the
/// two keep the RFC's [`IcePriority::Lowest`]).
pub fn rewrite_with<M: MediaControl>(
    sdp: &mut Sdp,
    session: SessionKey<'_>,
    party: Party,
    role: Role,
    ice: IcePolicy,
    priority: IcePriority,
    control: &mut M,
) -> Result<RewriteReport, RewriteError<M::Error>> {
    rewrite(sdp, session, party, role, ice, priority, control)
}

struct Plan {
    original_rtp: SocketAddr,
    original_rtcp: SocketAddr,
    relay: RelayEndpoint,
    hold: Option<HoldKind>,
    rtcp_mux: bool,
}

/// Where stream `index` receives (RTP, RTCP) and its hold form, or why it carries no
/// media to relay (the rules of the module docs). Also read by the proxy, which sees the
/// description before and after an ng relay's rewrite.
pub(crate) fn stream_endpoint(
    sdp: &Sdp,
    index: usize,
) -> Result<(SocketAddr, SocketAddr, Option<HoldKind>), SkipReason> {
    let media = &sdp.media()[index];
    let m = media.media_line();
    if m.port == 0 {
        return Err(SkipReason::Disabled);
    }
    let hold = sdp.hold(index);
    if let Some(h @ (HoldKind::Inactive | HoldKind::UnspecifiedAddress)) = hold {
        return Err(SkipReason::Held(h));
    }
    if m.port_count.is_some() {
        return Err(SkipReason::PortCount);
    }
    let conn = sdp
        .effective_connection(index)
        .ok_or(SkipReason::NoAddress)?;
    let ip = conn.ip().ok_or(SkipReason::Unresolved)?;
    if ip.is_multicast() || conn.ttl.is_some() || conn.count.is_some() {
        return Err(SkipReason::Multicast);
    }
    let rtp = SocketAddr::new(ip, m.port);
    let rtcp = match media.rtcp() {
        Some(r) => {
            let rip = r.connection.as_ref().and_then(Connection::ip).unwrap_or(ip);
            SocketAddr::new(rip, r.port)
        }
        None if media.rtcp_mux() => rtp,
        None => SocketAddr::new(ip, m.port.checked_add(1).unwrap_or(m.port)),
    };
    Ok((rtp, rtcp, hold))
}

fn rewrite<M: MediaControl>(
    sdp: &mut Sdp,
    session: SessionKey<'_>,
    party: Party,
    role: Role,
    ice: IcePolicy,
    priority: IcePriority,
    control: &mut M,
) -> Result<RewriteReport, RewriteError<M::Error>> {
    // 1. Ask the relay for every stream; nothing changes yet.
    let mut plans: Vec<Result<Plan, SkipReason>> = Vec::with_capacity(sdp.media().len());
    for index in 0..sdp.media().len() {
        let plan = match stream_endpoint(sdp, index) {
            Err(reason) => Err(reason),
            Ok((rtp, rtcp, hold)) => {
                let media = &sdp.media()[index];
                let rtcp_mux = media.rtcp_mux();
                let request = StreamRequest {
                    session,
                    party,
                    role,
                    index,
                    media: &media.media_line().media,
                    proto: &media.media_line().proto,
                    rtp,
                    rtcp,
                    rtcp_mux,
                    direction: sdp
                        .effective_direction(index)
                        .unwrap_or(MediaDirection::SendRecv),
                    hold,
                };
                let relay = control
                    .relay_stream(&request)
                    .map_err(|source| RewriteError { index, source })?;
                Ok(Plan {
                    original_rtp: rtp,
                    original_rtcp: rtcp,
                    relay,
                    hold,
                    rtcp_mux,
                })
            }
        };
        plans.push(plan);
    }

    // 2. Connection lines. The session-level c= takes the relay address of the first
    // relayed stream that relies on it; every stream relying on it that needs another
    // address gets a media-level c= (RFC 8866 §5.7: media level overrides session level).
    let unterminated = sdp.ends_unterminated();
    let eol = sdp.eol();
    let session_conn = sdp.session_connection();
    let new_session_ip: Option<IpAddr> = session_conn.as_ref().and_then(|_| {
        plans.iter().zip(sdp.media()).find_map(|(p, m)| match p {
            Ok(plan) if m.connection().is_none() => Some(plan.relay.rtp.ip()),
            _ => None,
        })
    });
    if let (Some(ip), Some(_)) = (new_session_ip, &session_conn) {
        set_first_connection(sdp.session_lines_mut(), ip);
    }
    let ice_in_session = sdp
        .session_lines()
        .iter()
        .any(|l| l.is_attribute("ice-ufrag") || l.is_attribute("ice-pwd"));
    let mut report = RewriteReport::default();
    for (index, (media, plan)) in sdp.media_mut().iter_mut().zip(&plans).enumerate() {
        let own_conn = media.connection().is_some();
        match plan {
            Ok(plan) => {
                let ip = plan.relay.rtp.ip();
                if own_conn {
                    set_first_connection(media.lines_mut(), ip);
                } else if new_session_ip != Some(ip) {
                    insert_connection(media, &Connection::unicast(ip).to_string(), eol);
                }
                media.set_port(plan.relay.rtp.port());
                rewrite_rtcp(media, plan, eol);
                let candidates_added = match ice {
                    IcePolicy::AddRelayCandidate
                        if media.media_line().is_udp() && (ice_in_session || media.has_ice()) =>
                    {
                        add_relay_candidates(media, plan, priority, eol)
                    }
                    _ => 0,
                };
                report.streams.push(StreamOutcome::Relayed {
                    index,
                    original_rtp: plan.original_rtp,
                    original_rtcp: plan.original_rtcp,
                    relay: plan.relay,
                    hold: plan.hold,
                    candidates_added,
                });
            }
            Err(reason) => {
                if !own_conn
                    && new_session_ip.is_some()
                    && let Some(c) = &session_conn
                {
                    insert_connection(media, &c.to_string(), eol);
                }
                report.streams.push(StreamOutcome::Skipped {
                    index,
                    reason: *reason,
                });
            }
        }
    }

    // 3. ICE strip.
    if ice == IcePolicy::Strip {
        let mut removed = remove_ice(sdp.session_lines_mut());
        for m in sdp.media_mut() {
            removed += remove_ice(m.lines_mut());
        }
        report.ice_lines_removed = removed;
    }
    sdp.fix_line_endings(unterminated);
    Ok(report)
}

fn set_first_connection(lines: &mut [Line], ip: IpAddr) {
    if let Some(l) = lines.iter_mut().find(|l| l.kind() == 'c') {
        l.set_value('c', &Connection::unicast(ip).to_string());
    }
}

/// Inserts a media-level `c=` where RFC 8866 §5 orders it: after `m=` and `i=`.
fn insert_connection(media: &mut Media, value: &str, eol: super::session::Eol) {
    let lines = media.lines_mut();
    let at = 1 + lines[1..].iter().take_while(|l| l.kind() == 'i').count();
    lines.insert(at, Line::new('c', value, eol));
}

fn rewrite_rtcp(media: &mut Media, plan: &Plan, eol: super::session::Eol) {
    let relay = plan.relay;
    let existing = media.rtcp();
    let lines = media.lines_mut();
    match existing {
        Some(r) => {
            let with_addr = r.connection.is_some() || relay.rtcp.ip() != relay.rtp.ip();
            let value = rtcp_value(relay, with_addr);
            if let Some(l) = lines.iter_mut().find(|l| l.is_attribute("rtcp")) {
                l.set_value('a', &value);
            }
        }
        None => {
            let implied = relay.rtp.port().checked_add(1).unwrap_or(relay.rtp.port());
            let needed = if plan.rtcp_mux {
                relay.rtcp != relay.rtp
            } else {
                relay.rtcp.port() != implied || relay.rtcp.ip() != relay.rtp.ip()
            };
            if needed {
                let with_addr = relay.rtcp.ip() != relay.rtp.ip();
                lines.push(Line::new('a', &rtcp_value(relay, with_addr), eol));
            }
        }
    }
}

fn rtcp_value(relay: RelayEndpoint, with_addr: bool) -> String {
    if with_addr {
        format!(
            "rtcp:{} {}",
            relay.rtcp.port(),
            Connection::unicast(relay.rtcp.ip())
        )
    } else {
        format!("rtcp:{}", relay.rtcp.port())
    }
}

fn fnv1a(bytes: &[u8], seed: u32) -> u32 {
    let mut h: u32 = 0x811c_9dc5 ^ seed;
    for b in bytes {
        h ^= u32::from(*b);
        h = h.wrapping_mul(0x0100_0193);
    }
    h
}

fn add_relay_candidates(
    media: &mut Media,
    plan: &Plan,
    priority: IcePriority,
    eol: super::session::Eol,
) -> usize {
    let lines = media.lines_mut();
    let existing: Vec<(String, u16)> = lines
        .iter()
        .filter_map(|l| match l.attribute() {
            Some(("candidate", Some(v))) => {
                candidate_foundation_component(v).map(|(f, c)| (f.to_owned(), c))
            }
            _ => None,
        })
        .collect();
    // RFC 8445 §5.1.1.3: one foundation per (type, base address, server); ours is derived
    // from the relay address and must differ from the endpoint's foundations.
    let ip_text = plan.relay.rtp.ip().to_string();
    let mut seed = 0;
    let foundation = loop {
        let f = format!("ph{:08x}", fnv1a(ip_text.as_bytes(), seed));
        if !existing.iter().any(|(e, _)| *e == f) {
            break f;
        }
        seed += 1;
    };
    let mut components = vec![(1u16, plan.relay.rtp, plan.original_rtp)];
    let has_rtcp_candidates = existing.iter().any(|(_, c)| *c == 2);
    if !plan.rtcp_mux && (existing.is_empty() || has_rtcp_candidates) {
        components.push((2, plan.relay.rtcp, plan.original_rtcp));
    }
    let at = match lines.iter().rposition(|l| l.is_attribute("candidate")) {
        Some(i) => i + 1,
        None => lines
            .iter()
            .position(|l| l.is_attribute("end-of-candidates"))
            .unwrap_or(lines.len()),
    };
    let n = components.len();
    for (k, (component, relay, original)) in components.into_iter().enumerate() {
        let value = format!(
            "candidate:{foundation} {component} UDP {} {} {} typ relay raddr {} rport {}",
            relay_candidate_priority_with(priority, component),
            relay.ip(),
            relay.port(),
            original.ip(),
            original.port()
        );
        lines.insert(at + k, Line::new('a', &value, eol));
    }
    n
}

fn remove_ice(lines: &mut Vec<Line>) -> usize {
    let before = lines.len();
    lines.retain(|l| {
        !l.attribute()
            .is_some_and(|(n, _)| super::fields::is_ice_attribute(n))
    });
    before - lines.len()
}
