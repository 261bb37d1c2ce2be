//! What this release of the runner can run. Parsing accepts the whole format; the runner
//! calls [`check_available`] with what it implements and reports the rest, positioned,
//! as invalid input (exit 2).

use super::error::{Error, Pos};
use super::model::{Fabric, IcePolicy, MediaPolicy, SipAlgMode, Spec, StepKind};
use std::path::Path;

/// The features a runner implements. `Default` is "nothing"; [`Availability::all`] is
/// everything.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Availability {
    /// `fabric: kernel` (TUN + namespaces).
    pub kernel_fabric: bool,
    /// `fabric: virtual`.
    pub virtual_fabric: bool,
    /// `sip-proxy` services.
    pub sip_proxy: bool,
    /// `media-relay` services, and with them the `sip-proxy` media policies that need a
    /// relay (`media: relay | when-natted`) and `ice:` other than `passthrough`.
    pub media_relay: bool,
    /// `dispatcher` services.
    pub dispatcher: bool,
    /// `stun` services.
    pub stun: bool,
    /// `turn` services.
    pub turn: bool,
    /// `tls_port` of `turn` services (TURN over TLS).
    pub turn_tls: bool,
    /// `http-proxy` services.
    pub http_proxy: bool,
    /// Firewalls.
    pub firewalls: bool,
    /// `ua` agents.
    pub ua_agents: bool,
    /// `call` steps.
    pub call_steps: bool,
    /// `reinvite` steps.
    pub reinvite_steps: bool,
    /// `probe` steps.
    pub probe_steps: bool,
    /// `punch` steps (UDP).
    pub punch_steps: bool,
    /// `punch` steps with `protocol: tcp`.
    pub tcp_punch: bool,
    /// `run` steps.
    pub run_steps: bool,
    /// `link` steps.
    pub link_steps: bool,
    /// `nat` steps.
    pub nat_steps: bool,
    /// `service` steps (stop, kill or drain a service mid-run). The gate a runner sets
    /// once it carries them out; until then they are refused (exit 2).
    pub service_steps: bool,
    /// `sip_alg: rewrite`.
    pub sip_alg: bool,
    /// Binding lifetime measurement of probe steps.
    pub probe_lifetime: bool,
}

impl Availability {
    /// Everything in the format.
    pub fn all() -> Self {
        Availability {
            kernel_fabric: true,
            virtual_fabric: true,
            sip_proxy: true,
            media_relay: true,
            dispatcher: true,
            stun: true,
            turn: true,
            turn_tls: true,
            http_proxy: true,
            firewalls: true,
            ua_agents: true,
            call_steps: true,
            reinvite_steps: true,
            probe_steps: true,
            punch_steps: true,
            tcp_punch: true,
            run_steps: true,
            link_steps: true,
            nat_steps: true,
            service_steps: true,
            sip_alg: true,
            probe_lifetime: true,
        }
    }
}

