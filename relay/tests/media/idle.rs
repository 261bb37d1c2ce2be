//! Idle sessions for the memory measurement (shared by `tests/media_memory.rs` and
//! `benches/media.rs`): a relay over eight addresses with the whole unprivileged port
//! range, and `n` calls set up by a realistic offer/answer (PCMU, PCMA,
//! telephone-event; Call-IDs and tags of usual lengths), no media.

use relay::media::{MediaRelay, RelayConfig, Role, SignalRequest};
use relay::sdp::Sdp;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::time::Instant;

/// A relay with room for 100,000+ calls (eight addresses × 32,256 pairs).
pub fn big_relay() -> MediaRelay {
    let addresses = (1..=8)
        .map(|i| IpAddr::V4(Ipv4Addr::new(203, 0, 113, i)))
        .collect();
    let mut c = RelayConfig::new(addresses, 1024..=65535);
    c.seed = 1;
    MediaRelay::new(c).expect("valid config")
}

fn sdp(ip: &str, port: u16) -> String {
    format!(
        "v=0\r\no=- 3912345678 3912345678 IN IP4 {ip}\r\ns=-\r\nc=IN IP4 {ip}\r\nt=0 0\r\nm=audio {port} RTP/AVP 0 8 101\r\na=rtpmap:0 PCMU/8000\r\na=rtpmap:8 PCMA/8000\r\na=rtpmap:101 telephone-event/8000\r\na=fmtp:101 0-16\r\na=ptime:20\r\na=sendrecv\r\n"
    )
}

/// Sets up call `i` (offer by A, answer by B), draining the relay like a driver.
pub fn add_call(relay: &mut MediaRelay, now: Instant, i: u32) {
    let call = format!("{i:08x}-5e1f-4b7e-9a3c-{i:012x}@192.0.2.10");
    let from = format!("as{i:08x}");
    let to = format!("bs{i:08x}");
    let mut a = SignalRequest::new(&call, &from, None, Role::Offer);
    a.received_from = Some(SocketAddr::from(([198, 51, 100, 10], 5060)));
    a.user_agent = Some("baresip v3.10.0 (x86_64/linux)");
    let mut o = Sdp::parse(sdp("10.0.0.2", 4000).as_bytes()).expect("SDP");
    relay.offer(now, &a, &mut o).expect("offer");
    let mut b = SignalRequest::new(&call, &from, Some(&to), Role::Answer);
    b.received_from = Some(SocketAddr::from(([198, 51, 100, 20], 5060)));
    b.user_agent = Some("Linphone/5.2.0 (belle-sip/5.2.0)");
    let mut s = Sdp::parse(sdp("10.1.0.3", 6000).as_bytes()).expect("SDP");
    relay.answer(now, &b, &mut s).expect("answer");
    while relay.poll_command().is_some() {}
    while relay.poll_event().is_some() {}
}
