//! The RFC 5780 §4 test sequence: Test I (binding, §4.2), filtering (§4.4), mapping
//! (§4.3), hairpinning (§4.5), each step's answer or silence deciding the next; the
//! port-allocation and lifetime tests that follow live in `ports` and `lifetime`.

use super::*;

impl Prober {
    pub(super) fn on_response(
        &mut self,
        now: Instant,
        socket: SocketId,
        req_socket: SocketId,
        from: SocketAddr,
        msg: &Message,
    ) {
        let error = (msg.class == Class::Error).then(|| {
            match msg.get(crate::stun::attr::kind::ERROR_CODE) {
                Some(Attribute::ErrorCode(e)) => format!("{} {}", e.code, e.reason),
                _ => "error response".to_owned(),
            }
        });
        match self.step {
            Step::BindingI => {
                let mapped = msg.mapped_address();
                match (error, mapped) {
                    (Some(e), _) => {
                        self.result(
                            ProbeTest::Binding,
                            TestResult::Failed(format!("server answered Test I with {e}")),
                        );
                        self.finish();
                    }
                    (None, None) => {
                        self.result(
                            ProbeTest::Binding,
                            TestResult::Failed(
                                "Test I response has no (XOR-)MAPPED-ADDRESS".into(),
                            ),
                        );
                        self.finish();
                    }
                    (None, Some(mapped)) => {
                        self.report.mapped = Some(mapped);
                        let other = msg.other_address();
                        self.report.other_address = other;
                        self.report.nat_detected = self.nat_detected();
                        let nat_detected = self.report.nat_detected;
                        self.result(
                            ProbeTest::Binding,
                            TestResult::Mapped {
                                mapped,
                                other,
                                nat_detected,
                            },
                        );
                        self.goto_filtering(now);
                    }
                }
            }
            Step::FilteringII | Step::FilteringIII => {
                let change_ip = self.step == Step::FilteringII;
                if let Some(e) = error {
                    self.result(
                        ProbeTest::Filtering,
                        TestResult::Failed(format!(
                            "server refused CHANGE-REQUEST ({e}): RFC 5780 tests need `alternate`"
                        )),
                    );
                    self.goto_mapping(now);
                } else if from.ip() == self.config.server.ip() && change_ip
                    || from.port() == self.config.server.port()
                {
                    self.result(
                        ProbeTest::Filtering,
                        TestResult::Failed(format!(
                            "server ignored CHANGE-REQUEST (answered from {from})"
                        )),
                    );
                    self.goto_mapping(now);
                } else {
                    let b = if change_ip {
                        Behavior::EndpointIndependent
                    } else {
                        Behavior::AddressDependent
                    };
                    self.report.filtering = Some(b);
                    self.result(ProbeTest::Filtering, TestResult::Behavior(b));
                    self.goto_mapping(now);
                }
            }
            Step::MappingII | Step::MappingIII => {
                let Some(mapped) = msg.mapped_address().filter(|_| error.is_none()) else {
                    let why = error.unwrap_or_else(|| "no (XOR-)MAPPED-ADDRESS".into());
                    self.result(
                        ProbeTest::Mapping,
                        TestResult::Failed(format!("mapping test failed: {why}")),
                    );
                    self.goto_hairpin(now);
                    return;
                };
                let behavior = if self.step == Step::MappingII {
                    if Some(mapped) == self.report.mapped {
                        Behavior::EndpointIndependent
                    } else {
                        self.mapping_x2 = Some(mapped);
                        let other = self.report.other_address;
                        match other {
                            Some(other) => self.start(
                                now,
                                Step::MappingIII,
                                &[(SocketId::Primary, other, None, None)],
                            ),
                            // Unreachable: mapping tests start only with a usable OTHER-ADDRESS.
                            None => self.goto_hairpin(now),
                        }
                        return;
                    }
                } else if Some(mapped) == self.mapping_x2 {
                    Behavior::AddressDependent
                } else {
                    Behavior::AddressAndPortDependent
                };
                self.report.mapping = Some(behavior);
                self.result(ProbeTest::Mapping, TestResult::Behavior(behavior));
                self.goto_hairpin(now);
            }
            Step::HairpinBinding => match (error, msg.mapped_address(), self.report.mapped) {
                (None, Some(y1), Some(x1)) => {
                    self.secondary_mapped = Some(y1);
                    self.start(
                        now,
                        Step::HairpinProbe,
                        &[
                            (SocketId::Primary, y1, None, None),
                            (SocketId::Secondary, x1, None, None),
                        ],
                    );
                }
                (e, _, _) => {
                    let why = e.unwrap_or_else(|| "no (XOR-)MAPPED-ADDRESS".into());
                    self.result(
                        ProbeTest::Hairpinning,
                        TestResult::Failed(format!("secondary socket's binding failed: {why}")),
                    );
                    self.goto_ports(now);
                }
            },
            Step::LifetimeRefresh { wait } => {
                self.on_lifetime_refresh(now, wait, error, msg.mapped_address())
            }
            Step::LifetimeProbe { wait } => {
                self.on_lifetime_probe(now, wait, error, socket == req_socket)
            }
            Step::PortSample(k) => self.on_sample(now, k, error, msg.mapped_address()),
            Step::HairpinProbe | Step::LifetimeWait { .. } | Step::Done => {}
        }
    }

