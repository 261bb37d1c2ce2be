//! What the relay did to each stream, read from the description before and after its
//! rewrite (an ng relay returns SDP, not a report): the [`RewriteReport`] of
//! [`ProxyEvent::MediaRewritten`](super::ProxyEvent::MediaRewritten).

use crate::sdp::rewrite::stream_endpoint;
use crate::sdp::{RelayEndpoint, RewriteReport, Sdp, SkipReason, StreamOutcome, is_ice_attribute};

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
