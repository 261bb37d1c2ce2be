//! The offer/answer side of the relay: what the SDP says per stream, and the relay seen
//! as a [`MediaControl`] by [`crate::sdp::rewrite_with`] — leg allocation, the writer's
//! addresses, latching windows, RTCP port binding.

use super::MediaRelay;
use super::ports::{Owner, PortTable};
use super::session::{Codec, Leg, Stream};
use super::{Command, Latching, MediaError, RelayConfig, SignalRequest};
use crate::rng::SplitMix64;
use crate::sdp::{MediaControl, RelayEndpoint, Role, Sdp, SessionKey, StreamRequest};
use std::net::{IpAddr, SocketAddr};
use std::time::Instant;

/// What the SDP says about one `m=` section, read before the rewrite.
#[derive(Debug, Default)]
pub(super) struct StreamInfo {
    formats: u128,
    codecs: Vec<Codec>,
    ice: Option<(Box<str>, Box<str>)>,
}

pub(super) fn scan(sdp: &Sdp) -> Vec<StreamInfo> {
    let attr = |lines: &[crate::sdp::Line], name: &str| -> Option<String> {
        lines.iter().find_map(|l| match l.attribute() {
            Some((n, Some(v))) if n == name => Some(v.trim().to_owned()),
            _ => None,
        })
    };
    let s_ufrag = attr(sdp.session_lines(), "ice-ufrag");
    let s_pwd = attr(sdp.session_lines(), "ice-pwd");
    sdp.media()
        .iter()
        .map(|m| {
            let formats = m
                .media_line()
                .formats
                .iter()
                .filter_map(|f| f.parse::<u8>().ok())
                .filter(|pt| *pt < 128)
                .fold(0u128, |acc, pt| acc | (1u128 << pt));
            let codecs = m
                .lines()
                .iter()
                .filter_map(|l| match l.attribute() {
                    Some(("rtpmap", Some(v))) => {
                        let (pt, rest) = v.trim().split_once(' ')?;
                        let pt: u8 = pt.parse().ok().filter(|p| *p < 128)?;
                        let mut enc = rest.trim().split('/');
                        let name = enc.next()?.into();
                        let clock = enc.next()?.parse().ok()?;
                        Some(Codec { pt, name, clock })
                    }
                    _ => None,
                })
                .collect();
            let ufrag = attr(m.lines(), "ice-ufrag").or_else(|| s_ufrag.clone());
            let pwd = attr(m.lines(), "ice-pwd").or_else(|| s_pwd.clone());
            StreamInfo {
                formats,
                codecs,
                ice: ufrag.zip(pwd).map(|(u, p)| (u.into(), p.into())),
            }
        })
        .collect()
}

fn family(v4: bool) -> &'static str {
    if v4 { "IPv4" } else { "IPv6" }
}

/// The relay seen as a [`MediaControl`] for one offer or answer.
pub(super) struct Control<'r, 'q> {
    pub(super) relay: &'r mut MediaRelay,
    pub(super) slot: u32,
    pub(super) side: usize,
    pub(super) now: Instant,
    pub(super) req: &'q SignalRequest<'q>,
    pub(super) info: &'q [StreamInfo],
    pub(super) mode: Latching,
}

impl MediaControl for Control<'_, '_> {
    type Error = MediaError;

