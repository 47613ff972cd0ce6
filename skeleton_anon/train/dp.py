"""Person-level differential privacy for fitted anonymizers: clipped noisy sums and accounting.

Every statistic of a private fit (train/private_prior.py) is a sum over people of one vector per
person, each clipped to a known L2 norm, plus Gaussian noise (the Gaussian mechanism). The unit
of privacy is a person: adding or removing everything one person recorded changes each sum by at
most its clip. A sequence of such releases with noise multipliers z_1..z_m (noise std / clip) is
exactly one Gaussian mechanism of multiplier (sum_i z_i^-2)^-1/2, i.e. mu-Gaussian DP with
mu = sqrt(sum_i z_i^-2) (Dong, Roth & Su 2022, Cor. 3.3), whose (epsilon, delta) curve is known
in closed form (Balle & Wang 2018, Thm. 8):

  delta(epsilon) = Phi(-epsilon / mu + mu / 2) - exp(epsilon) Phi(-epsilon / mu - mu / 2).

That curve is tight, so no accountant library is needed for these fits (a PLD accountant, e.g.
Google's dp-accounting, gives the same numbers; tests/train/test_dp.py holds its values for a
few cases, and the RDP bound is looser: it is here for comparison). Choosing the noise: the
multiplier z of one mechanism meeting (epsilon, delta) is found by bisection, and a fit that
splits its budget over rounds with weights w_r (sum 1) gives round r multiplier z / sqrt(w_r).

The noise must be secret: `secret_rng` draws from the operating system's entropy unless a test
fixes the seed, because a known seed would let anyone subtract the noise.
"""

from __future__ import annotations

import math
import secrets

import numpy as np

from skeleton_anon.errors import ConfigError

# Orders of the Renyi bound (comparison only; the fits use the exact Gaussian curve).
RDP_ORDERS = tuple([1 + x / 10.0 for x in range(1, 100)] + list(range(11, 64)) + [128, 256])


def _phi(x: float) -> float:
  return 0.5 * math.erfc(-x / math.sqrt(2.0))


def gaussian_delta(mu: float, epsilon: float) -> float:
  """The smallest delta for which a mu-GDP mechanism is (epsilon, delta)-DP."""
  if mu <= 0:
    return 0.0
  if math.isinf(mu):
    return 1.0
  return max(0.0, _phi(-epsilon / mu + mu / 2) - math.exp(epsilon) * _phi(-epsilon / mu - mu / 2))


def _smallest(ok, lo: float, hi: float, limit: float = 1e6) -> float:
  """The smallest v in [lo, inf) with ok(v), for ok false below some point and true above it
  (the Gaussian curve is monotone in both epsilon and the multiplier): doubling, then 100
  bisection steps; inf when even `limit` is not ok."""
  while not ok(hi):
    hi *= 2
    if hi > limit:
      return math.inf
  for _ in range(100):
    mid = 0.5 * (lo + hi)
    lo, hi = (lo, mid) if ok(mid) else (mid, hi)
  return hi


def gaussian_epsilon(noise_multiplier: float, delta: float) -> float:
  """The epsilon spent at `delta` by one Gaussian mechanism of this multiplier (inf for 0)."""
  if noise_multiplier <= 0:
    return math.inf
  return _smallest(lambda eps: gaussian_delta(1.0 / noise_multiplier, eps) <= delta, 0.0, 1.0)


def rdp_epsilon(noise_multiplier: float, delta: float, orders=RDP_ORDERS) -> float:
  """The Renyi-DP bound on the same mechanism (Canonne, Kamath & Steinke 2020, Prop. 12):
  min over orders a of a/(2 z^2) + log(1 - 1/a) - log(delta a)/(a - 1). Never below the exact
  `gaussian_epsilon`."""
  a = np.asarray(orders, np.float64)
  rdp = a / (2.0 * noise_multiplier ** 2)
  return float(max(0.0, np.min(rdp + np.log1p(-1.0 / a) - np.log(delta * a) / (a - 1))))


def check_budget(epsilon: float, delta: float) -> None:
  """ConfigError unless epsilon > 0 (inf allowed: no noise) and 0 < delta < 1."""
  if not isinstance(epsilon, (int, float)) or math.isnan(epsilon) or epsilon <= 0:
    raise ConfigError(f'anonymizer.epsilon must be > 0 (or inf for the private fit without '
                      f'noise; 0 turns differential privacy off), got {epsilon!r}')
  if not isinstance(delta, (int, float)) or not 0.0 < delta < 1.0:
    raise ConfigError(f'anonymizer.delta must be in (0, 1), got {delta!r}')


def noise_multiplier(epsilon: float, delta: float) -> float:
  """The smallest multiplier z of one Gaussian mechanism that is (epsilon, delta)-DP (0 for
  epsilon = inf)."""
  check_budget(epsilon, delta)
  if math.isinf(epsilon):
    return 0.0
  return _smallest(lambda z: gaussian_delta(1.0 / z, epsilon) <= delta, 1e-3, 1.0)


def secret_rng(seed: int | None = None) -> np.random.Generator:
  """The noise's generator: seeded only when a test asks (a known seed voids the guarantee)."""
  return np.random.default_rng(secrets.randbits(128) if seed is None else seed)


def clip_rows(rows: np.ndarray, clip: float) -> np.ndarray:
  """rows [P, ...] with every person's row scaled down to L2 norm <= clip."""
  rows = np.asarray(rows, np.float64)
  flat = rows.reshape(len(rows), -1)
  norm = np.linalg.norm(flat, axis=1, keepdims=True)
  scale = np.minimum(1.0, clip / np.maximum(norm, 1e-300))
  return (flat * scale).reshape(rows.shape)


class Mechanism:
  """A run of Gaussian noisy sums sharing one budget, recorded as it spends.

  z: the multiplier of the single equivalent mechanism (0: no noise). A release with weight w
  (weights of all releases sum to 1) gets multiplier z / sqrt(w), so whatever the split, the
  whole run is exactly z-Gaussian (module docstring).
  """

  def __init__(self, z: float, rng: np.random.Generator):
    self.z, self.rng, self.spent, self.releases = float(z), rng, 0.0, []

  def noisy_sum(self, name: str, rows: np.ndarray, clip: float, weight: float) -> np.ndarray:
    """sum over people of `clip_rows(rows, clip)` plus N(0, (z clip / sqrt(weight))^2)."""
    if weight <= 0 or self.spent + weight > 1.0 + 1e-9:
      raise ValueError(f'{name}: budget weight {weight} exceeds what is left '
                       f'({1.0 - self.spent:.3g})')
    self.spent += weight
    total = clip_rows(rows, clip).sum(0)
    std = self.z * clip / math.sqrt(weight)
    self.releases.append({'name': name, 'clip': float(clip), 'weight': float(weight),
                          'noise_std': float(std), 'size': int(total.size)})
    return total + (self.rng.normal(0.0, std, total.shape) if std > 0 else 0.0)
