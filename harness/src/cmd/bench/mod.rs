//! `pinhole bench`: figures printed, never judged.
//!
//! | module | what it is |
//! |---|---|
//! | [`nat`] | `pinhole bench nat`: pinhole's kernel fabric against Linux's nftables NAT, side by side |
//! | [`proxy`] | `pinhole bench proxy`: SIPp call load through Kamailio (stock configuration) and pinhole's proxy |
//! | [`load`] | the hidden load programs `bench nat` runs in its hosts |
//! | [`latency`] | `pinhole bench latency`: round trips through pinhole's drivers, idle CPU of its services |

pub mod latency;
pub mod load;
pub mod nat;
mod procstat;
pub mod proxy;
mod sipp_stats;
