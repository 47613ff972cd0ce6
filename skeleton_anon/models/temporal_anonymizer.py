"""A temporal anonymizer: sees the whole sequence, so it can change motion style, not only posture.

Identity survives per-frame anonymizers in how a person moves (speed, amplitude, rhythm, posture
over time): after bone-length retargeting a linear classifier on motion statistics still
re-identifies most performers. This network reads every frame's joints (all persons flattened, as
the per-frame anonymizers do) through a stack of dilated temporal convolutions (receptive field
1 + (kernel_size - 1) * sum(dilations) frames) and outputs a per-frame change.

Registered as 'temporal'; knobs (`build_anonymizer('temporal', num_persons=M, num_joints=V,
layout=LAYOUT, **knobs)`):
  width: channels of the temporal trunk (default 64).
  dilations: one residual block (LayerNorm, dilated conv, relu, dense) per entry
    (default (1, 2, 4, 8, 16): 63 frames seen at kernel_size 3).
  kernel_size: temporal kernel (default 3).
  output: 'bones' (default): the trunk predicts, per frame, a change of every bone's direction and
    a root translation; the skeleton is rebuilt along the layout's tree with each person's bone
    lengths fixed to their mean over the sequence's valid frames (with
    anonymizer.retarget_first, the training set's medians), so bone lengths are constant over
    time by construction (the validity constraint of issue 11). Needs `layout`.
    'joints': x + a per-joint offset (no layout needed; bone lengths are not constrained).
  noise_dim: >0 makes it stochastic: a per-sample Gaussian code of this width enters every frame,
    so the mapping from x to f(x) is not a function an attacker can invert. In training the code
    is drawn from the 'noise' rng stream (steps pass one); without that stream (evaluation,
    export, the anonymize command) it is a pseudo-random function of `noise_seed` and the sample's
    own coordinates: reproducible, different across samples, unknown without the seed.
  noise_seed: see noise_dim (default 0).

The whole trunk is an antisymmetric pair (anonymizers.antisymmetric_pair): f is the identity at
init (exactly for 'joints'; for 'bones' the rebuild at the sequence's mean bone lengths, i.e. the
identity on skeletons with constant bones) and every kernel gets a standard-init gradient. Hidden
states are zeroed on padded frames after every block, so the output on valid frames does not
depend on how much padding follows; padded frames and absent persons are exactly zero in the
output.
"""

from __future__ import annotations

from typing import Sequence

import flax.linen as nn
import jax
import jax.numpy as jnp

from skeleton_anon.data.layouts import Layout
from skeleton_anon.data.transforms import ancestor_matrix, bone_vectors, valid_mask
from skeleton_anon.errors import ConfigError
from skeleton_anon.models.anonymizers import (antisymmetric_pair, check_choice, check_knobs,
                                              flatten_frames, output_mask, unflatten_frames)
from skeleton_anon.models.layers import torch_default_init
from skeleton_anon.models.registry import register_anonymizer

OUTPUTS = ('bones', 'joints')


def _safe_norm(v: jax.Array) -> jax.Array:
  """Norm over the last axis, keepdims, with a finite gradient at zero."""
  sq = jnp.sum(v * v, axis=-1, keepdims=True)
  positive = sq > 0
  return jnp.where(positive, jnp.sqrt(jnp.where(positive, sq, 1.0)), 0.0)


def _unit(v: jax.Array) -> jax.Array:
  """v / |v| over the last axis; zero where v is zero."""
  norm = _safe_norm(v)
  return jnp.where(norm > 0, v / jnp.where(norm > 0, norm, 1.0), 0.0)


def content_keys(x: jax.Array, seed: int) -> jax.Array:
  """One PRNG key per sample, a hash of its float bits folded into key(seed): no state needed."""
  n = x.shape[0]
  # Hashed as float32 whatever the compute dtype (a bfloat16 x has 16-bit elements).
  x = jax.lax.stop_gradient(x).astype(jnp.float32)
  bits = jax.lax.bitcast_convert_type(x.reshape(n, -1), jnp.uint32)
  mix = jnp.arange(bits.shape[1], dtype=jnp.uint32) * jnp.uint32(2654435761) + jnp.uint32(1)
  digest = jnp.sum(bits * mix, axis=1, dtype=jnp.uint32)
  base = jax.random.key(seed)
  return jax.vmap(lambda d: jax.random.fold_in(base, d))(digest)


class _Trunk(nn.Module):
  """frames [N, T, F_in] -> [N, T, out_features]: embed, dilated residual blocks, head."""
  width: int
  dilations: Sequence[int]
  kernel_size: int
  out_features: int

  @nn.compact
  def __call__(self, frames: jax.Array, time_mask: jax.Array) -> jax.Array:
    h = nn.Dense(self.width, kernel_init=torch_default_init, name='embed')(frames) * time_mask
    for i, d in enumerate(self.dilations):
      r = nn.LayerNorm(name=f'norm{i}')(h) * time_mask
      r = nn.Conv(self.width, (self.kernel_size,), kernel_dilation=(int(d),), padding='SAME',
                  kernel_init=torch_default_init, name=f'conv{i}')(r)
      r = nn.Dense(self.width, kernel_init=torch_default_init, name=f'mix{i}')(nn.relu(r))
      h = (h + r) * time_mask
    h = nn.LayerNorm(name='out_norm')(h)
    return nn.Dense(self.out_features, kernel_init=torch_default_init, name='head')(h)


