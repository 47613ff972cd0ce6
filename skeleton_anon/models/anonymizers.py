"""Per-frame anonymizers: x [N, M, T, V, C] -> x' of the same shape.

Each frame is flattened to F = M*V*C features (all persons together, as in the reference code),
transformed, and reshaped back. Padded frames (t >= lengths[n]) and absent persons (all
coordinates of that person in that frame exactly zero) are set to exactly zero in the output, so the
anonymized file keeps the input's valid frames and persons.

Registered names and knobs (`build_anonymizer(name, num_persons=M, num_joints=V, **knobs)`):
  'residual_mlp'
    variant: 'paper' (default): one block x + fc2(relu(fc1(x))), the paper's "two fully connected
      layers initialised close to zero". 'reference': `num_blocks` (default 10) blocks
      x + relu(fc2(relu(fc1(x)))) with Linear(F, F), as in the reference code (which used PyTorch's
      default init; here they start small too, so the anonymizer starts near identity).
    hidden: hidden width of fc1 (default F; 'reference' uses F as in the original).
    num_blocks: number of residual blocks (default 1 for 'paper', 10 for 'reference').
    init_scale: weights ~ Normal(0, (init_scale / sqrt(fan_in))^2), biases 0 (default 1e-3). Exact
      zero would leave relu units with zero gradient, so a small random init is used instead.
      At init, max|f(x) - x| <= IDENTITY_TOLERANCE * max|x| (checked in the tests).
  'autoencoder'
    latent: H, width of the code (default 10). hidden: encoder widths before the code
      (default (500, 100)); the decoder mirrors them. Relu after every encoder layer and every
      decoder layer but the last. Parameter subtrees are named 'encoder' and 'decoder' exactly (the
      training engine freezes 'encoder' by masking the optimizer).

Both accept `train` for a uniform call signature; they have no BatchNorm or dropout.
"""

from __future__ import annotations

import dataclasses
from typing import Sequence

import flax.linen as nn
import jax
import jax.numpy as jnp

from skeleton_anon.data.transforms import valid_mask
from skeleton_anon.errors import ConfigError
from skeleton_anon.models.layers import torch_default_init
from skeleton_anon.models.registry import register_anonymizer

# Relative distance from identity of a freshly initialised residual MLP (see module docstring).
IDENTITY_TOLERANCE = 1e-4


def _output_mask(x: jax.Array, lengths: jax.Array) -> jax.Array:
  """float [N, M, T, 1, 1]: data.transforms.valid_mask, broadcastable over joints and channels."""
  return valid_mask(x, lengths).astype(x.dtype)[..., None, None]


def _flatten_frames(x: jax.Array) -> jax.Array:
  """[N, M, T, V, C] -> [N, T, M*V*C]."""
  n, m, t, v, c = x.shape
  return jnp.transpose(x, (0, 2, 1, 3, 4)).reshape(n, t, m * v * c)


def _unflatten_frames(frames: jax.Array, shape) -> jax.Array:
  """[N, T, M*V*C] -> [N, M, T, V, C]."""
  n, m, t, v, c = shape
  return jnp.transpose(frames.reshape(n, t, m, v, c), (0, 2, 1, 3, 4))


def _small_normal(scale: float):
  """Normal(0, (scale / sqrt(fan_in))^2): keeps a residual branch close to zero at init."""
  return nn.initializers.variance_scaling(scale ** 2, 'fan_in', 'normal')


class ResidualMLPAnonymizer(nn.Module):
  """Residual MLP per frame (see the module docstring for the two variants)."""
  num_persons: int
  num_joints: int
  num_channels: int = 3
  variant: str = 'paper'
  hidden: int | None = None
  num_blocks: int | None = None
  init_scale: float = 1e-3

  @property
  def num_features(self) -> int:
    return self.num_persons * self.num_joints * self.num_channels

  @nn.compact
  def __call__(self, x: jax.Array, lengths: jax.Array, train: bool = False) -> jax.Array:
    if self.variant not in ('paper', 'reference'):
      raise ValueError(f"residual_mlp variant must be 'paper' or 'reference', got "
                       f'{self.variant!r}')
    features = self.num_features
    hidden = self.hidden or features
    blocks = self.num_blocks or (1 if self.variant == 'paper' else 10)
    init = _small_normal(self.init_scale)
    h = _flatten_frames(x)
    for i in range(blocks):
      branch = nn.relu(nn.Dense(hidden, kernel_init=init, name=f'block{i}_fc1')(h))
      branch = nn.Dense(features, kernel_init=init, name=f'block{i}_fc2')(branch)
      if self.variant == 'reference':
        branch = nn.relu(branch)  # the reference applies relu before the residual add
      h = h + branch
    return _unflatten_frames(h, x.shape) * _output_mask(x, lengths)


