//! What the relay did to each stream, read from the description before and after its
//! rewrite (an ng relay returns SDP, not a report): the [`RewriteReport`] of
//! [`ProxyEvent::MediaRewritten`](super::ProxyEvent::MediaRewritten).

use crate::sdp::{
    Connection, HoldKind, RelayEndpoint, RewriteReport, Sdp, SkipReason, StreamOutcome,
    is_ice_attribute,
};
use std::net::SocketAddr;

/// Where stream `index` receives (RTP, RTCP) and its hold form, or why it carries no
/// media to relay (the rules of [`crate::sdp::rewrite`]).
fn stream_endpoint(
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

fn relay_candidates(sdp: &Sdp, index: usize) -> usize {
    sdp.media()[index]
        .lines()
        .iter()
        .filter(|l| {
            l.attribute().is_some_and(|(n, v)| {
                n == "candidate" && v.is_some_and(|v| v.contains(" typ relay"))
            })
        })
        .count()
}

fn ice_lines(sdp: &Sdp) -> usize {
    let is_ice = |l: &crate::sdp::Line| l.attribute().is_some_and(|(n, _)| is_ice_attribute(n));
    sdp.session_lines().iter().filter(|l| is_ice(l)).count()
        + sdp
            .media()
            .iter()
            .map(|m| m.lines().iter().filter(|l| is_ice(l)).count())
            .sum::<usize>()
}

/// What the relay did to each stream, read from the description before and after.
pub(super) fn describe(before: &Sdp, after: &Sdp) -> RewriteReport {
    let mut report = RewriteReport::default();
    for index in 0..before.media().len() {
        let outcome = match stream_endpoint(before, index) {
            Err(reason) => StreamOutcome::Skipped { index, reason },
            Ok((rtp, rtcp, hold)) => match stream_endpoint(after, index) {
                Ok((new_rtp, new_rtcp, _)) if new_rtp != rtp => StreamOutcome::Relayed {
                    index,
                    original_rtp: rtp,
                    original_rtcp: rtcp,
                    relay: RelayEndpoint {
                        rtp: new_rtp,
                        rtcp: new_rtcp,
                    },
                    hold,
                    candidates_added: relay_candidates(after, index)
                        .saturating_sub(relay_candidates(before, index)),
                },
                _ => StreamOutcome::Skipped {
                    index,
                    reason: SkipReason::LeftByRelay,
                },
            },
        };
        report.streams.push(outcome);
    }
    report.ice_lines_removed = ice_lines(before).saturating_sub(ice_lines(after));
    report
}
