use super::*;
use crate::wire::{checksums_valid, parse};
use etherparse::PacketBuilder;
use proptest::prelude::*;

#[allow(clippy::disallowed_methods)] // tests need one arbitrary epoch; the link never reads the clock
fn t0() -> Instant {
    Instant::now()
}

const MS: Duration = Duration::from_millis(1);

/// A UDP/IPv4 packet of `size` bytes (at least 32) whose payload starts with `seq`.
fn pkt(seq: u32, size: usize) -> PacketBuf {
    let mut payload = vec![0xa5u8; size.max(32) - 28];
    payload[..4].copy_from_slice(&seq.to_be_bytes());
    let mut v = Vec::new();
    PacketBuilder::ipv4([10, 0, 0, 1], [10, 0, 0, 2], 64)
        .udp(1000, 2000)
        .write(&mut v, &payload)
        .expect("build");
    PacketBuf::from_slice(&v)
}

fn seq_of(p: &PacketBuf) -> u32 {
    let b = p.as_slice();
    u32::from_be_bytes([b[28], b[29], b[30], b[31]])
}

/// Clear DF and fix the header checksum.
fn no_df(mut p: PacketBuf) -> PacketBuf {
    let b = p.as_mut_slice();
    b[6] &= !0x40;
    b[10..12].fill(0);
    let ihl = (b[0] & 0x0f) as usize * 4;
    let c = checksum::checksum(&b[..ihl]);
    b[10..12].copy_from_slice(&c.to_be_bytes());
    p
}

use crate::wire::checksum;

/// Every delivery, with its time, until the link is empty.
fn drain(link: &mut Link) -> Vec<(Instant, PacketBuf)> {
    let mut out = Vec::new();
    while let Some(t) = link.poll_timeout() {
        while let Some(p) = link.poll_transmit(t) {
            out.push((t, p));
        }
    }
    out
}

fn link(config: LinkConfig, seed: u64) -> Link {
    Link::new(config, SimRng::new(seed))
}

#[test]
fn bernoulli_loss_rate() {
    let now = t0();
    let mut l = link(
        LinkConfig {
            loss: Loss::Bernoulli(0.1),
            ..Default::default()
        },
        1,
    );
    let n = 100_000;
    for i in 0..n {
        l.handle_packet(now, pkt(i, 32));
        while l.poll_transmit(now).is_some() {}
    }
    let rate = l.stats().lost as f64 / n as f64;
    assert!((rate - 0.1).abs() < 0.004, "{rate}");
    assert_eq!(l.stats().delivered + l.stats().lost, n as u64);
}

/// Loss pattern of `n` packets through a link with `loss`.
fn pattern(loss: Loss, n: usize, seed: u64) -> Vec<bool> {
    let now = t0();
    let mut l = link(
        LinkConfig {
            loss,
            ..Default::default()
        },
        seed,
    );
    (0..n)
        .map(|i| {
            let lost = matches!(l.handle_packet(now, pkt(i as u32, 32)), Admit::Dropped(_));
            while l.poll_transmit(now).is_some() {}
            lost
        })
        .collect()
}

#[test]
fn gilbert_elliott_stationary_loss_and_burst_length() {
    let (p, r) = (0.01, 0.3);
    let ge = Loss::GilbertElliott {
        p,
        r,
        h: 0.0,
        k: 1.0,
    };
    let expected = ge.expected_loss();
    assert!((expected - p / (p + r)).abs() < 1e-12);
    let n = 300_000;
    let lost = pattern(ge, n, 2);
    let rate = lost.iter().filter(|x| **x).count() as f64 / n as f64;
    assert!(
        (rate - expected).abs() < 0.1 * expected,
        "{rate} vs {expected}"
    );
    // Mean run of consecutive losses = mean sojourn in the bad state = 1/r.
    let mut bursts = Vec::new();
    let mut run = 0usize;
    for l in &lost {
        if *l {
            run += 1;
        } else if run > 0 {
            bursts.push(run);
            run = 0;
        }
    }
    let mean = bursts.iter().sum::<usize>() as f64 / bursts.len() as f64;
    assert!((mean - 1.0 / r).abs() < 0.1 / r, "mean burst {mean}");

    // Partial loss in both states.
    let ge = Loss::GilbertElliott {
        p: 0.05,
        r: 0.2,
        h: 0.4,
        k: 0.98,
    };
    let bad = 0.05 / 0.25;
    let expected = (1.0 - bad) * 0.02 + bad * 0.6;
    assert!((ge.expected_loss() - expected).abs() < 1e-12);
    let lost = pattern(ge, n, 3);
    let rate = lost.iter().filter(|x| **x).count() as f64 / n as f64;
    assert!(
        (rate - expected).abs() < 0.05 * expected,
        "{rate} vs {expected}"
    );
}

