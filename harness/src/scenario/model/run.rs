//! Steps, expectations and the whole scenario ([`Spec`]) in the model.

use super::*;

// ===== steps =====

/// A call's media.
#[derive(Clone, Debug, PartialEq)]
pub struct CallMedia {
    /// Codec (default PCMU).
    pub codec: String,
    /// Packetisation time (default 20ms).
    pub ptime: Duration,
    /// How long until the caller's BYE (default 10s).
    pub duration: Duration,
    /// Add a video stream (default false).
    pub video: bool,
}

/// A `nat` step's action.
#[derive(Clone, Debug, PartialEq)]
pub enum NatAction {
    /// Drop all bindings.
    Reboot,
    /// Move live flows to new external ports.
    Rebind,
    /// New external address pool.
    Renumber(Vec<IpAddr>),
}

/// What a step does.
#[derive(Clone, Debug, PartialEq)]
pub enum StepKind {
    /// Place a call.
    Call {
        /// Caller host (has a UA).
        from: String,
        /// Callee host (has a UA).
        to: String,
        /// Media.
        media: CallMedia,
    },
    /// Re-INVITE an earlier call.
    Reinvite {
        /// The call step's name.
        call: String,
        /// Put on hold (true) or resume (false); `None` = same media.
        hold: Option<bool>,
    },
    /// RFC 5780 behaviour discovery.
    Probe {
        /// The probing host.
        from: String,
        /// The host with the STUN service.
        server: String,
        /// Measure the binding lifetime (also set when an expectation asks for it).
        lifetime: bool,
        /// Upper bound of the lifetime search (default 5m).
        lifetime_max: Duration,
    },
    /// UDP/TCP hole punching.
    Punch {
        /// The two peers.
        between: [String; 2],
        /// The rendezvous host.
        rendezvous: String,
        /// Transport (default udp).
        protocol: PunchProtocol,
        /// Give up after (default 5s).
        timeout: Duration,
    },
    /// Run a real program.
    Run {
        /// The host.
        on: String,
        /// Program and arguments.
        cmd: Vec<String>,
        /// Stop it after this (default: at the end of the scenario).
        timeout: Option<Duration>,
    },
    /// Do nothing for a while.
    Wait(Duration),
    /// Change a link's impairments (merged into the current settings).
    Link {
        /// The attachment.
        on: LinkTarget,
        /// The new settings, towards / away from the attachment.
        up: Impairment,
        /// Towards the host/device side.
        down: Impairment,
    },
    /// Act on a NAT.
    Nat {
        /// The NAT.
        on: String,
        /// What to do.
        action: NatAction,
    },
    /// Act on a running service (failover and drain scenarios). Done when the service is
    /// gone for `stop` and `kill`; for `drain`, done once the relay stops taking sessions,
    /// unless `wait: true` (then when it has exited after its last session).
    Service {
        /// The host running it (declares that service).
        on: String,
        /// Which of the host's services.
        service: ServiceType,
        /// What to do (`drain`: media relays only).
        action: ServiceAction,
    },
}

impl StepKind {
    /// The step kind's keyword.
    pub fn name(&self) -> StepKindName {
        match self {
            StepKind::Call { .. } => StepKindName::Call,
            StepKind::Reinvite { .. } => StepKindName::Reinvite,
            StepKind::Probe { .. } => StepKindName::Probe,
            StepKind::Punch { .. } => StepKindName::Punch,
            StepKind::Run { .. } => StepKindName::Run,
            StepKind::Wait(_) => StepKindName::Wait,
            StepKind::Link { .. } => StepKindName::Link,
            StepKind::Nat { .. } => StepKindName::Nat,
            StepKind::Service { .. } => StepKindName::Service,
        }
    }
}

/// One step of the timeline.
#[derive(Clone, Debug, PartialEq)]
pub struct Step {
    /// Its name (needed to refer to it from `expect:` or a `reinvite`).
    pub name: Option<String>,
    /// Not before this scenario time.
    pub at: Option<Duration>,
    /// For call/reinvite/run: done when the call ends or the program exits; for a
    /// `service` step that drains: when the relay has exited.
    pub wait: bool,
    /// What it does.
    pub kind: StepKind,
    /// Where the step's kind key is.
    pub pos: Pos,
}

// ===== expectations =====

/// A text check on a program's output.
#[derive(Clone, Debug, PartialEq)]
pub struct TextMatch {
    /// The output contains this text.
    pub contains: String,
}

/// A measure and its expected value. Percentages are fractions (`3%` → `0.03`).
#[derive(Clone, Debug, PartialEq)]
pub enum Measure {
    /// call: the call was answered.
    Established(bool),
    /// call: INVITE sent → 200 received, at the caller.
    SetupTime(Comparison<Duration>),
    /// call: relayed or direct media.
    Media(MediaPath),
    /// call: RTP loss, worse direction (fraction).
    Loss(Comparison<f64>),
    /// call: mean RFC 3550 interarrival jitter, worse direction.
    Jitter(Comparison<Duration>),
    /// call: mean one-way delay, worse direction.
    OneWayDelay(Comparison<Duration>),
    /// call: E-model MOS, worse direction.
    Mos(Comparison<f64>),
    /// probe: mapping behaviour.
    Mapping(Behavior),
    /// probe: filtering behaviour.
    Filtering(Behavior),
    /// probe: hairpinning.
    Hairpinning(bool),
    /// probe: UDP binding lifetime.
    BindingLifetime(Comparison<Duration>),
    /// probe: port allocation (an extension of SCENARIO-FORMAT.md version 1).
    PortAllocation(MeasuredPortAllocation),
    /// probe: port parity kept (an extension of SCENARIO-FORMAT.md version 1).
    PortParity(bool),
    /// punch: each side received a datagram from the other.
    Connected(bool),
    /// run: exit status.
    Exit(Comparison<i64>),
    /// run: standard output.
    Stdout(TextMatch),
    /// run: standard error.
    Stderr(TextMatch),
}

