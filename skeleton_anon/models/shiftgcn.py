"""Shift-GCN (Cheng et al., CVPR 2020) as a Flax Linen classifier, for any joint layout.

Each of the 10 blocks is a shift graph convolution (spatial shift in, per-joint channel mask,
point-wise linear layer, spatial shift out, BatchNorm over joints x channels) followed by an
adaptive temporal shift unit (BatchNorm, learnable fractional temporal shift, point-wise
linear, ReLU, a second strided shift, BatchNorm).

Spatial shift: channel j of joint v reads channel j of joint (v + j) mod V (shift in) or
(v - j) mod V (shift out); a static gather built from V and the channel count.

Temporal shift: every channel c has a learnable real offset p_c; output frame t reads the input
at t * stride + p_c (+ 0.5 when strided), linearly interpolated between the two neighbouring
frames, zero outside the sequence. Its gradient is the original CUDA kernel's
(`temporal_shift`, a `jax.custom_vjp`): the input gradient is the transposed interpolation, and
the offset gradient is replaced by 0.01 * sign(g_c) (1e-4 where g_c == 0), g_c being the true
gradient's batch mean, so offsets move by a bounded step whatever the loss scale.

The original kernel also has an offset along the joint axis per channel; it starts within
1e-8 of zero and its gradient is defined as exactly zero, so it never moves. It is left out here
(fewer parameters: 690,291 instead of 693,107 for 60 classes, 2 persons, ntu25; the
anonymization paper's count is 687,475).

Knobs (builder keywords; defaults are the paper's sizes):
  base_channels: 64; stage widths are base, 2*base, 4*base.
  blocks_per_stage: (4, 3, 3); the first block of stages 2 and 3 has temporal stride 2.
  shift_init_scale: 1.0; temporal offsets start uniform in [-scale, scale].
"""

from __future__ import annotations

import functools
from typing import Sequence

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np

from skeleton_anon.models import layers
from skeleton_anon.models.registry import check_channels, register_classifier

# The original CUDA backward replaces the offset gradient by this step times its sign ...
SHIFT_GRAD_STEP = 0.01
# ... and by this constant where the gradient is exactly zero.
SHIFT_GRAD_AT_ZERO = 1e-4


def _effective_offsets(offsets: jax.Array, stride: int) -> jax.Array:
  # A strided shift reads half a frame later so that it samples between the kept frames.
  return offsets + 0.5 if stride > 1 else offsets


def _interpolation(offsets: jax.Array, stride: int, num_out: int):
  """Lower frame index [T_out, C] and the weight of the upper frame [C] for every output."""
  pos = _effective_offsets(offsets, stride)
  lower = jnp.floor(pos)
  frac = pos - lower
  index = jnp.arange(num_out, dtype=jnp.int32)[:, None] * stride + lower.astype(jnp.int32)
  return index, frac


def _read_frames(x: jax.Array, index: jax.Array, step: int = 1) -> jax.Array:
  """x[:, index / step] per channel where index is a multiple of `step` inside x, else 0.

  x: [B, T, V, C]; index: [T', C] int. Returns [B, T', V, C].
  """
  num_frames = x.shape[1]
  frame = jnp.floor_divide(index, step)
  valid = (index >= 0) & (jnp.remainder(index, step) == 0) & (frame < num_frames)
  gathered = jnp.take_along_axis(x, jnp.clip(frame, 0, num_frames - 1)[None, :, None, :],
                                 axis=1)
  return jnp.where(valid[None, :, None, :], gathered, jnp.zeros((), x.dtype))


