"""The flow prior: a learned, action-conditional generator of whole performances (Flax).

The style prior (models/style_prior.py) replaces every sequence with a draw from one Gaussian
per action. On a 10-person set each Gaussian is fitted from ~19 sequences, so the releases
carry little of the within-action variety a recognizer needs. This anonymizer keeps the style
prior's front end, action classifier, encoding and decoder, and its privacy contract (the
output depends on the input only through the predicted action, the duration and a seed), but
draws the performance from a conditional flow-matching model (Lipman et al. 2023; rectified
flow, Liu et al. 2023) trained on all training people at once:

  coordinates  u = ((encoding - mean[action]) @ basis) / scale, in the within-action subspace
               shared by every action (train/style_prior.shared_subspace), so a rare action
               borrows the structure of the others;
  velocity     v(u_t, t | action, duration): an MLP with residual blocks, conditioned on a
               learned action embedding and the log duration;
  training     u_t = (1 - t) u_0 + t u_1 with u_0 ~ N(0, I) and u_1 a training sequence, loss
               |v(u_t, t) - (u_1 - u_0)|^2 (train/flow_prior.py, jitted, data-parallel over the
               mesh, Orbax checkpoints);
  sampling     u_0 from the draw's seed, `sample_steps` midpoint steps of du/dt = v from t=0
               to 1, then decoded like the style prior's draws.

What leaks is what the style prior leaks (the duration, the predicted action's errors) plus
whatever the network memorised about the training people as a group.
"""

from __future__ import annotations

import dataclasses
import functools

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np

from skeleton_anon.models.style_prior import StylePrior

FLOW_PRIOR = 'flow_prior'
KNOBS = ('components', 'frames', 'hidden', 'depth', 'embed', 'sample_steps', 'duration',
         'vary_body', 'texture', 'output_duration', 'whiten')
# duration=1 also conditions the draw on the input's log duration. Off by default: people have
# their own speeds, and on the 10-person MSRC-12 subset a duration-conditioned flow let the
# retrained body attacker reach 0.325 identity (chance 0.10; docs/privacy.md).
# texture > 0 adds to every draw Gaussian detail off the shared subspace, with the pooled
# residual spread of the training encodings times texture (prior.residual_std): the subspace
# keeps the large, smooth structure of the motion and drops the fine detail of real recordings,
# and the larger the training set the more of it falls outside the first `components`.
# output_duration: the style prior's (models/style_prior.output_lengths); with duration=1 the
# draw is conditioned on the output's duration.
# whiten in [0, 1]: the flow works in coordinates z / scale with scale = std ** whiten (times a
# constant that keeps their overall size): 1 gives every direction unit variance, so the loss
# weighs a direction of a millimetre's spread like the main swing of the arm; 0 keeps the
# directions' physical proportions, so the flow spends itself where the motion is (see
# train/flow_prior.coordinate_scale).
DEFAULT_KNOBS = dict(components=96, frames=0, hidden=256, depth=3, embed=32, sample_steps=16,
                     duration=0, vary_body=0.0, texture=0.0, output_duration='input', whiten=1.0)