    pub(super) fn on_no_response(&mut self, now: Instant) {
        match self.step {
            Step::BindingI => {
                let server = self.config.server;
                self.result(
                    ProbeTest::Binding,
                    TestResult::Failed(format!("no response from STUN server {server} (Test I)")),
                );
                self.finish();
            }
            Step::FilteringII => {
                let server = self.config.server;
                let change = ChangeRequest {
                    change_ip: false,
                    change_port: true,
                };
                self.start(
                    now,
                    Step::FilteringIII,
                    &[(SocketId::Primary, server, Some(change), None)],
                );
            }
            Step::FilteringIII => {
                let b = Behavior::AddressAndPortDependent;
                self.report.filtering = Some(b);
                self.result(ProbeTest::Filtering, TestResult::Behavior(b));
                self.goto_mapping(now);
            }
            Step::MappingII | Step::MappingIII => {
                let to = self.attempt_target();
                self.result(
                    ProbeTest::Mapping,
                    TestResult::Failed(format!(
                        "no response from the server's alternate address {to}"
                    )),
                );
                self.goto_hairpin(now);
            }
            Step::HairpinBinding => {
                self.result(
                    ProbeTest::Hairpinning,
                    TestResult::Failed(
                        "no response to the secondary socket's binding request".into(),
                    ),
                );
                self.goto_ports(now);
            }
            Step::HairpinProbe => self.hairpin_result(now, false),
            Step::LifetimeRefresh { .. } => {
                self.result(
                    ProbeTest::Lifetime,
                    TestResult::Failed("no response to the lifetime refresh request".into()),
                );
                self.finish();
            }
            Step::LifetimeProbe { wait } => self.lifetime_result(now, wait, false),
            Step::PortSample(k) => {
                self.result(
                    ProbeTest::PortAllocation,
                    TestResult::Failed(format!("no response to port-allocation sample {k}")),
                );
                self.goto_lifetime(now);
            }
            Step::LifetimeWait { .. } | Step::Done => {}
        }
    }

    pub(super) fn attempt_target(&self) -> String {
        match (self.step, self.report.other_address) {
            (Step::MappingII, Some(o)) => {
                SocketAddr::new(o.ip(), self.config.server.port()).to_string()
            }
            (_, Some(o)) => o.to_string(),
            _ => "?".into(),
        }
    }

    pub(super) fn goto_filtering(&mut self, now: Instant) {
        let tests = &self.config.tests;
        if (tests.filtering || tests.mapping) && !self.other_usable() {
            let why = match self.report.other_address {
                None => "server has no OTHER-ADDRESS: RFC 5780 mapping/filtering tests need a server with `alternate`".into(),
                Some(o) => format!("server's OTHER-ADDRESS {o} does not differ in IP and port from {}", self.config.server),
            };
            let test = if tests.filtering {
                ProbeTest::Filtering
            } else {
                ProbeTest::Mapping
            };
            self.result(test, TestResult::Failed(why));
            self.goto_hairpin(now);
            return;
        }
        if self.config.tests.filtering {
            let server = self.config.server;
            let change = ChangeRequest {
                change_ip: true,
                change_port: true,
            };
            self.begin(
                now,
                ProbeTest::Filtering,
                Step::FilteringII,
                (SocketId::Primary, server, Some(change), None),
            );
        } else {
            self.goto_mapping(now);
        }
    }

    pub(super) fn other_usable(&self) -> bool {
        self.report.other_address.is_some_and(|o| {
            o.ip() != self.config.server.ip() && o.port() != self.config.server.port()
        })
    }

    pub(super) fn goto_mapping(&mut self, now: Instant) {
        match self.report.other_address {
            Some(other) if self.config.tests.mapping && self.other_usable() => {
                let to = SocketAddr::new(other.ip(), self.config.server.port());
                self.begin(
                    now,
                    ProbeTest::Mapping,
                    Step::MappingII,
                    (SocketId::Primary, to, None, None),
                );
            }
            _ => self.goto_hairpin(now),
        }
    }

    pub(super) fn goto_hairpin(&mut self, now: Instant) {
        if self.config.tests.hairpinning {
            let server = self.config.server;
            self.begin(
                now,
                ProbeTest::Hairpinning,
                Step::HairpinBinding,
                (SocketId::Secondary, server, None, None),
            );
        } else {
            self.goto_ports(now);
        }
    }

    pub(super) fn hairpin_result(&mut self, now: Instant, works: bool) {
        self.report.hairpinning = Some(works);
        self.result(ProbeTest::Hairpinning, TestResult::Hairpinning(works));
        self.goto_ports(now);
    }
}