#[test]
fn jitter_is_bounded_and_keeps_order() {
    let now = t0();
    let (delay, jitter) = (50 * MS, 10 * MS);
    let mut l = link(
        LinkConfig {
            delay,
            jitter,
            ..Default::default()
        },
        4,
    );
    let n = 5000u32;
    let mut sent = Vec::new();
    for i in 0..n {
        let t = now + Duration::from_micros(500) * i;
        sent.push(t);
        assert_eq!(l.handle_packet(t, pkt(i, 64)), Admit::Queued);
    }
    let got = drain(&mut l);
    assert_eq!(got.len(), n as usize);
    let mut spread = (Duration::MAX, Duration::ZERO);
    for (i, (at, p)) in got.iter().enumerate() {
        assert_eq!(seq_of(p), i as u32, "reordered without reorder");
        let d = *at - sent[i];
        assert!(d >= delay - jitter && d <= delay + jitter, "{d:?}");
        spread = (spread.0.min(d), spread.1.max(d));
    }
    // The jitter is really used.
    assert!(
        spread.0 < delay - jitter / 2 && spread.1 > delay + jitter / 2,
        "{spread:?}"
    );
    assert_eq!(l.stats().reordered, 0);
}

#[test]
fn reorder_overtakes_even_without_jitter() {
    let now = t0();
    let mut l = link(
        LinkConfig {
            delay: 20 * MS,
            reorder: 0.1,
            ..Default::default()
        },
        5,
    );
    let n = 10_000u32;
    for i in 0..n {
        l.handle_packet(now + MS * i, pkt(i, 64));
    }
    let got = drain(&mut l);
    let overtakes = got
        .windows(2)
        .filter(|w| seq_of(&w[1].1) < seq_of(&w[0].1))
        .count();
    let reordered = l.stats().reordered as f64 / n as f64;
    assert!((reordered - 0.1).abs() < 0.01, "{reordered}");
    assert!(overtakes as f64 > 0.05 * n as f64, "{overtakes}");
    // A reordered packet is delivered when it is sent (netem: at once).
    for (at, p) in &got {
        let sent = now + MS * seq_of(p);
        assert!(*at == sent || *at == sent + 20 * MS);
    }
}

#[test]
fn rate_limits_throughput_and_bounds_the_queue() {
    let now = t0();
    let rate = 1_000_000; // 1 Mbit/s: a 1250-byte packet takes 10 ms
    let mut l = link(
        LinkConfig {
            rate: Some(rate),
            queue: 50,
            delay: 30 * MS,
            ..Default::default()
        },
        6,
    );
    let mut full = 0;
    // Offer twice the rate for 10 s.
    for i in 0..2000u32 {
        match l.handle_packet(now + 5 * MS * i, pkt(i, 1250)) {
            Admit::Queued => {}
            Admit::Dropped(DropReason::QueueFull) => full += 1,
            other => panic!("{other:?}"),
        }
    }
    let s = *l.stats();
    assert_eq!(s.queue_high_water, 50);
    assert_eq!(s.queue_full, full);
    assert!(full > 900, "{full}");
    let got = drain(&mut l);
    // Back-to-back deliveries exactly one serialization time apart.
    for w in got.windows(2) {
        assert_eq!(w[1].0 - w[0].0, 10 * MS);
    }
    let span = got.last().expect("some").0 - got[0].0;
    let bits = (got.len() as u64 - 1) * 1250 * 8;
    let measured = bits as f64 / span.as_secs_f64();
    assert!(
        (measured - rate as f64).abs() < 1e-6 * rate as f64,
        "{measured}"
    );
    // First packet: 10 ms serialization + 30 ms propagation.
    assert_eq!(got[0].0 - now, 40 * MS);
    assert_eq!(got.len() as u64 + full, 2000);
}