def _shift_forward(x: jax.Array, offsets: jax.Array, stride: int) -> jax.Array:
  num_out = -(-x.shape[1] // stride)
  index, frac = _interpolation(offsets, stride, num_out)
  frac = frac.astype(x.dtype)
  return (1 - frac) * _read_frames(x, index) + frac * _read_frames(x, index + 1)


@functools.partial(jax.custom_vjp, nondiff_argnums=(2,))
def temporal_shift(x: jax.Array, offsets: jax.Array, stride: int = 1) -> jax.Array:
  """Shifts every channel of x [B, T, V, C] in time by its own fractional offset.

  out[b, t, v, c] = (1 - f_c) x[b, s*t + l_c, v, c] + f_c x[b, s*t + l_c + 1, v, c], with
  p_c = offsets[c] (+ 0.5 if the stride s > 1), l_c = floor(p_c), f_c = p_c - l_c and frames
  outside [0, T) reading zero. Output length ceil(T / s) (the original: T // s; the same for
  the even lengths it supports).

  The gradient is the original CUDA kernel's, not the true one, for the offsets (see module
  docstring).
  """
  return _shift_forward(x, offsets, stride)


def _shift_fwd(x, offsets, stride):
  return _shift_forward(x, offsets, stride), (x, offsets)


def _shift_bwd(stride, residuals, grad_out):
  x, offsets = residuals
  num_out = grad_out.shape[1]
  # Input gradient, as the kernel computes it: interpolate the output gradient at the reversed
  # offset -p on the input's frame grid; positions between strided output frames read zero.
  # This equals the transpose of the forward interpolation (a gather, no scatter-add).
  reverse = -_effective_offsets(offsets, stride)
  lower = jnp.floor(reverse)
  frac = (reverse - lower).astype(grad_out.dtype)
  index = jnp.arange(x.shape[1], dtype=jnp.int32)[:, None] + lower.astype(jnp.int32)
  grad_x = ((1 - frac) * _read_frames(grad_out, index, stride) +
            frac * _read_frames(grad_out, index + 1, stride))
  # Offset gradient: d out / d p = x[upper] - x[lower]; summed over frames and joints,
  # averaged over the batch, then only its sign is kept.
  fwd_index, _ = _interpolation(offsets, stride, num_out)
  slope = _read_frames(x, fwd_index + 1) - _read_frames(x, fwd_index)
  raw = jnp.sum(grad_out * slope, axis=(1, 2)).mean(axis=0).astype(offsets.dtype)
  grad_offsets = jnp.where(raw != 0, SHIFT_GRAD_STEP * jnp.sign(raw), SHIFT_GRAD_AT_ZERO)
  return grad_x, grad_offsets.astype(offsets.dtype)


temporal_shift.defvjp(_shift_fwd, _shift_bwd)


def spatial_shift_index(num_joints: int, channels: int, direction: int) -> np.ndarray:
  """Flat gather index [V*C] over a (V, C)-flattened frame for the spatial shift.

  Channel j of joint v reads channel j of joint (v + direction * j) mod V; direction +1 is the
  original's shift in, -1 its shift out.
  """
  joint = np.arange(num_joints)[:, None]
  channel = np.arange(channels)[None, :]
  source = (joint + direction * channel) % num_joints
  return (source * channels + channel).reshape(-1).astype(np.int32)


def spatial_shift(x: jax.Array, direction: int) -> jax.Array:
  """Applies `spatial_shift_index` to x [B, T, V, C] (one static gather)."""
  b, t, v, c = x.shape
  index = spatial_shift_index(v, c, direction)
  return jnp.take(x.reshape(b, t, v * c), index, axis=2).reshape(b, t, v, c)


class ShiftGraphConv(nn.Module):
  """Shift graph convolution with a residual projection and ReLU; [B,T,V,Cin] -> [B,T,V,out]."""
  features: int

  @nn.compact
  def __call__(self, x: jax.Array, train: bool = False) -> jax.Array:
    b, t, v, c_in = x.shape
    h = spatial_shift(x, +1)
    # Learnable per-(joint, channel) gate in (0, 2), starting at 1 (mask parameter 0).
    mask = self.param('feature_mask', nn.initializers.zeros, (v, c_in))
    h = h * (jnp.tanh(mask) + 1)
    weight = self.param('linear_weight', nn.initializers.normal(np.sqrt(1.0 / self.features)),
                        (c_in, self.features))
    bias = self.param('linear_bias', nn.initializers.zeros, (self.features,))
    h = h @ weight + bias
    h = spatial_shift(h, -1)
    # BatchNorm1d over V*C features: separate statistics for every joint and channel.
    h = layers.batch_norm(train, name='bn')(h.reshape(b, t, v * self.features))
    h = h.reshape(b, t, v, self.features)
    if c_in != self.features:
      down = nn.Dense(self.features, kernel_init=layers.kaiming_fan_out_init, name='down')(x)
      x = layers.batch_norm(train, name='down_bn')(down)
    return nn.relu(h + x)


class TemporalShiftUnit(nn.Module):
  """BN -> temporal shift -> point-wise linear -> ReLU -> strided temporal shift -> BN."""
  features: int
  stride: int = 1
  init_scale: float = 1.0

  @nn.compact
  def __call__(self, x: jax.Array, train: bool = False) -> jax.Array:
    uniform = _uniform_init(self.init_scale)
    x = layers.batch_norm(train, name='bn_in')(x)
    x = temporal_shift(x, self.param('shift_in', uniform, (x.shape[-1],)), 1)
    x = nn.Dense(self.features, kernel_init=layers.kaiming_fan_out_init, name='linear')(x)
    x = nn.relu(x)
    x = temporal_shift(x, self.param('shift_out', uniform, (self.features,)), self.stride)
    return layers.batch_norm(train, name='bn_out')(x)


def _uniform_init(scale: float):
  def init(key, shape, dtype=jnp.float32):
    return jax.random.uniform(key, shape, dtype, -scale, scale)
  return init


class ShiftBlock(nn.Module):
  """ShiftGraphConv, TemporalShiftUnit, block residual (none / identity / strided 1x1 conv)."""
  features: int
  stride: int = 1
  residual: bool = True
  shift_init_scale: float = 1.0

  @nn.compact
  def __call__(self, x: jax.Array, train: bool = False) -> jax.Array:
    h = ShiftGraphConv(self.features, name='gcn')(x, train)
    h = TemporalShiftUnit(self.features, self.stride, self.shift_init_scale, name='tcn')(h, train)
    if not self.residual:
      res = 0.0
    elif x.shape[-1] == self.features and self.stride == 1:
      res = x
    else:
      res = layers.TemporalConv(self.features, 1, self.stride,
                                kernel_init=layers.kaiming_fan_out_init, name='residual')(x, train)
    return nn.relu(h + res)


class ShiftGCN(nn.Module):
  """Shift-GCN classifier: x [N, M, T, V, C] -> logits [N, num_classes]."""
  num_classes: int
  num_persons: int
  base_channels: int = 64
  blocks_per_stage: Sequence[int] = (4, 3, 3)
  shift_init_scale: float = 1.0

  @nn.compact
  def __call__(self, x: jax.Array, train: bool = False) -> jax.Array:
    h = layers.InputBatchNorm(name='data_bn')(x, train)
    for index, width, stride, residual in layers.block_plan(self.base_channels,
                                                            self.blocks_per_stage):
      h = ShiftBlock(width, stride, residual=residual, shift_init_scale=self.shift_init_scale,
                     name=f'block{index + 1}')(h, train)
    head = layers.PoolingHead(self.num_classes, self.num_persons,
                              kernel_init=nn.initializers.normal(np.sqrt(2.0 / self.num_classes)),
                              name='head')
    return head(h, train)


@register_classifier('shiftgcn')
def build_shiftgcn(*, num_classes: int, layout, num_persons: int, base_channels: int = 64,
                   blocks_per_stage: Sequence[int] = (4, 3, 3),
                   shift_init_scale: float = 1.0) -> ShiftGCN:
  """Shift-GCN for `layout` (its joint count sets the spatial shift and per-joint parameters)."""
  del layout  # The spatial shift needs only V, which the input's shape gives.
  check_channels('shiftgcn', base_channels)
  return ShiftGCN(num_classes=num_classes, num_persons=num_persons,
                  base_channels=base_channels, blocks_per_stage=tuple(blocks_per_stage),
                  shift_init_scale=shift_init_scale)
