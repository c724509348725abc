//! Value distributions: uniform, normal, zipf skew and weighted choices.

use rand::RngExt;
use rand::distr::Distribution as _;
use rand::distr::weighted::WeightedIndex;
use rand_chacha::ChaCha8Rng;
use rand_distr::{Normal, Zipf};

use super::spec::Distribution;

/// Samples numbers within `[lo, hi]`.
#[derive(Debug, Clone)]
pub(crate) enum NumSampler {
    Uniform {
        lo: f64,
        hi: f64,
    },
    Normal {
        normal: Normal<f64>,
        lo: f64,
        hi: f64,
    },
    /// Rank 1 is `lo`, the most frequent value.
    Zipf {
        zipf: Zipf<f64>,
        lo: f64,
        hi: f64,
    },
}

impl NumSampler {
    /// A sampler for `[lo, hi]`; `None` as distribution means uniform.
    pub(crate) fn new(dist: Option<&Distribution>, lo: f64, hi: f64) -> Result<Self, String> {
        let (lo, hi) = if lo <= hi { (lo, hi) } else { (hi, lo) };
        Ok(match dist {
            None => NumSampler::Uniform { lo, hi },
            Some(Distribution::Uniform { min, max }) => NumSampler::Uniform {
                lo: min.unwrap_or(lo).max(lo),
                hi: max.unwrap_or(hi).min(hi),
            },
            Some(Distribution::Normal { mean, stddev }) => NumSampler::Normal {
                normal: Normal::new(*mean, *stddev).map_err(|e| e.to_string().to_lowercase())?,
                lo,
                hi,
            },
            Some(Distribution::Zipf { exponent }) => {
                let n = (hi - lo).floor() + 1.0;
                NumSampler::Zipf {
                    zipf: Zipf::new(n.max(1.0), *exponent)
                        .map_err(|e| e.to_string().to_lowercase())?,
                    lo,
                    hi,
                }
            }
        })
    }

    pub(crate) fn sample(&self, rng: &mut ChaCha8Rng) -> f64 {
        match self {
            NumSampler::Uniform { lo, hi } => {
                if lo >= hi {
                    *lo
                } else {
                    rng.random_range(*lo..=*hi)
                }
            }
            NumSampler::Normal { normal, lo, hi } => normal.sample(rng).clamp(*lo, *hi),
            NumSampler::Zipf { zipf, lo, hi } => (lo + zipf.sample(rng) - 1.0).min(*hi),
        }
    }

    /// The mean of the distribution, for progress estimates.
    pub(crate) fn mean(&self) -> f64 {
        match self {
            NumSampler::Uniform { lo, hi } => (lo + hi) / 2.0,
            NumSampler::Normal { normal, lo, hi } => normal.mean().clamp(*lo, *hi),
            NumSampler::Zipf { lo, hi, .. } => lo + (hi - lo) / 10.0,
        }
    }
}

/// Picks one of `n` items (parent rows): uniform, normal around the middle,
/// or zipf where a few items get most of the picks.
#[derive(Debug, Clone)]
pub(crate) struct IndexSampler {
    n: usize,
    shape: IndexShape,
}

#[derive(Debug, Clone)]
enum IndexShape {
    Uniform,
    Normal(Normal<f64>),
    Zipf(Zipf<f64>),
}

impl IndexSampler {
    pub(crate) fn new(dist: Option<&Distribution>, n: usize) -> Result<Self, String> {
        let shape = match dist {
            None | Some(Distribution::Uniform { .. }) => IndexShape::Uniform,
            Some(Distribution::Normal { mean, stddev }) => IndexShape::Normal(
                // Mean and stddev are fractions of the item count here.
                Normal::new(mean * n as f64, stddev * n as f64)
                    .map_err(|e| e.to_string().to_lowercase())?,
            ),
            Some(Distribution::Zipf { exponent }) => IndexShape::Zipf(
                Zipf::new((n as f64).max(1.0), *exponent)
                    .map_err(|e| e.to_string().to_lowercase())?,
            ),
        };
        Ok(IndexSampler { n, shape })
    }

    pub(crate) fn sample(&self, rng: &mut ChaCha8Rng) -> usize {
        if self.n <= 1 {
            return 0;
        }
        match &self.shape {
            IndexShape::Uniform => rng.random_range(0..self.n),
            IndexShape::Normal(normal) => (normal.sample(rng).max(0.0) as usize).min(self.n - 1),
            IndexShape::Zipf(zipf) => {
                let rank = (zipf.sample(rng) as usize).clamp(1, self.n) - 1;
                // Spread the popular ranks over the key space so that "the
                // big customers" are not simply the oldest ids.
                scatter(rank, self.n)
            }
        }
    }
}

/// A bijection of `0..n` that scatters neighbouring values.
pub(crate) fn scatter(i: usize, n: usize) -> usize {
    let multiplier = coprime_multiplier(n as u128);
    ((i as u128 * multiplier) % n as u128) as usize
}

/// A large multiplier coprime with `n`, for index permutations.
pub(crate) fn coprime_multiplier(n: u128) -> u128 {
    let mut m: u128 = 2_654_435_761;
    while n > 1 && gcd(m, n) != 1 {
        m += 2;
    }
    m
}

fn gcd(mut a: u128, mut b: u128) -> u128 {
    while b != 0 {
        (a, b) = (b, a % b);
    }
    a
}

/// Weighted choice among a fixed list.
#[derive(Debug, Clone)]
pub(crate) struct Weighted {
    index: WeightedIndex<f64>,
}

impl Weighted {
    pub(crate) fn new(weights: &[f64]) -> Result<Self, String> {
        WeightedIndex::new(weights.iter().copied())
            .map(|index| Weighted { index })
            .map_err(|e| e.to_string().to_lowercase())
    }

    pub(crate) fn sample(&self, rng: &mut ChaCha8Rng) -> usize {
        self.index.sample(rng)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scatter_is_a_permutation() {
        for n in [1usize, 2, 7, 10, 1000, 4096] {
            let mut seen: Vec<usize> = (0..n).map(|i| scatter(i, n)).collect();
            seen.sort_unstable();
            assert_eq!(seen, (0..n).collect::<Vec<_>>());
        }
    }
}