#[test]
fn queue_zero_accepts_only_when_idle() {
    let now = t0();
    let mut l = link(
        LinkConfig {
            rate: Some(8000), // 1 byte per ms
            queue: 0,
            ..Default::default()
        },
        7,
    );
    assert_eq!(l.handle_packet(now, pkt(0, 100)), Admit::Queued);
    assert_eq!(
        l.handle_packet(now + 50 * MS, pkt(1, 100)),
        Admit::Dropped(DropReason::QueueFull)
    );
    assert_eq!(l.handle_packet(now + 100 * MS, pkt(2, 100)), Admit::Queued);
    let mut l = link(
        LinkConfig {
            rate: Some(0),
            ..Default::default()
        },
        7,
    );
    assert_eq!(
        l.handle_packet(now, pkt(0, 100)),
        Admit::Dropped(DropReason::QueueFull)
    );
}

/// Reassemble IPv4 fragments (any order) into the original IP payload, checking each.
fn reassemble(frags: &[PacketBuf], mtu: usize) -> (Vec<u8>, bool) {
    let mut parts = Vec::new();
    let mut last_more = false;
    for f in frags {
        assert!(f.len() <= mtu, "fragment of {} > mtu {mtu}", f.len());
        assert!(checksums_valid(f.as_slice()));
        let info = parse(f.as_slice()).expect("parse");
        let fr = info.fragment.expect("a fragment");
        assert_eq!(fr.offset % 8, 0);
        assert_eq!(f.as_slice()[6] & 0x40, 0, "DF on a fragment");
        parts.push((
            fr.offset as usize,
            fr.more,
            f.as_slice()[info.l4_offset..].to_vec(),
        ));
    }
    parts.sort_by_key(|p| p.0);
    let mut data = Vec::new();
    for (off, more, bytes) in parts {
        assert_eq!(off, data.len(), "gap or overlap");
        data.extend_from_slice(&bytes);
        last_more = more;
    }
    (data, last_more)
}

#[test]
fn mtu_fragments_reassemble() {
    let now = t0();
    let mut l = link(
        LinkConfig {
            mtu: Some(1280),
            ..Default::default()
        },
        8,
    );
    let orig = no_df(pkt(7, 4000));
    assert_eq!(l.handle_packet(now, orig.clone()), Admit::Queued);
    let frags: Vec<PacketBuf> = drain(&mut l).into_iter().map(|x| x.1).collect();
    assert_eq!(frags.len(), 4);
    let (data, more) = reassemble(&frags, 1280);
    assert!(!more);
    assert_eq!(data, orig.as_slice()[20..]);
    assert_eq!(
        parse(frags[0].as_slice())
            .expect("p")
            .src_endpoint()
            .expect("e")
            .port,
        1000
    );
    let s = l.stats();
    assert_eq!((s.fragmented, s.fragments, s.delivered), (1, 4, 4));

    // Re-fragmenting a fragment: offsets continue, MF stays on the last piece.
    let mut small = link(
        LinkConfig {
            mtu: Some(576),
            ..Default::default()
        },
        8,
    );
    for f in &frags {
        assert_eq!(small.handle_packet(now, f.clone()), Admit::Queued);
    }
    let pieces: Vec<PacketBuf> = drain(&mut small).into_iter().map(|x| x.1).collect();
    let (data2, more2) = reassemble(&pieces, 576);
    assert_eq!(data2, data);
    assert!(!more2);
}

