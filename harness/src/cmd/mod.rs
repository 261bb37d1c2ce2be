//! The `pinhole` subcommands other than `run` and `validate` (those are [`crate::cli`]).
//!
//! | module | what it is |
//! |---|---|
//! | [`serve`] | `pinhole serve proxy\|stun\|turn`, and the hidden `pinhole turn-client`: services and checks on this machine's sockets |
//! | [`serve_relay`] | `pinhole serve relay`: the media relay over ng on this machine's sockets |
//! | [`probe`] | `pinhole probe`: classify a real NAT and write a replayable profile |
//! | [`interactive`] | `pinhole up` / `exec` / `down`: a topology kept up for commands from other shells |
//! | [`bench`](mod@bench) | `pinhole bench nat\|proxy\|latency` |

pub mod bench;
pub mod interactive;
pub mod probe;
pub mod serve;
pub mod serve_relay;