class _DenseStack(nn.Module):
  """Dense layers with relu after each, except the last when `final_activation` is False."""
  widths: Sequence[int]
  final_activation: bool = True

  @nn.compact
  def __call__(self, h: jax.Array) -> jax.Array:
    for i, width in enumerate(self.widths):
      h = nn.Dense(width, kernel_init=torch_default_init, name=f'fc{i + 1}')(h)
      if self.final_activation or i < len(self.widths) - 1:
        h = nn.relu(h)
    return h


class AutoEncoderAnonymizer(nn.Module):
  """Per-frame auto-encoder F -> 500 -> 100 -> H -> 100 -> 500 -> F (reference code's sizes)."""
  num_persons: int
  num_joints: int
  num_channels: int = 3
  latent: int = 10
  hidden: Sequence[int] = (500, 100)

  def setup(self):
    features = self.num_persons * self.num_joints * self.num_channels
    self.encoder = _DenseStack(tuple(self.hidden) + (self.latent,), final_activation=True)
    self.decoder = _DenseStack(tuple(reversed(tuple(self.hidden))) + (features,),
                               final_activation=False)

  def encode(self, x: jax.Array) -> jax.Array:
    """[N, M, T, V, C] -> codes [N, T, H] (padding not masked)."""
    return self.encoder(_flatten_frames(x))

  def decode(self, codes: jax.Array, shape) -> jax.Array:
    """codes [N, T, H] -> frames of `shape` [N, M, T, V, C] (padding not masked)."""
    return _unflatten_frames(self.decoder(codes), shape)

  def __call__(self, x: jax.Array, lengths: jax.Array, train: bool = False) -> jax.Array:
    return self.decode(self.encode(x), x.shape) * _output_mask(x, lengths)


def reconstruction_loss(module: nn.Module, params, x: jax.Array,
                        lengths: jax.Array) -> jax.Array:
  """MSE over valid entries (padding excluded): the auto-encoder's pretraining loss."""
  out = module.apply({'params': params}, x, lengths)
  mask = jnp.broadcast_to(_output_mask(x, lengths), x.shape)
  return jnp.sum(mask * (out - x) ** 2) / jnp.maximum(mask.sum(), 1.0)


def _check_knobs(name: str, cls, knobs: dict) -> None:
  """Unknown knobs are a one-line ConfigError, not a dataclass TypeError."""
  known = {f.name for f in dataclasses.fields(cls)} - {'parent', 'name'}
  unknown = sorted(set(knobs) - known)
  if unknown:
    raise ConfigError(f'anonymizer {name!r}: unknown knobs {unknown}; known: {sorted(known)}')


@register_anonymizer('residual_mlp')
def build_residual_mlp(*, num_persons: int, num_joints: int, **knobs) -> ResidualMLPAnonymizer:
  """Residual MLP anonymizer; knobs: variant, hidden, num_blocks, init_scale, num_channels."""
  _check_knobs('residual_mlp', ResidualMLPAnonymizer, knobs)
  if knobs.get('variant', 'paper') not in ('paper', 'reference'):
    raise ConfigError(f"residual_mlp variant must be 'paper' or 'reference', got "
                      f"{knobs['variant']!r}")
  return ResidualMLPAnonymizer(num_persons=num_persons, num_joints=num_joints, **knobs)


@register_anonymizer('autoencoder')
def build_autoencoder(*, num_persons: int, num_joints: int, **knobs) -> AutoEncoderAnonymizer:
  """Auto-encoder anonymizer; knobs: latent, hidden, num_channels."""
  _check_knobs('autoencoder', AutoEncoderAnonymizer, knobs)
  if 'hidden' in knobs:  # configs may give a list; a tuple keeps the module hashable
    knobs['hidden'] = tuple(int(w) for w in knobs['hidden'])
  return AutoEncoderAnonymizer(num_persons=num_persons, num_joints=num_joints, **knobs)