class TemporalAnonymizer(nn.Module):
  """Dilated temporal-conv anonymizer over whole sequences (see the module docstring)."""
  num_persons: int
  num_joints: int
  num_channels: int = 3
  width: int = 64
  dilations: Sequence[int] = (1, 2, 4, 8, 16)
  kernel_size: int = 3
  output: str = 'bones'
  noise_dim: int = 0
  noise_seed: int = 0
  layout: Layout | None = None

  def _codes(self, x: jax.Array) -> jax.Array:
    """[N, noise_dim] per-sample Gaussian codes (module docstring, noise_dim)."""
    shape = (x.shape[0], self.noise_dim)
    if self.has_rng('noise'):
      return jax.random.normal(self.make_rng('noise'), shape, x.dtype)
    return jax.vmap(lambda k: jax.random.normal(k, shape[1:], x.dtype))(
        content_keys(x, self.noise_seed))

  @nn.compact
  def __call__(self, x: jax.Array, lengths: jax.Array, train: bool = False) -> jax.Array:
    n, m, t, v, c = x.shape
    frames = flatten_frames(x)                                               # [N, T, F]
    time_mask = (jnp.arange(t)[None, :] < jnp.asarray(lengths)[:, None])[..., None]
    time_mask = time_mask.astype(x.dtype)
    if self.noise_dim > 0:
      codes = jnp.broadcast_to(self._codes(x)[:, None, :], (n, t, self.noise_dim))
      frames = jnp.concatenate([frames, codes * time_mask], axis=-1)
    trunk = antisymmetric_pair(_Trunk, width=self.width, dilations=tuple(self.dilations),
                               kernel_size=self.kernel_size, out_features=m * v * c,
                               name='trunk')
    delta = unflatten_frames(trunk(frames, time_mask), x.shape)            # [N, M, T, V, C]
    if self.output == 'joints':
      out = x + delta
    else:
      out = self._rebuild(x, lengths, delta)
    return out * output_mask(x, lengths)

  def _rebuild(self, x: jax.Array, lengths: jax.Array, delta: jax.Array) -> jax.Array:
    """Bones turned by `delta`, at each person's mean bone lengths; root moved by delta[root]."""
    layout = self.layout
    root = layout.root
    bones = bone_vectors(x, layout.parents)                                 # [N, M, T, V, C]
    length = _safe_norm(bones)                                              # [N, M, T, V, 1]
    valid = valid_mask(x, lengths).astype(x.dtype)[..., None, None]        # [N, M, T, 1, 1]
    mean_length = (jnp.sum(length * valid, axis=2, keepdims=True)
                   / jnp.maximum(jnp.sum(valid, axis=2, keepdims=True), 1.0))
    direction = _unit(_unit(bones) + delta)
    path = jnp.asarray(ancestor_matrix(layout))
    new_root = x[..., root:root + 1, :] + delta[..., root:root + 1, :]
    return new_root + jnp.einsum('jk,...kc->...jc', path, mean_length * direction)


@register_anonymizer('temporal')
def build_temporal(*, num_persons: int, num_joints: int, layout: Layout | None = None,
                   **knobs) -> TemporalAnonymizer:
  """Temporal anonymizer; knobs: width, dilations, kernel_size, output, noise_dim, noise_seed,
  num_channels. `layout` is the data's skeleton (required by output='bones')."""
  check_knobs('temporal', TemporalAnonymizer, knobs)
  output = knobs.get('output', 'bones')
  check_choice('temporal', 'output', output, OUTPUTS)
  if output == 'bones':
    if layout is None:
      raise ConfigError("temporal anonymizer output='bones' needs the skeleton layout "
                        "(build_anonymizer(..., layout=...)); output='joints' does not")
    if layout.num_joints != num_joints:
      raise ConfigError(f'temporal anonymizer: layout {layout.name!r} has {layout.num_joints} '
                        f'joints, the data {num_joints}')
  if 'dilations' in knobs:  # configs may give a list; a tuple keeps the module hashable
    knobs['dilations'] = tuple(int(d) for d in knobs['dilations'])
  if not knobs.get('dilations', (1,)) or int(knobs.get('kernel_size', 3)) < 1:
    raise ConfigError('temporal anonymizer needs at least one dilation and kernel_size >= 1')
  if int(knobs.get('noise_dim', 0)) < 0:
    raise ConfigError('temporal anonymizer noise_dim must be >= 0')
  return TemporalAnonymizer(num_persons=num_persons, num_joints=num_joints,
                            layout=layout if output == 'bones' else None, **knobs)
