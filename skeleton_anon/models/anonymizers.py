"""Per-frame anonymizers: x [N, M, T, V, C] -> x' of the same shape.

Each frame is flattened to F = M*V*C features (all persons together, as in the reference code),
transformed, and reshaped back. Padded frames (t >= lengths[n]) and absent persons (all
coordinates of that person in that frame exactly zero) are set to exactly zero in the output, so the
anonymized file keeps the input's valid frames and persons. (`temporal_anonymizer` sees the whole
sequence instead of one frame.)

Registered names and knobs (`build_anonymizer(name, num_persons=M, num_joints=V, **knobs)`):
  'residual_mlp'
    variant: 'paper' (default): one block x + fc2(relu(fc1(x))), the paper's two fully connected
      layers. 'reference': `num_blocks` (default 10) blocks x + relu(fc2(relu(fc1(x)))) with
      Linear(F, F), as in the reference code.
    hidden: hidden width of fc1 (default F; 'reference' uses F as in the original).
    num_blocks: number of residual blocks (default 1 for 'paper', 10 for 'reference').
    branch_init: how each residual branch starts (BRANCH_INITS). 'antisymmetric' (default):
      the branch is a pair of identical, PyTorch-default-initialised copies whose outputs are
      subtracted, (b_plus(h) - b_minus(h)) / sqrt(2), so f is exactly the identity at init while
      every kernel gets the gradient a standard-init network's would get (/ sqrt(2) per copy).
      'zero_output': standard fc1, zero fc2 (Fixup-style: identity at init and half the
      parameters, but fc1 has no gradient until fc2 has moved). 'standard': PyTorch's default for
      both layers, as the reference code (not the identity at init). The earlier init, both
      layers at 1e-3 scale, left the kernels about 1000x short of gradient: only fc2's bias
      learned and f became a constant shift that fooled the classifiers it was trained against
      and nothing else.
  'autoencoder'
    latent: H, width of the code (default 10). hidden: encoder widths before the code
      (default (500, 100)); the decoder mirrors them. Relu after every encoder layer and every
      decoder layer but the last, PyTorch's default init (every layer learns; the stage
      pretrains it to reconstruct). Parameter subtrees are named 'encoder' and 'decoder' exactly
      (the training engine freezes 'encoder' by masking the optimizer).

Both accept `train` for a uniform call signature; they have no BatchNorm or dropout. Builders
accept and ignore `layout` (the temporal anonymizer needs it; callers may pass it to every one).
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

# Residual-branch initialisations of the residual MLP (module docstring).
BRANCH_INITS = ('antisymmetric', 'zero_output', 'standard')


def output_mask(x: jax.Array, lengths: jax.Array) -> jax.Array:
  """float [N, M, T, 1, 1]: data.transforms.valid_mask, broadcastable over joints and channels."""
  return valid_mask(x, lengths).astype(x.dtype)[..., None, None]


def flatten_frames(x: jax.Array) -> jax.Array:
  """[N, M, T, V, C] -> [N, T, M*V*C]."""
  n, m, t, v, c = x.shape
  return jnp.transpose(x, (0, 2, 1, 3, 4)).reshape(n, t, m * v * c)


def unflatten_frames(frames: jax.Array, shape) -> jax.Array:
  """[N, T, M*V*C] -> [N, M, T, V, C]."""
  n, m, t, v, c = shape
  return jnp.transpose(frames.reshape(n, t, m, v, c), (0, 2, 1, 3, 4))


def antisymmetric_pair(branch_cls, *, name: str | None = None, **kwargs):
  """A callable (b_plus(*a) - b_minus(*a)) / sqrt(2) over two identically initialised copies.

  Zero output at init, with each copy's gradient the standard network's divided by sqrt(2) (the
  antisymmetric initialisation of Zhang et al. 2020): a residual branch starts at exactly zero
  without a zero output layer, which would leave every layer before it without gradient. The
  copies are one `nn.vmap` over a leading parameter axis of size 2 with a shared init key, so
  every parameter leaf of the pair is [2, ...]. Call it inside a compact method.
  """
  pair = nn.vmap(branch_cls, variable_axes={'params': 0}, split_rngs={'params': False},
                 in_axes=None, out_axes=0, axis_size=2)(**kwargs, name=name)

  def apply(*args):
    out = pair(*args)
    return (out[0] - out[1]) * (2 ** -0.5)
  return apply


class _MLPBranch(nn.Module):
  """fc2(relu(fc1(h))), relu'd when `output_relu` (the reference code's branch)."""
  hidden: int
  features: int
  output_relu: bool = False
  zero_output: bool = False

  @nn.compact
  def __call__(self, h: jax.Array) -> jax.Array:
    h = nn.relu(nn.Dense(self.hidden, kernel_init=torch_default_init, name='fc1')(h))
    out_init = nn.initializers.zeros if self.zero_output else torch_default_init
    h = nn.Dense(self.features, kernel_init=out_init, name='fc2')(h)
    return nn.relu(h) if self.output_relu else h


class ResidualMLPAnonymizer(nn.Module):
  """Residual MLP per frame (see the module docstring for the variants and branch inits)."""
  num_persons: int
  num_joints: int
  num_channels: int = 3
  variant: str = 'paper'
  hidden: int | None = None
  num_blocks: int | None = None
  branch_init: str = 'antisymmetric'

  @property
  def num_features(self) -> int:
    return self.num_persons * self.num_joints * self.num_channels

  @nn.compact
  def __call__(self, x: jax.Array, lengths: jax.Array, train: bool = False) -> jax.Array:
    features = self.num_features
    kwargs = dict(hidden=self.hidden or features, features=features,
                  output_relu=self.variant == 'reference')
    blocks = self.num_blocks or (1 if self.variant == 'paper' else 10)
    h = flatten_frames(x)
    for i in range(blocks):
      if self.branch_init == 'antisymmetric':
        branch = antisymmetric_pair(_MLPBranch, **kwargs, name=f'block{i}')
      else:
        branch = _MLPBranch(**kwargs, zero_output=self.branch_init == 'zero_output',
                            name=f'block{i}')
      h = h + branch(h)
    return unflatten_frames(h, x.shape) * output_mask(x, lengths)


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
    return self.encoder(flatten_frames(x))

  def decode(self, codes: jax.Array, shape) -> jax.Array:
    """codes [N, T, H] -> frames of `shape` [N, M, T, V, C] (padding not masked)."""
    return unflatten_frames(self.decoder(codes), shape)

  def __call__(self, x: jax.Array, lengths: jax.Array, train: bool = False) -> jax.Array:
    return self.decode(self.encode(x), x.shape) * output_mask(x, lengths)


def reconstruction_loss(module: nn.Module, params, x: jax.Array,
                        lengths: jax.Array) -> jax.Array:
  """MSE over valid entries (padding excluded): the auto-encoder's pretraining loss."""
  out = module.apply({'params': params}, x, lengths)
  mask = jnp.broadcast_to(output_mask(x, lengths), x.shape)
  return jnp.sum(mask * (out - x) ** 2) / jnp.maximum(mask.sum(), 1.0)


