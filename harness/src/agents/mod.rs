//! Built-in agents and services, as thin drivers over the sans-IO cores.

pub mod net;
pub mod probe;
pub mod punch;
pub mod stun;