def time_features(t: jnp.ndarray, dim: int) -> jnp.ndarray:
  """[n, dim] sinusoidal features of flow times t [n] in [0, 1]."""
  freqs = jnp.exp(jnp.linspace(0.0, jnp.log(1000.0), dim // 2))
  angles = t[:, None] * freqs[None]
  return jnp.concatenate([jnp.sin(angles), jnp.cos(angles)], axis=-1)


class VelocityField(nn.Module):
  """v(u, t | action, log duration) -> [n, K]."""
  components: int
  num_actions: int
  hidden: int = 256
  depth: int = 3
  embed: int = 32

  @nn.compact
  def __call__(self, u, t, action, log_duration):
    cond = jnp.concatenate([
        time_features(t, self.embed),
        nn.Embed(max(self.num_actions, 1), self.embed)(action),
        nn.Dense(self.embed)(log_duration[:, None])], axis=-1)
    h = nn.Dense(self.hidden)(jnp.concatenate([u, cond], axis=-1))
    for _ in range(self.depth):
      y = nn.LayerNorm()(h)
      y = nn.Dense(self.hidden)(jnp.concatenate([y, cond], axis=-1))
      h = h + nn.Dense(self.hidden)(nn.gelu(y))
    # Zero-initialised output: the untrained flow is the identity map of its noise.
    return nn.Dense(self.components, kernel_init=nn.initializers.zeros)(nn.gelu(nn.LayerNorm()(h)))


def flow_matching_loss(model: VelocityField, params, batch: dict, rng: jax.Array):
  """Mean over the batch's real rows (batch['weight']) of |v(u_t, t) - (u_1 - u_0)|^2."""
  u1 = batch['u']
  noise_key, time_key = jax.random.split(rng)
  u0 = jax.random.normal(noise_key, u1.shape, u1.dtype)
  t = jax.random.uniform(time_key, (u1.shape[0],), u1.dtype)
  ut = (1 - t[:, None]) * u0 + t[:, None] * u1
  v = model.apply({'params': params}, ut, t, batch['action'], batch['log_duration'])
  per_sample = jnp.mean(jnp.square(v - (u1 - u0)), axis=-1)
  weight = batch['weight']
  return jnp.sum(per_sample * weight) / jnp.maximum(jnp.sum(weight), 1.0)


@functools.partial(jax.jit, static_argnums=(0, 5))
def integrate(model: VelocityField, params, u0, action, log_duration, steps: int):
  """u_1 from u_0 along du/dt = v(u, t) with `steps` midpoint steps (pure, jitted)."""
  dt = 1.0 / steps

  def step(u, i):
    t = jnp.full((u.shape[0],), i * dt, u.dtype)
    k1 = model.apply({'params': params}, u, t, action, log_duration)
    mid = u + 0.5 * dt * k1
    k2 = model.apply({'params': params}, mid, t + 0.5 * dt, action, log_duration)
    return u + dt * k2, None

  u, _ = jax.lax.scan(step, u0, jnp.arange(steps))
  return u


@dataclasses.dataclass
class FlowPrior:
  """A trained flow prior: the style prior it shares a front end with, and the network.

  prior: a StylePrior fitted with a shared subspace (prior.basis[a] is the same for every a);
  scale [K]: the flow's unit along each coordinate (train/flow_prior.coordinate_scale); variables: {'params'} of `model`;
  sample_steps: midpoint steps per draw; log_duration_mean/std standardise the condition,
  which is all zeros unless condition_duration (the draw then ignores the duration; the decoder
  still plays it at the input's duration); texture: see DEFAULT_KNOBS.
  """
  prior: StylePrior
  model: VelocityField
  variables: dict
  scale: np.ndarray
  log_duration_mean: float
  log_duration_std: float
  sample_steps: int = 16
  condition_duration: bool = False
  texture: float = 0.0

  def log_duration(self, lengths) -> np.ndarray:
    if not self.condition_duration:
      return np.zeros(len(lengths), np.float32)
    return ((np.log(np.maximum(np.asarray(lengths, np.float32), 1.0)) - self.log_duration_mean)
            / self.log_duration_std).astype(np.float32)

  def generate(self, rows: np.ndarray, lengths: np.ndarray, seeds) -> np.ndarray:
    """[n, D] encodings of new performances of actions `rows` at durations `lengths`, one per
    seed (the same seed, action and duration always give the same performance)."""
    rows = np.asarray(rows, np.int32)
    k = self.scale.shape[0]
    u0 = np.stack([np.random.default_rng(s).standard_normal(k) for s in seeds]).astype(
        np.float32)
    u1 = np.asarray(integrate(self.model, self.variables['params'], u0, rows,
                              self.log_duration(lengths), int(self.sample_steps)))
    basis = self.prior.basis[0]
    drawn = self.prior.mean[rows] + (u1 * self.scale) @ basis.T
    if self.texture > 0 and self.prior.residual_std is not None:
      detail = np.stack([np.random.default_rng([*s, 2]).standard_normal(basis.shape[0])
                         for s in seeds]) * self.prior.residual_std
      drawn = drawn + self.texture * (detail - (detail @ basis) @ basis.T)
    return drawn

  def state_arrays(self) -> dict[str, np.ndarray]:
    """The arrays beside the network's variables that a saved flow prior needs."""
    return {'scale': np.asarray(self.scale, np.float32),
            'log_duration': np.asarray([self.log_duration_mean, self.log_duration_std],
                                       np.float32)}


def build_velocity_field(prior: StylePrior, knobs: dict) -> VelocityField:
  return VelocityField(components=int(prior.basis.shape[-1]), num_actions=len(prior.actions),
                       hidden=int(knobs.get('hidden', DEFAULT_KNOBS['hidden'])),
                       depth=int(knobs.get('depth', DEFAULT_KNOBS['depth'])),
                       embed=int(knobs.get('embed', DEFAULT_KNOBS['embed'])))


def init_variables(model: VelocityField, seed: int) -> dict:
  k = model.components
  return jax.jit(model.init)(jax.random.key(seed), jnp.zeros((2, k)), jnp.zeros((2,)),
                             jnp.zeros((2,), jnp.int32), jnp.zeros((2,)))
