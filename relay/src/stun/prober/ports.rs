//! The port-allocation test (RFC 4787 §4.2.1 allocation, §4.2.2 parity): fresh sockets
//! bind one at a time, in pairs of local parity, and the mapped ports are classified.

use super::*;

/// How a NAT picks the external port of a new mapping (RFC 4787 §4.2.1), as far as
/// consecutive mappings show it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum PortAllocation {
    /// The external port is the internal port (port preservation).
    Preserve,
    /// Each new mapping takes a port a small step above the previous one.
    Sequential,
    /// Neither: no pattern between consecutive mappings.
    Random,
}

impl PortAllocation {
    /// Every value as pinhole's scenarios write it (a probe step's
    /// `expect: port_allocation:`).
    pub const VALUES: &'static [&'static str] = &["preserve", "sequential", "random"];

    /// The keyword pinhole's scenarios and NAT profiles use (`preserve`, `sequential`,
    /// `random`).
    pub fn as_str(self) -> &'static str {
        match self {
            PortAllocation::Preserve => "preserve",
            PortAllocation::Sequential => "sequential",
            PortAllocation::Random => "random",
        }
    }

    /// The value for a scenario keyword (exact, lower case).
    pub fn from_keyword(s: &str) -> Option<PortAllocation> {
        [
            PortAllocation::Preserve,
            PortAllocation::Sequential,
            PortAllocation::Random,
        ]
        .into_iter()
        .find(|a| a.as_str() == s)
    }
}

impl std::fmt::Display for PortAllocation {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The largest step between consecutive external ports that still counts as sequential:
/// other hosts behind a busy NAT take ports in between.
pub const SEQUENTIAL_MAX_STEP: u16 = 16;

/// Classify port allocation from `(local port, mapped port)` samples in the order their
/// mappings were created; `None` with fewer than four samples.
///
/// - **preserve** when all but at most one sample kept its port (one collision with
///   another host's mapping is tolerated);
/// - **sequential** when all but at most one step between consecutive mapped ports is in
///   `1..=SEQUENTIAL_MAX_STEP` (one wrap at the end of the range is tolerated);
/// - **random** otherwise.
///
/// Parity (RFC 4787 §4.2.2) is reported only for allocations that do not preserve the
/// port (preservation keeps parity trivially) and only when at least two samples of each
/// local parity exist: `Some(true)` when every mapped port has its local port's parity.
/// Samples should alternate in pairs of parity (even, even, odd, odd, …) so that a
/// sequential allocator without parity cannot match the local parities by accident.
pub fn classify_port_allocation(samples: &[(u16, u16)]) -> Option<(PortAllocation, Option<bool>)> {
    let n = samples.len();
    if n < 4 {
        return None;
    }
    let preserved = samples.iter().filter(|(l, m)| l == m).count();
    if preserved + 1 >= n {
        return Some((PortAllocation::Preserve, None));
    }
    let small_steps = samples
        .windows(2)
        .filter(|w| (1..=SEQUENTIAL_MAX_STEP).contains(&w[1].1.wrapping_sub(w[0].1)))
        .count();
    let allocation = if small_steps + 2 >= n {
        PortAllocation::Sequential
    } else {
        PortAllocation::Random
    };
    let evens = samples.iter().filter(|(l, _)| l.is_multiple_of(2)).count();
    let parity =
        (evens >= 2 && n - evens >= 2).then(|| samples.iter().all(|(l, m)| l % 2 == m % 2));
    Some((allocation, parity))
}

/// The order in which to use sample sockets with local ports `ports`: pairs of even and odd
/// ports alternating (even, even, odd, odd, …), the rest at the end.
fn parity_pairs_order(ports: &[u16]) -> Vec<u8> {
    let (mut evens, mut odds): (Vec<u8>, Vec<u8>) =
        (0..ports.len() as u8).partition(|&i| ports[i as usize].is_multiple_of(2));
    evens.reverse();
    odds.reverse();
    let mut out = Vec::with_capacity(ports.len());
    while !evens.is_empty() || !odds.is_empty() {
        for q in [&mut evens, &mut odds] {
            for _ in 0..2 {
                if let Some(i) = q.pop() {
                    out.push(i);
                }
            }
        }
    }
    out
}

impl Prober {
    /// Sample `k` was answered: its mapped port is recorded and the next sample goes.
    pub(super) fn on_sample(
        &mut self,
        now: Instant,
        k: usize,
        error: Option<String>,
        mapped: Option<SocketAddr>,
    ) {
        match (error, mapped) {
            (None, Some(mapped)) => {
                let local = self
                    .sample_order
                    .get(k)
                    .and_then(|&i| self.sample_local.get(i as usize));
                let Some(local) = local.map(|a| a.port()) else {
                    self.result(
                        ProbeTest::PortAllocation,
                        TestResult::Failed(
                            "sample sockets changed during the port-allocation test".into(),
                        ),
                    );
                    return self.goto_lifetime(now);
                };
                self.samples.push((local, mapped.port()));
                self.result(
                    ProbeTest::PortAllocation,
                    TestResult::PortSample {
                        local,
                        mapped: mapped.port(),
                    },
                );
                self.sample_next(now, k + 1);
            }
            (e, _) => {
                let why = e.unwrap_or_else(|| "no (XOR-)MAPPED-ADDRESS".into());
                self.result(
                    ProbeTest::PortAllocation,
                    TestResult::Failed(format!("port-allocation sample {k} failed: {why}")),
                );
                self.goto_lifetime(now);
            }
        }
    }

