//! The built-in agents that carry out steps (SCENARIO-FORMAT.md "Steps"), run to their end
//! by the timeline ([`crate::run::timeline`]).
//!
//! | module | what it is |
//! |---|---|
//! | [`punch`] | the `punch` step: UDP hole punching / TCP simultaneous open through a built-in rendezvous |
//! | [`probe`] | the `probe` step: RFC 5780 behaviour discovery with `relay::stun::Prober` |

pub mod probe;
pub mod punch;