/// The parts of `spec` (a scenario's base spec or a cell's) that `features` lacks, one
/// positioned error each, in file order. Also rejects `run` steps on the virtual fabric
/// (they need real namespaces), whatever `features` says. Set `spec.fabric` to the
/// effective fabric (the CLI's `--fabric` overrides the file) before calling.
pub fn check_available(spec: &Spec, file: &Path, features: &Availability) -> Vec<Error> {
    let mut out = Vec::new();
    let mut extra = Vec::new();
    let mut no = |pos: Pos, what: &str, help: &str| {
        let mut e = Error::new(file, pos, format!("{what} is not available yet"));
        if !help.is_empty() {
            e = e.help(help);
        }
        out.push(e);
    };
    let fabric_pos = spec.fabric_pos.unwrap_or(Pos::new(1, 1));
    match spec.fabric {
        Fabric::Kernel if !features.kernel_fabric => no(
            fabric_pos,
            "the kernel fabric",
            "use `fabric: virtual` or `--fabric virtual`",
        ),
        Fabric::Virtual if !features.virtual_fabric => no(
            fabric_pos,
            "the virtual fabric",
            "use `fabric: kernel` or `--fabric kernel`",
        ),
        _ => {}
    }
    for f in &spec.topology.firewalls {
        if !features.firewalls {
            no(f.pos, &format!("firewall `{}`", f.name), "");
        }
    }
    for n in &spec.topology.nats {
        if let (Some(pos), false) = (n.sip_alg_pos, features.sip_alg)
            && n.config.sip_alg == SipAlgMode::Rewrite
        {
            no(
                pos,
                "the SIP ALG (`sip_alg: rewrite`)",
                "use `sip_alg: off`",
            );
        }
    }
    for s in &spec.services {
        if let Some(x) = &s.sip_proxy {
            if !features.sip_proxy {
                no(x.pos, "the `sip-proxy` service", "");
            } else {
                // The proxy exists, the media relay and the SDP rewriting do not yet: a
                // scenario that asks for them is refused, never silently run without them.
                if matches!(x.media, MediaPolicy::Relay | MediaPolicy::WhenNatted)
                    && !features.media_relay
                {
                    extra.push(
                        Error::new(
                            file,
                            x.pos,
                            format!("`media: {}`: media relay not available yet", x.media),
                        )
                        .help(
                            "write `media: never` (the default `when-natted` needs the relay too)",
                        ),
                    );
                }
                if let Some(ice) = x.ice
                    && ice != IcePolicy::Passthrough
                    && !features.media_relay
                {
                    no(
                        x.pos,
                        &format!("`ice: {ice}` (SDP rewriting)"),
                        "write `ice: passthrough`",
                    );
                }
            }
        }
        if let (Some(x), false) = (&s.media_relay, features.media_relay) {
            no(x.pos, "the `media-relay` service", "");
        }
        if let (Some(x), false) = (&s.dispatcher, features.dispatcher) {
            no(x.pos, "the `dispatcher` service", "");
        }
        if let (Some(x), false) = (&s.stun, features.stun) {
            no(x.pos, "the `stun` service", "");
        }
        if let (Some(x), false) = (&s.turn, features.turn) {
            no(x.pos, "the `turn` service", "");
        } else if let (Some(x), false) = (&s.turn, features.turn_tls)
            && x.tls_port.is_some()
        {
            no(x.pos, "TURN over TLS (`tls_port`)", "remove `tls_port`");
        }
        if let (Some(x), false) = (&s.http_proxy, features.http_proxy) {
            no(x.pos, "the `http-proxy` service", "");
        }
    }
    for a in &spec.agents {
        if let (Some(x), false) = (&a.ua, features.ua_agents) {
            no(x.pos, "the built-in `ua` agent", "");
        }
    }
    let lifetime_asked = |step: &str| {
        spec.expect.iter().any(|x| {
            x.step == step
                && x.checks
                    .iter()
                    .any(|c| matches!(c.measure, super::model::Measure::BindingLifetime(_)))
        })
    };
    for s in &spec.steps {
        match &s.kind {
            StepKind::Call { .. } if !features.call_steps => no(s.pos, "the `call` step", ""),
            StepKind::Reinvite { .. } if !features.reinvite_steps => {
                no(s.pos, "the `reinvite` step", "")
            }
            StepKind::Probe { lifetime, .. } => {
                if !features.probe_steps {
                    no(s.pos, "the `probe` step", "");
                } else if !features.probe_lifetime
                    && (*lifetime || s.name.as_deref().is_some_and(lifetime_asked))
                {
                    no(
                        s.pos,
                        "measuring the binding lifetime",
                        "remove `lifetime: true` and `binding_lifetime` expectations",
                    );
                }
            }
            StepKind::Punch { protocol, .. } => {
                if !features.punch_steps {
                    no(s.pos, "the `punch` step", "");
                } else if *protocol == super::model::PunchProtocol::Tcp && !features.tcp_punch {
                    no(s.pos, "TCP hole punching", "use `protocol: udp`");
                }
            }
            StepKind::Run { .. } => {
                if spec.fabric == Fabric::Virtual {
                    extra.push(
                        Error::new(
                            file,
                            s.pos,
                            "`run` steps execute real programs and need the kernel fabric",
                        )
                        .help("use `fabric: kernel` or `--fabric kernel`, or remove the run step"),
                    );
                } else if !features.run_steps {
                    no(s.pos, "the `run` step", "");
                }
            }
            StepKind::Link { .. } if !features.link_steps => no(s.pos, "the `link` step", ""),
            StepKind::Nat { .. } if !features.nat_steps => no(s.pos, "the `nat` step", ""),
            StepKind::Service { .. } if !features.service_steps => {
                no(s.pos, "the `service` step", "")
            }
            _ => {}
        }
    }
    out.append(&mut extra);
    super::error::sort_dedup(&mut out);
    out
}