    fn relay_stream(&mut self, r: &StreamRequest<'_>) -> Result<RelayEndpoint, MediaError> {
        let relay = &mut *self.relay;
        let window = relay.config.latching_window;
        let streams_max = relay.config.streams_max;
        let slot = self.slot;
        let Some(sess) = relay.sessions[slot as usize].as_mut() else {
            return Err(MediaError::UnknownSession);
        };
        let pos = match sess.streams.iter().position(|s| s.index == r.index) {
            Some(p) => p,
            None => {
                if sess.streams.len() >= streams_max {
                    return Err(MediaError::StreamsMax { limit: streams_max });
                }
                // streams_max ≤ 65535 (checked by MediaRelay::new).
                let stream = sess.streams.len() as u16;
                let v4 = r.rtp.is_ipv4();
                let mut legs = Vec::with_capacity(2);
                for side in 0..2u8 {
                    let owner = Owner {
                        slot,
                        stream,
                        side,
                        socket: 0,
                    };
                    match alloc(&mut relay.tables, &relay.config, &mut relay.rng, v4, owner) {
                        Ok((addr, port)) => legs.push(Leg::new(addr, port, relay.config.latching)),
                        Err(e) => {
                            for leg in &legs {
                                relay.tables[usize::from(leg.addr)].give_back(leg.rtp_port, false);
                            }
                            return Err(e);
                        }
                    }
                }
                for leg in &legs {
                    let ip = relay.tables[usize::from(leg.addr)].ip;
                    relay
                        .commands
                        .push_back(Command::BindPort(SocketAddr::new(ip, leg.rtp_port)));
                }
                let mut legs = legs.into_iter();
                let (Some(a), Some(b)) = (legs.next(), legs.next()) else {
                    return Err(MediaError::UnknownSession); // unreachable: two legs pushed
                };
                // Exactly: a Vec of streams this size would otherwise reserve four.
                sess.streams.reserve_exact(1);
                sess.streams.push(Stream {
                    index: r.index,
                    media: r.media.into(),
                    rtp: r.proto.to_ascii_uppercase().contains("RTP"),
                    held: false,
                    legs: [a, b],
                });
                sess.streams.len() - 1
            }
        };
        let stream = &mut sess.streams[pos];
        let side = self.side;
        let now = self.now;
        {
            let leg = &mut stream.legs[side];
            // Under a=rtcp-mux without a=rtcp, RTCP falls back to RTP port + 1 (RFC 3550
            // §11) when the other side refuses mux (RFC 5761 §5.1.3).
            let rtcp = if r.rtcp_mux && r.rtcp == r.rtp {
                SocketAddr::new(r.rtp.ip(), r.rtp.port().saturating_add(1))
            } else {
                r.rtcp
            };
            leg.sdp = Some([r.rtp, rtcp]);
            leg.mux = Some(r.rtcp_mux);
            leg.allowed_ip = Some(self.req.received_from.map_or(r.rtp.ip(), |a| a.ip()));
            leg.window_until = now.checked_add(window);
            if leg.mode == Latching::FirstPacket || self.mode == Latching::FirstPacket {
                leg.latched = [None, None];
            }
            leg.mode = self.mode;
            if let Some(info) = self.info.get(r.index) {
                leg.formats = info.formats;
                leg.codecs = info.codecs.clone().into_boxed_slice();
                leg.ice = info.ice.clone().map(Box::new);
            }
        }
        if self.req.role == Role::Answer {
            stream.legs[1 - side].window_until = now.checked_add(window);
        }
        stream.media = r.media.into();
        // RTCP ports: bound unless rtcp-mux is negotiated, i.e. in the offer and in the
        // answer (RFC 5761 §5.1.1); before the answer a side that offered mux may still
        // be refused, so both RTCP ports stay ready until then.
        let negotiated = stream.legs[0].mux == Some(true) && stream.legs[1].mux == Some(true);
        for k in 0..2 {
            let need = !negotiated;
            let leg = &mut stream.legs[k];
            if need != leg.rtcp_bound {
                leg.rtcp_bound = need;
                let at = SocketAddr::new(relay.tables[usize::from(leg.addr)].ip, leg.rtp_port + 1);
                relay.commands.push_back(if need {
                    Command::BindPort(at)
                } else {
                    Command::ClosePort(at)
                });
            }
        }
        let other = &stream.legs[1 - side];
        let ip = advertised(&relay.config, relay.tables[usize::from(other.addr)].ip);
        let rtp = SocketAddr::new(ip, other.rtp_port);
        Ok(RelayEndpoint {
            rtp,
            rtcp: if r.rtcp_mux {
                rtp
            } else {
                SocketAddr::new(ip, other.rtp_port + 1)
            },
        })
    }

    fn end_session(&mut self, _session: SessionKey<'_>) {
        // A refused rewrite is cleaned up by MediaRelay::signal.
    }
}

pub(super) fn advertised(config: &RelayConfig, local: IpAddr) -> IpAddr {
    match config.advertised {
        Some(a) if a.is_ipv4() == local.is_ipv4() => a,
        _ => local,
    }
}

fn alloc(
    tables: &mut [PortTable],
    config: &RelayConfig,
    rng: &mut SplitMix64,
    v4: bool,
    owner: Owner,
) -> Result<(u8, u16), MediaError> {
    let mut any = false;
    for (i, t) in tables.iter_mut().enumerate() {
        if t.ip.is_ipv4() != v4 {
            continue;
        }
        any = true;
        if let Some(port) = t.take(config.port_allocation, rng, owner) {
            // At most 255 addresses (checked by MediaRelay::new).
            return Ok((i as u8, port));
        }
    }
    Err(if any {
        MediaError::NoPorts(family(v4))
    } else {
        MediaError::NoAddress(family(v4))
    })
}
