//! The typed scenario model: what a scenario (or one matrix cell of it) means, with
//! defaults applied, presets/profiles merged and addresses assigned.
//!
//! Items that the runner may have to reject later (see [`super::check_available`]) keep
//! the [`Pos`] of the key that asked for them.

use super::error::Pos;
use super::values::{Comparison, PortRange, Rate, UaPattern};
use emulator::Prefix;
// The cores own their scenario keywords (`VALUES`, `from_keyword`, `as_str`): the model
// holds their enums, no mirrors.
pub use emulator::Direction;
pub use emulator::firewall::{Action as RuleAction, FirewallClass, RuleProto};
pub use emulator::nat::{
    FilteringBehavior, Fragments, MappingBehavior, Pooling, PortAllocation, Preset, Refresh,
    SipAlgMode, Unsolicited,
};
// A punch step's transport is the punch agent's own enum.
pub use crate::agents::steps::punch::PunchProtocol;
pub use relay::sdp::IcePolicy;
pub use relay::sip::nat::NatTests;
pub use relay::sip::proxy::{KeepaliveMethod, MediaPolicy};
pub use relay::stun::{Behavior, PortAllocation as MeasuredPortAllocation};
use std::net::IpAddr;
use std::path::PathBuf;
use std::time::Duration;

macro_rules! keyword_enum {
    ($(#[$m:meta])* $name:ident { $($(#[$vm:meta])* $var:ident = $text:literal),+ $(,)? }) => {
        $(#[$m])*
        #[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
        pub enum $name {
            $($(#[$vm])* $var),+
        }
        impl $name {
            /// Every value as written in a scenario.
            pub const VALUES: &'static [&'static str] = &[$($text),+];
            /// The value as written in a scenario.
            pub fn as_str(&self) -> &'static str {
                match self { $($name::$var => $text),+ }
            }
            /// The value for a scenario keyword.
            pub fn from_keyword(s: &str) -> Option<Self> {
                match s { $($text => Some($name::$var),)+ _ => None }
            }
        }
        impl std::fmt::Display for $name {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str(self.as_str())
            }
        }
    };
}

keyword_enum!(
    /// Where the scenario runs.
    Fabric {
        /// TUN devices and network namespaces (the default).
        Kernel = "kernel",
        /// In-process, under virtual time.
        Virtual = "virtual",
    }
);

/// The media relay's latching (`media-relay.latching`): the relay core's own keywords.
pub use relay::media::Latching;

/// Where the relay candidate a `sip-proxy` inserts ranks among a stream's ICE candidates
/// (`sip-proxy.ice_priority`, RFC 8445 §5.1.2.1 type preference): the SDP rewrite's own.
pub use relay::sdp::IcePriority;

keyword_enum!(
    /// The kind of service a `service` step acts on.
    ServiceType {
        /// `media-relay`
        MediaRelay = "media-relay",
        /// `dispatcher`
        Dispatcher = "dispatcher",
        /// `sip-proxy`
        SipProxy = "sip-proxy",
    }
);

keyword_enum!(
    /// What a `service` step does to a running service.
    ServiceAction {
        /// Graceful stop: the service ends what it holds as on shutdown (a relay sends its
        /// media-ended notices) and closes its sockets.
        Stop = "stop",
        /// Abrupt end, as a crashed process: sockets vanish, nothing is sent.
        Kill = "kill",
        /// A media relay stops taking new sessions and exits after its last one ends
        /// (MediaProxy's graceful relay shutdown). Media relays only.
        Drain = "drain",
    }
);

keyword_enum!(
    /// A NAT step's action.
    NatActionKind {
        /// Drop all bindings.
        Reboot = "reboot",
        /// Move live flows to new external ports.
        Rebind = "rebind",
        /// A new external address pool.
        Renumber = "renumber",
    }
);

keyword_enum!(
    /// How a call's media went.
    MediaPath {
        /// Through a media relay or a TURN allocation.
        Relayed = "relayed",
        /// Peer to peer.
        Direct = "direct",
        /// Either.
        Any = "any",
    }
);

keyword_enum!(
    /// The kind of a step.
    StepKindName {
        /// `call`
        Call = "call",
        /// `reinvite`
        Reinvite = "reinvite",
        /// `probe`
        Probe = "probe",
        /// `punch`
        Punch = "punch",
        /// `run`
        Run = "run",
        /// `wait`
        Wait = "wait",
        /// `link`
        Link = "link",
        /// `nat`
        Nat = "nat",
        /// `service`
        Service = "service",
    }
);

mod run;
mod services;
mod topology;

pub use run::*;
pub use services::*;
pub use topology::*;