def check_knobs(name: str, cls, knobs: dict) -> None:
  """Unknown knobs are a one-line ConfigError, not a dataclass TypeError."""
  known = {f.name for f in dataclasses.fields(cls)} - {'parent', 'name'}
  unknown = sorted(set(knobs) - known)
  if unknown:
    raise ConfigError(f'anonymizer {name!r}: unknown knobs {unknown}; known: {sorted(known)}')


def check_choice(name: str, knob: str, value, choices) -> None:
  """A knob outside its choices is a one-line ConfigError."""
  if value not in choices:
    raise ConfigError(f'{name} {knob} must be one of {tuple(choices)}, got {value!r}')


@register_anonymizer('residual_mlp')
def build_residual_mlp(*, num_persons: int, num_joints: int, layout=None,
                       **knobs) -> ResidualMLPAnonymizer:
  """Residual MLP anonymizer; knobs: variant, hidden, num_blocks, branch_init,
  num_channels."""
  del layout  # per-frame features need no skeleton tree
  check_knobs('residual_mlp', ResidualMLPAnonymizer, knobs)
  check_choice('residual_mlp', 'variant', knobs.get('variant', 'paper'), ('paper', 'reference'))
  check_choice('residual_mlp', 'branch_init', knobs.get('branch_init', 'antisymmetric'),
               BRANCH_INITS)
  return ResidualMLPAnonymizer(num_persons=num_persons, num_joints=num_joints, **knobs)


@register_anonymizer('autoencoder')
def build_autoencoder(*, num_persons: int, num_joints: int, layout=None,
                      **knobs) -> AutoEncoderAnonymizer:
  """Auto-encoder anonymizer; knobs: latent, hidden, num_channels."""
  del layout
  check_knobs('autoencoder', AutoEncoderAnonymizer, knobs)
  if 'hidden' in knobs:  # configs may give a list; a tuple keeps the module hashable
    knobs['hidden'] = tuple(int(w) for w in knobs['hidden'])
  return AutoEncoderAnonymizer(num_persons=num_persons, num_joints=num_joints, **knobs)
