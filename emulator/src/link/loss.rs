//! Random loss: Bernoulli, or the Gilbert–Elliott two-state burst model (E. N. Gilbert,
//! 1960; E. O. Elliott, 1963), parametrised as netem's `loss gemodel p r 1-h 1-k`.

use crate::rng::SimRng;

/// A link's loss model (scenario `loss: 2%` or `loss: { gilbert: { p, r, h, k } }`).
/// Probabilities are in `[0, 1]`; values outside are clamped.
#[derive(Clone, Debug, PartialEq, Default)]
pub enum Loss {
    /// No random loss.
    #[default]
    None,
    /// Each packet is lost independently with this probability.
    Bernoulli(f64),
    /// Two states, good and bad. For each packet the state first moves (good→bad with
    /// probability `p`, bad→good with `r`), then the packet is delivered with probability
    /// `k` in the good state and `h` in the bad one. The chain starts in the good state.
    ///
    /// Stationary: `π_bad = p / (p + r)`, loss `= π_good·(1 − k) + π_bad·(1 − h)`; with
    /// `k = 1, h = 0` bursts of loss last `1/r` packets on average. (netem's `1-k` and
    /// `1-h` are the loss probabilities; here `k` and `h` are delivery probabilities, as in
    /// the scenario format.)
    GilbertElliott {
        /// P(good → bad) per packet.
        p: f64,
        /// P(bad → good) per packet.
        r: f64,
        /// P(delivered | bad).
        h: f64,
        /// P(delivered | good).
        k: f64,
    },
}

impl Loss {
    /// The long-run fraction of packets lost.
    pub fn expected_loss(&self) -> f64 {
        let c = |x: f64| x.clamp(0.0, 1.0);
        match *self {
            Loss::None => 0.0,
            Loss::Bernoulli(p) => c(p),
            Loss::GilbertElliott { p, r, h, k } => {
                let (p, r, h, k) = (c(p), c(r), c(h), c(k));
                if p + r == 0.0 {
                    // Never leaves the good state it starts in.
                    return 1.0 - k;
                }
                let bad = p / (p + r);
                (1.0 - bad) * (1.0 - k) + bad * (1.0 - h)
            }
        }
    }
}

/// The Gilbert–Elliott chain's state.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub(crate) struct LossState {
    bad: bool,
}

impl LossState {
    /// Whether the next packet is lost.
    pub(crate) fn lost(&mut self, loss: &Loss, rng: &mut SimRng) -> bool {
        match *loss {
            Loss::None => false,
            Loss::Bernoulli(p) => rng.chance(p),
            Loss::GilbertElliott { p, r, h, k } => {
                if self.bad {
                    if rng.chance(r) {
                        self.bad = false;
                    }
                } else if rng.chance(p) {
                    self.bad = true;
                }
                let deliver = if self.bad { h } else { k };
                !rng.chance(deliver)
            }
        }
    }
}