#[test]
fn mtu_copies_only_copied_options() {
    let now = t0();
    // IHL 7: Router Alert (0x94, copied, len 4) + Record Route (0x07, not copied, len 7) + EOL.
    let base = no_df(pkt(1, 1000));
    let b = base.as_slice();
    let mut v = b[..20].to_vec();
    v.extend_from_slice(&[0x94, 4, 0, 0, 0x07, 7, 4, 0, 0, 0, 0, 0]);
    v.extend_from_slice(&b[20..]);
    v[0] = 0x48;
    let total = v.len() as u16;
    v[2..4].copy_from_slice(&total.to_be_bytes());
    v[10..12].fill(0);
    let c = checksum::checksum(&v[..32]);
    v[10..12].copy_from_slice(&c.to_be_bytes());
    let orig = PacketBuf::from_slice(&v);
    let mut l = link(
        LinkConfig {
            mtu: Some(300),
            ..Default::default()
        },
        9,
    );
    l.handle_packet(now, orig.clone());
    let frags: Vec<PacketBuf> = drain(&mut l).into_iter().map(|x| x.1).collect();
    assert!(frags.len() > 3);
    assert_eq!(&frags[0].as_slice()[20..32], &v[20..32]);
    for f in &frags[1..] {
        assert_eq!(f.as_slice()[0], 0x46);
        assert_eq!(&f.as_slice()[20..24], &[0x94, 4, 0, 0]);
    }
    let (data, _) = reassemble(&frags, 300);
    assert_eq!(data, v[32..]);
}

#[test]
fn mtu_too_big_and_garbage() {
    let now = t0();
    let mut l = link(
        LinkConfig {
            mtu: Some(1280),
            ..Default::default()
        },
        10,
    );
    // IPv4 with DF (etherparse sets it).
    let df = pkt(1, 1400);
    match l.handle_packet(now, df.clone()) {
        Admit::TooBig { mtu, packet } => {
            assert_eq!(mtu, 1280);
            assert_eq!(packet, df);
        }
        other => panic!("{other:?}"),
    }
    let mut v6 = Vec::new();
    PacketBuilder::ipv6([0x20; 16], [0x21; 16], 64)
        .udp(1, 2)
        .write(&mut v6, &[0u8; 1300])
        .expect("build");
    assert!(matches!(
        l.handle_packet(now, PacketBuf::from_slice(&v6)),
        Admit::TooBig { mtu: 1280, .. }
    ));
    assert_eq!(
        l.handle_packet(now, PacketBuf::from_slice(&[0xffu8; 2000])),
        Admit::Dropped(DropReason::Mtu)
    );
    // Small packets pass untouched.
    assert_eq!(l.handle_packet(now, pkt(2, 1280)), Admit::Queued);
    let s = *l.stats();
    assert_eq!((s.mtu, s.too_big, s.dropped_by(DropReason::Mtu)), (3, 2, 3));
    assert_eq!(drain(&mut l).len(), 1);
}

#[test]
fn duplicates_arrive_together() {
    let now = t0();
    let mut l = link(
        LinkConfig {
            duplicate: 0.5,
            delay: 5 * MS,
            ..Default::default()
        },
        11,
    );
    for i in 0..10_000u32 {
        l.handle_packet(now + MS * i, pkt(i, 64));
    }
    let got = drain(&mut l);
    let dup = l.stats().duplicated;
    assert!((4700..5300).contains(&dup), "{dup}");
    assert_eq!(got.len() as u64, 10_000 + dup);
    // Sequence numbers never go down; a copy follows its original at the same time.
    for w in got.windows(2) {
        assert!(seq_of(&w[1].1) >= seq_of(&w[0].1));
        if seq_of(&w[1].1) == seq_of(&w[0].1) {
            assert_eq!(w[0].0, w[1].0);
        }
    }
}

fn lossy() -> LinkConfig {
    LinkConfig {
        delay: 20 * MS,
        jitter: 5 * MS,
        loss: Loss::GilbertElliott {
            p: 0.05,
            r: 0.3,
            h: 0.2,
            k: 0.99,
        },
        duplicate: 0.02,
        reorder: 0.03,
        rate: Some(2_000_000),
        queue: 10,
        mtu: Some(600),
    }
}