    pub(super) fn goto_ports(&mut self, now: Instant) {
        if !self.config.tests.port_allocation {
            return self.goto_lifetime(now);
        }
        self.events
            .push_back(ProbeEvent::TestStarted(ProbeTest::PortAllocation));
        if self.sample_local.len() < 4 {
            let n = self.sample_local.len();
            self.result(
                ProbeTest::PortAllocation,
                TestResult::Failed(format!(
                    "port allocation needs at least 4 sample sockets, the driver gave {n}"
                )),
            );
            return self.goto_lifetime(now);
        }
        let ports: Vec<u16> = self.sample_local.iter().map(|a| a.port()).collect();
        self.sample_order = parity_pairs_order(&ports);
        self.samples.clear();
        self.sample_next(now, 0);
    }

    /// Send sample `k` (one at a time, so the mappings are created in a known order), or
    /// classify when all have answered.
    pub(super) fn sample_next(&mut self, now: Instant, k: usize) {
        if let Some(&i) = self.sample_order.get(k) {
            let server = self.config.server;
            self.start(
                now,
                Step::PortSample(k),
                &[(SocketId::Sample(i), server, None, None)],
            );
            return;
        }
        if let Some((allocation, parity)) = classify_port_allocation(&self.samples) {
            self.report.port_allocation = Some(allocation);
            self.report.port_parity = parity;
            if parity.is_none() && allocation != PortAllocation::Preserve {
                self.report.errors.push(
                    "port parity not determined: fewer than two sample sockets of each local port parity"
                        .into(),
                );
            }
            self.result(
                ProbeTest::PortAllocation,
                TestResult::PortAllocation { allocation, parity },
            );
        }
        self.goto_lifetime(now);
    }
}

#[cfg(test)]
mod test {
    use super::*;

    /// Locals in the prober's order (even, even, odd, odd, …) starting at `base`.
    fn locals(base: u16, n: usize) -> Vec<u16> {
        let ports: Vec<u16> = (0..n as u16).map(|i| base + i).collect();
        parity_pairs_order(&ports)
            .into_iter()
            .map(|i| ports[i as usize])
            .collect()
    }

    #[test]
    fn parity_pairs_alternate_in_pairs() {
        let ports = [40_001, 40_002, 40_003, 40_004, 40_005, 40_006, 40_008];
        let order: Vec<u16> = parity_pairs_order(&ports)
            .into_iter()
            .map(|i| ports[i as usize])
            .collect();
        assert_eq!(
            order,
            [40_002, 40_004, 40_001, 40_003, 40_006, 40_008, 40_005]
        );
    }

    #[test]
    fn preserved_ports_are_preserve_even_with_one_collision() {
        let mut s: Vec<(u16, u16)> = locals(40_000, 12).into_iter().map(|l| (l, l)).collect();
        assert_eq!(
            classify_port_allocation(&s),
            Some((PortAllocation::Preserve, None))
        );
        s[5].1 = 1024;
        assert_eq!(
            classify_port_allocation(&s),
            Some((PortAllocation::Preserve, None))
        );
        s[6].1 = 1025;
        assert_ne!(
            classify_port_allocation(&s).map(|c| c.0),
            Some(PortAllocation::Preserve)
        );
    }

    #[test]
    fn sequential_without_parity_is_not_mistaken_for_parity() {
        // A sequential allocator hands out 1024, 1025, … whatever the local parity.
        let s: Vec<(u16, u16)> = locals(40_000, 12).into_iter().zip(1024..).collect();
        assert_eq!(
            classify_port_allocation(&s),
            Some((PortAllocation::Sequential, Some(false)))
        );
    }

    #[test]
    fn sequential_with_parity_and_one_wrap() {
        let mut next = 65_530u16;
        let s: Vec<(u16, u16)> = locals(40_000, 12)
            .into_iter()
            .map(|l| {
                if next % 2 != l % 2 {
                    next = next.wrapping_add(1);
                }
                if !(1024..65_535).contains(&next) {
                    next = 1024 + l % 2;
                }
                let m = next;
                next = next.wrapping_add(1);
                (l, m)
            })
            .collect();
        assert_eq!(
            classify_port_allocation(&s),
            Some((PortAllocation::Sequential, Some(true))),
            "{s:?}"
        );
    }

    #[test]
    fn random_ports_are_random_and_parity_is_seen() {
        let mut rng = SplitMix64::new(99);
        let s: Vec<(u16, u16)> = locals(40_000, 12)
            .into_iter()
            .map(|l| {
                let r = 1024 + (rng.next_u64() % 64_000) as u16;
                (l, r)
            })
            .collect();
        let (a, p) = classify_port_allocation(&s).unwrap();
        assert_eq!(a, PortAllocation::Random, "{s:?}");
        assert_eq!(p, Some(false), "{s:?}");
        let with_parity: Vec<(u16, u16)> = s.iter().map(|&(l, m)| (l, m - m % 2 + l % 2)).collect();
        assert_eq!(
            classify_port_allocation(&with_parity),
            Some((PortAllocation::Random, Some(true)))
        );
    }

    #[test]
    fn parity_needs_both_local_parities_and_enough_samples() {
        let one_parity: Vec<(u16, u16)> =
            (0..8u16).map(|i| (40_000 + 2 * i, 2000 + 7 * i)).collect();
        assert_eq!(classify_port_allocation(&one_parity).unwrap().1, None);
        assert_eq!(classify_port_allocation(&one_parity[..3]), None);
    }
}
