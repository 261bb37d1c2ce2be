//! The binding-lifetime search (RFC 4787 §4.3, RFC 5780 §4.6): refresh the binding,
//! stay silent for a wait, ask the server to answer to it from the secondary socket's
//! RESPONSE-PORT, and bisect the wait between what survived and what did not.

use super::*;

impl Prober {
    /// The refresh before a lifetime wait was answered: the wait starts, on the binding's
    /// (possibly new) mapped port.
    pub(super) fn on_lifetime_refresh(
        &mut self,
        now: Instant,
        wait: Duration,
        error: Option<String>,
        mapped: Option<SocketAddr>,
    ) {
        match (error, mapped) {
            (None, Some(mapped)) => {
                self.step = Step::LifetimeWait {
                    wait,
                    port: mapped.port(),
                    until: now + wait,
                };
            }
            (e, _) => {
                let why = e.unwrap_or_else(|| "no (XOR-)MAPPED-ADDRESS".into());
                self.result(
                    ProbeTest::Lifetime,
                    TestResult::Failed(format!("lifetime refresh failed: {why}")),
                );
                self.finish();
            }
        }
    }

    /// The probe after a wait was answered: on the other socket (RESPONSE-PORT, RFC 5780
    /// §7.5) the binding survived the wait; on the sending one the server ignored the
    /// attribute and nothing was measured.
    pub(super) fn on_lifetime_probe(
        &mut self,
        now: Instant,
        wait: Duration,
        error: Option<String>,
        same_socket: bool,
    ) {
        if let Some(e) = error {
            self.result(
                ProbeTest::Lifetime,
                TestResult::Failed(format!(
                    "server refused RESPONSE-PORT ({e}): lifetime not measured"
                )),
            );
            self.finish();
        } else if same_socket {
            self.result(
                ProbeTest::Lifetime,
                TestResult::Failed(
                    "server ignored RESPONSE-PORT (answer came back to the sending socket)".into(),
                ),
            );
            self.finish();
        } else {
            self.lifetime_result(now, wait, true);
        }
    }

    pub(super) fn goto_lifetime(&mut self, now: Instant) {
        match self.config.tests.lifetime {
            Some(max) => {
                self.events
                    .push_back(ProbeEvent::TestStarted(ProbeTest::Lifetime));
                self.lifetime_round(now, max);
            }
            None => self.finish(),
        }
    }

    pub(super) fn lifetime_round(&mut self, now: Instant, wait: Duration) {
        let server = self.config.server;
        self.start(
            now,
            Step::LifetimeRefresh { wait },
            &[(SocketId::Primary, server, None, None)],
        );
    }

    pub(super) fn lifetime_result(&mut self, now: Instant, wait: Duration, alive: bool) {
        self.result(
            ProbeTest::Lifetime,
            TestResult::LifetimeStep { wait, alive },
        );
        if alive {
            self.lifetime_lower = self.lifetime_lower.max(wait);
        } else {
            self.lifetime_upper = Some(self.lifetime_upper.map_or(wait, |u| u.min(wait)));
        }
        let done = match self.lifetime_upper {
            None => true, // survived max
            Some(upper) => {
                upper.saturating_sub(self.lifetime_lower) <= self.config.lifetime_resolution
                    || self.bisections >= MAX_BISECTIONS
            }
        };
        if done {
            let (lower, upper) = (self.lifetime_lower, self.lifetime_upper);
            if upper.is_some_and(|u| u < lower) {
                self.report.errors.push(format!(
                    "inconsistent lifetime results: survived {lower:?} but not {upper:?} (packet loss, or a NAT \
                     that refreshes bindings on inbound traffic)"
                ));
            }
            self.report.binding_lifetime = Some(lower);
            self.report.lifetime_upper_bound = upper;
            self.result(ProbeTest::Lifetime, TestResult::Lifetime { lower, upper });
            self.finish();
        } else {
            self.bisections += 1;
            let upper = self.lifetime_upper.unwrap_or(wait);
            let next = self.lifetime_lower + (upper - self.lifetime_lower) / 2;
            self.lifetime_round(now, next);
        }
    }
}