fn run(seed: u64) -> (Vec<(Instant, Vec<u8>)>, LinkStats, Instant) {
    let now = t0();
    let mut l = link(lossy(), seed);
    for i in 0..3000u32 {
        let size = 40 + (i as usize * 37) % 1200;
        l.handle_packet(now + Duration::from_micros(700) * i, no_df(pkt(i, size)));
    }
    let got = drain(&mut l)
        .into_iter()
        .map(|(t, p)| (t, p.as_slice().to_vec()))
        .collect();
    (got, *l.stats(), now)
}

#[test]
fn same_seed_same_fates() {
    let (a, sa, ta) = run(42);
    let (b, sb, tb) = run(42);
    let (c, _, tc) = run(43);
    assert_eq!(sa, sb);
    let rel = |v: &[(Instant, Vec<u8>)], t: Instant| {
        v.iter()
            .map(|(at, p)| (*at - t, p.clone()))
            .collect::<Vec<_>>()
    };
    assert_eq!(rel(&a, ta), rel(&b, tb));
    assert_ne!(rel(&a, ta), rel(&c, tc));
    // Every impairment actually fired.
    assert!(sa.lost > 0 && sa.queue_full > 0 && sa.duplicated > 0 && sa.reordered > 0);
    assert!(sa.fragmented > 0);
}

#[test]
fn knobs_draw_from_independent_streams() {
    // Turning on duplication does not change which packets are lost.
    let now = t0();
    let losses = |dup: f64| {
        let mut l = link(
            LinkConfig {
                loss: Loss::Bernoulli(0.3),
                duplicate: dup,
                ..Default::default()
            },
            12,
        );
        (0..1000u32)
            .map(|i| matches!(l.handle_packet(now, pkt(i, 40)), Admit::Dropped(_)))
            .collect::<Vec<_>>()
    };
    assert_eq!(losses(0.0), losses(0.5));
}

#[test]
fn set_config_keeps_in_flight_fates() {
    let now = t0();
    let mut l = link(
        LinkConfig {
            delay: 100 * MS,
            ..Default::default()
        },
        13,
    );
    l.handle_packet(now, pkt(0, 64));
    l.set_config(now + MS, LinkConfig::default());
    assert_eq!(l.config(), &LinkConfig::default());
    l.handle_packet(now + 2 * MS, pkt(1, 64));
    let got = drain(&mut l);
    assert_eq!(got[0].0, now + 100 * MS);
    assert_eq!(seq_of(&got[0].1), 0);
    // The faster packet does not overtake the one still in flight.
    assert_eq!(got[1].0, now + 100 * MS);
    assert_eq!(seq_of(&got[1].1), 1);
    // And packets later than that use the new (zero) delay.
    l.handle_packet(now + 200 * MS, pkt(2, 64));
    assert_eq!(l.poll_timeout(), Some(now + 200 * MS));
    assert_eq!(l.in_flight(), 1);
}

fn arb_config() -> impl Strategy<Value = LinkConfig> {
    (
        (0u64..50, 0u64..20),
        prop_oneof![
            Just(Loss::None),
            (0.0f64..1.0).prop_map(Loss::Bernoulli),
            (0.0f64..1.0, 0.0f64..1.0, 0.0f64..1.0, 0.0f64..1.0)
                .prop_map(|(p, r, h, k)| Loss::GilbertElliott { p, r, h, k }),
        ],
        (0.0f64..1.0, 0.0f64..1.0),
        proptest::option::of(0u64..5_000_000),
        0usize..20,
        proptest::option::of(0u16..1500),
    )
        .prop_map(
            |((delay, jitter), loss, (duplicate, reorder), rate, queue, mtu)| LinkConfig {
                delay: MS * delay as u32,
                jitter: MS * jitter as u32,
                loss,
                duplicate,
                reorder,
                rate,
                queue,
                mtu,
            },
        )
}