impl Measure {
    /// The measure's key in a scenario.
    pub fn key(&self) -> &'static str {
        match self {
            Measure::Established(_) => "established",
            Measure::SetupTime(_) => "setup_time",
            Measure::Media(_) => "media",
            Measure::Loss(_) => "loss",
            Measure::Jitter(_) => "jitter",
            Measure::OneWayDelay(_) => "one_way_delay",
            Measure::Mos(_) => "mos",
            Measure::Mapping(_) => "mapping",
            Measure::Filtering(_) => "filtering",
            Measure::Hairpinning(_) => "hairpinning",
            Measure::BindingLifetime(_) => "binding_lifetime",
            Measure::PortAllocation(_) => "port_allocation",
            Measure::PortParity(_) => "port_parity",
            Measure::Connected(_) => "connected",
            Measure::Exit(_) => "exit",
            Measure::Stdout(_) => "stdout",
            Measure::Stderr(_) => "stderr",
        }
    }
}

/// The measures each step kind can produce.
pub fn measures_of(kind: StepKindName) -> &'static [&'static str] {
    match kind {
        StepKindName::Call => &[
            "established",
            "setup_time",
            "media",
            "loss",
            "jitter",
            "one_way_delay",
            "mos",
        ],
        StepKindName::Probe => &[
            "mapping",
            "filtering",
            "hairpinning",
            "binding_lifetime",
            "port_allocation",
            "port_parity",
        ],
        StepKindName::Punch => &["connected"],
        StepKindName::Run => &["exit", "stdout", "stderr"],
        _ => &[],
    }
}

/// One measure check of an expectation.
#[derive(Clone, Debug, PartialEq)]
pub struct Check {
    /// The measure and expected value.
    pub measure: Measure,
    /// Where the measure's key is.
    pub pos: Pos,
}

/// One `when:` condition: the value at `path` means `value`.
#[derive(Clone, Debug, PartialEq)]
pub struct When {
    /// The dotted path as written.
    pub path: String,
    /// The value as written.
    pub value: String,
    /// Where the path key is.
    pub pos: Pos,
}

/// An expectation: one step and its measures.
#[derive(Clone, Debug, PartialEq)]
pub struct Expectation {
    /// The kind of step it names (call, probe, punch, run).
    pub kind: StepKindName,
    /// The step's name.
    pub step: String,
    /// Conditions on the cell; all must hold.
    pub when: Vec<When>,
    /// The measures, each its own check.
    pub checks: Vec<Check>,
    /// Index in the file's `expect:` list (stable across cells).
    pub index: usize,
    /// Where the expectation starts.
    pub pos: Pos,
}

// ===== the whole =====

/// A fully resolved scenario (or one matrix cell of it).
#[derive(Clone, Debug, PartialEq)]
pub struct Spec {
    /// Format version (1).
    pub version: u32,
    /// Name.
    pub name: String,
    /// Description.
    pub description: Option<String>,
    /// The scenario seed: `seed:` or the first 8 bytes (LE) of SHA-256(name).
    pub seed: u64,
    /// Fabric (default kernel).
    pub fabric: Fabric,
    /// Where `fabric:` is written (`None`: defaulted).
    pub fabric_pos: Option<Pos>,
    /// Scenario time limit (default 5m).
    pub time_limit: Duration,
    /// The topology, addresses resolved.
    pub topology: Topology,
    /// Link impairments.
    pub links: Vec<Link>,
    /// Services by host.
    pub services: Vec<Services>,
    /// Agents by host.
    pub agents: Vec<Agents>,
    /// The timeline.
    pub steps: Vec<Step>,
    /// Expectations. In a [`crate::scenario::Cell`], only those whose `when:` holds.
    pub expect: Vec<Expectation>,
}

impl Spec {
    /// The services of `host`.
    pub fn services_of(&self, host: &str) -> Option<&Services> {
        self.services.iter().find(|s| s.host == host)
    }
    /// The UA of `host`.
    pub fn ua_of(&self, host: &str) -> Option<&Ua> {
        self.agents.iter().find(|a| a.host == host)?.ua.as_ref()
    }
    /// The configuration of the relay the `sip-proxy` on `host` uses directly: the
    /// declared `media-relay` it resolved to ([`RelayUse::Declared`]), or for
    /// [`RelayUse::Implicit`] the defaults ([`MediaRelay::defaults`], at the proxy's
    /// position) with the proxy's `secret`. `None` for a dispatcher, no relay, or no proxy.
    pub fn proxy_relay(&self, host: &str) -> Option<MediaRelay> {
        let proxy = self.services_of(host)?.sip_proxy.as_ref()?;
        match &proxy.relay {
            RelayUse::Declared { host } => self.services_of(host)?.media_relay.clone(),
            RelayUse::Implicit { .. } => Some(MediaRelay {
                secret: proxy.secret.clone(),
                ..MediaRelay::defaults(proxy.pos)
            }),
            RelayUse::Dispatcher { .. } | RelayUse::None => None,
        }
    }
    /// The step named `name`.
    pub fn step(&self, name: &str) -> Option<&Step> {
        self.steps.iter().find(|s| s.name.as_deref() == Some(name))
    }
}