fn arb_packet() -> impl Strategy<Value = PacketBuf> {
    prop_oneof![
        (0u32..100, 28usize..3000).prop_map(|(s, n)| pkt(s, n)),
        (0u32..100, 28usize..3000).prop_map(|(s, n)| no_df(pkt(s, n))),
        proptest::collection::vec(any::<u8>(), 0..2000).prop_map(|v| PacketBuf::from_slice(&v)),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(200))]

    #[test]
    fn link_conserves_packets(
        config in arb_config(),
        packets in proptest::collection::vec((0u64..5000, arb_packet()), 0..60),
        change in proptest::option::of(arb_config()),
        seed in any::<u64>(),
    ) {
        let start = t0();
        let mut l = link(config, seed);
        let mut now = start;
        let mut delivered = 0u64;
        for (i, (gap_us, p)) in packets.into_iter().enumerate() {
            now += Duration::from_micros(gap_us);
            while let Some(_p) = l.poll_transmit(now) { delivered += 1; }
            if i == 10 && let Some(c) = &change {
                l.set_config(now, c.clone());
            }
            let _ = l.handle_packet(now, p);
            prop_assert!(l.stats().queue_high_water <= l.config().queue.max(20));
        }
        delivered += drain(&mut l).len() as u64;
        let s = *l.stats();
        prop_assert_eq!(l.in_flight(), 0);
        prop_assert_eq!(s.delivered, delivered);
        prop_assert_eq!(
            s.delivered + s.dropped(),
            s.offered + s.duplicated + s.fragments - s.fragmented
        );
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(300))]

    /// Any IPv4 header options (well-formed or not), any payload size, any MTU: the
    /// fragments fit, carry valid header checksums and reassemble to the original data.
    #[test]
    fn fragmentation_reassembles(
        options in proptest::collection::vec(any::<u8>(), 0..=40),
        payload in 0usize..3000,
        mtu in 60u16..1500,
        base in 0u16..100,
        more in any::<bool>(),
    ) {
        let words = options.len() / 4;
        let opt_len = words * 4;
        let opts = &options[..opt_len];
        let inner = pkt(3, 28 + payload.max(4));
        let b = inner.as_slice();
        let mut v = b[..20].to_vec();
        v.extend_from_slice(opts);
        v.extend_from_slice(&b[20..]);
        v[0] = 0x40 | (5 + words) as u8;
        let total = v.len() as u16;
        v[2..4].copy_from_slice(&total.to_be_bytes());
        // A fragment of some larger datagram (offset base, MF) or a whole one.
        let f = base | if more { 0x2000 } else { 0 };
        v[6..8].copy_from_slice(&f.to_be_bytes());
        v[10..12].fill(0);
        let c = checksum::checksum(&v[..20 + opt_len]);
        v[10..12].copy_from_slice(&c.to_be_bytes());
        let data = v[20 + opt_len..].to_vec();
        let mut l = link(LinkConfig { mtu: Some(mtu), ..Default::default() }, 1);
        let admit = l.handle_packet(t0(), PacketBuf::from_slice(&v));
        let got: Vec<PacketBuf> = drain(&mut l).into_iter().map(|x| x.1).collect();
        if v.len() <= mtu as usize {
            prop_assert_eq!(admit, Admit::Queued);
            prop_assert_eq!(got[0].as_slice(), &v[..]);
            return Ok(());
        }
        if admit != Admit::Queued {
            prop_assert_eq!(admit, Admit::Dropped(DropReason::Mtu));
            return Ok(());
        }
        let mut parts = Vec::new();
        for g in &got {
            let gb = g.as_slice();
            prop_assert!(gb.len() <= mtu as usize);
            let ihl = (gb[0] & 0x0f) as usize * 4;
            prop_assert_eq!(checksum::checksum(&gb[..ihl]), 0);
            prop_assert_eq!(u16::from_be_bytes([gb[2], gb[3]]) as usize, gb.len());
            let ff = u16::from_be_bytes([gb[6], gb[7]]);
            parts.push(((ff & 0x1fff) as usize * 8, ff & 0x2000 != 0, gb[ihl..].to_vec()));
        }
        let mut off = base as usize * 8;
        let mut joined = Vec::new();
        for (i, (o, m, d)) in parts.iter().enumerate() {
            prop_assert_eq!(*o, off);
            let last = i + 1 == parts.len();
            prop_assert_eq!(*m, !last || more);
            if !last {
                prop_assert_eq!(d.len() % 8, 0);
            }
            off += d.len();
            joined.extend_from_slice(d);
        }
        prop_assert_eq!(joined, data);
    }
}
