"""MS-G3D's building blocks (Liu et al., CVPR 2020), channels last [B, T, V, C].

  * `MultiScaleGraphConv` (MS-GCN): disentangled k-hop aggregation for k = 0..S-1 plus a learnable
    residual adjacency `A_res` (a parameter, U(+-1e-6) like the original), then MLP(S*C -> C').
  * `MultiScaleTemporalConv` (MS-TCN): len(dilations) dilated temporal branches, a max-pool branch
    and a 1x1 branch, concatenated, plus a residual.
  * `MultiWindowG3D`: the unified spatial-temporal pathways (G3D), one per window size, summed.

Graphs are static numpy constants computed inside the modules from the layout's bone list
(`bones`, `num_joints` attributes), so the modules stay hashable (usable as static jit arguments).
"""

from __future__ import annotations

from typing import Sequence

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np

from skeleton_anon.models.graph import normalize_symmetric
from skeleton_anon.models.layers import (MLP, TemporalConv, activation, batch_norm,
                                         graph_aggregate, torch_default_init)


def _tiny_uniform(key, shape, dtype=jnp.float32):
  """U(-1e-6, 1e-6): MS-G3D's init of the learnable residual adjacency A_res."""
  return jax.random.uniform(key, shape, dtype, -1e-6, 1e-6)


Bones = Sequence[tuple[int, int]]


def bone_adjacency(bones: Bones, num_joints: int) -> np.ndarray:
  """Symmetric 0/1 [V, V] adjacency of the bones, no self loops (MS-G3D's A_binary)."""
  a = np.zeros((num_joints, num_joints), np.float32)
  for i, j in bones:
    a[i, j] = a[j, i] = 1.0
  return a


def k_hop_matrix(a_binary: np.ndarray, k: int, *, with_self: bool = True) -> np.ndarray:
  """0/1 [V, V]: pairs whose shortest path in `a_binary` is exactly k (k=0: identity).

  With `with_self` (k > 0) the identity is added, as MS-G3D's `k_adjacency(..., with_self=True)`.
  Works on any square 0/1 matrix, including the tiled spatial-temporal window graph.
  """
  v = len(a_binary)
  eye = np.eye(v, dtype=np.float64)
  if k == 0:
    return eye.astype(np.float32)
  step = ((a_binary + eye) > 0).astype(np.float64)
  within = lambda hops: (np.linalg.matrix_power(step, hops) > 0).astype(np.float64)
  a_k = within(k) - within(k - 1)
  if with_self:
    a_k = a_k + eye
  return a_k.astype(np.float32)


def multiscale_adjacency(a_binary: np.ndarray, num_scales: int) -> np.ndarray:
  """[S, V, V]: D^-1/2 (A_k + I) D^-1/2 for k = 0..S-1 (MS-G3D's disentangled aggregation)."""
  return np.stack([normalize_symmetric(k_hop_matrix(a_binary, k)) for k in range(num_scales)])


def window_graph(a_binary: np.ndarray, window: int) -> np.ndarray:
  """0/1 [w*V, w*V]: (A + I) tiled over a window of `window` frames (G3D's dense ST graph)."""
  a_with_self = a_binary + np.eye(len(a_binary), dtype=a_binary.dtype)
  return np.tile(a_with_self, (window, window)).astype(np.float32)


class MultiScaleGraphConv(nn.Module):
  """MS-GCN: x [B, T, V, C] -> [B, T, V, features] (MLP with BatchNorm and `activation`).

  Attributes:
    features: output channels.
    bones, num_joints: the skeleton; the static [S, V, V] normalised k-hop stack is built from
      them, and A_res of the same shape is learned.
    num_scales: S.
  """
  features: int
  bones: Bones
  num_joints: int
  num_scales: int
  activation: str = 'relu'
  dropout_rate: float = 0.0

  @nn.compact
  def __call__(self, x: jax.Array, train: bool = False) -> jax.Array:
    adjacency = multiscale_adjacency(bone_adjacency(self.bones, self.num_joints),
                                     self.num_scales)
    a_res = self.param('A_res', _tiny_uniform, adjacency.shape, jnp.float32)
    a = jnp.asarray(adjacency, x.dtype) + a_res.astype(x.dtype)
    support = graph_aggregate(a, x)                                 # [B, T, V, S*C]
    return MLP((self.features,), activation=self.activation, dropout_rate=self.dropout_rate,
               name='mlp')(support, train)


class MultiScaleTemporalConv(nn.Module):
  """MS-TCN: [B, T, V, C] -> [B, ceil(T/stride), V, features].

  Branches (each features // (len(dilations) + 2) channels): for each dilation 1x1 -> BN -> act
  -> TemporalConv(kernel_size, stride, dilation); 1x1 -> BN -> act -> maxpool(3, stride) -> BN;
  1x1 (stride) -> BN. Concatenated, plus the residual (identity when shapes match, else a strided
  1x1 TemporalConv), then `activation` unless `final_activation` is False.
  """
  features: int
  kernel_size: int = 3
  stride: int = 1
  dilations: Sequence[int] = (1, 2, 3, 4)
  activation: str = 'relu'
  final_activation: bool = True

  @nn.compact
  def __call__(self, x: jax.Array, train: bool = False) -> jax.Array:
    num_branches = len(self.dilations) + 2
    if self.features % num_branches:
      raise ValueError(f'MS-TCN channels {self.features} must be a multiple of the '
                       f'{num_branches} branches')
    width = self.features // num_branches
    act = activation(self.activation)
    in_channels = x.shape[-1]

    def bottleneck(i):
      h = nn.Dense(width, kernel_init=torch_default_init, name=f'branch{i}_fc')(x)
      return act(batch_norm(train, name=f'branch{i}_bn')(h))

    outs = []
    for i, dilation in enumerate(self.dilations):
      outs.append(TemporalConv(width, self.kernel_size, stride=self.stride, dilation=dilation,
                               name=f'branch{i}_tconv')(bottleneck(i), train))
    i = len(self.dilations)
    pooled = nn.max_pool(bottleneck(i), (3, 1), strides=(self.stride, 1),
                         padding=((1, 1), (0, 0)))
    outs.append(batch_norm(train, name=f'branch{i}_pool_bn')(pooled))
    i += 1
    # A strided 1x1 conv with no padding keeps frames 0, s, 2s, ...
    h = nn.Dense(width, kernel_init=torch_default_init, name=f'branch{i}_fc')(
        x[:, ::self.stride])
    outs.append(batch_norm(train, name=f'branch{i}_bn')(h))

    out = jnp.concatenate(outs, axis=-1)
    if in_channels == self.features and self.stride == 1:
      out = out + x
    else:
      out = out + TemporalConv(self.features, 1, stride=self.stride, name='residual')(x, train)
    return act(out) if self.final_activation else out


def unfold_windows(x: jax.Array, window: int, stride: int, dilation: int) -> jax.Array:
  """[B, T, V, C] -> [B, T', window*V, C]: the frames around each window centre as one graph.

  Zero padding (w + (w-1)(d-1) - 1) // 2 on both sides of T, like torch.nn.Unfold in MS-G3D;
  node index inside a window is (offset * V + joint). Static slices, no gather.
  """
  b, t, v, c = x.shape
  pad = (window + (window - 1) * (dilation - 1) - 1) // 2
  padded = jnp.pad(x, ((0, 0), (pad, pad), (0, 0), (0, 0)))
  span = (window - 1) * dilation + 1
  num_windows = (t + 2 * pad - span) // stride + 1
  frames = [padded[:, j * dilation: j * dilation + stride * (num_windows - 1) + 1: stride]
            for j in range(window)]
  return jnp.stack(frames, axis=2).reshape(b, num_windows, window * v, c)


class G3DPathway(nn.Module):
  """One MS-G3D pathway (window size w): unfold -> ST multi-scale GCN -> collapse -> BN.

  Channel flow as in the original with embed_factor 1: the ST-GCN keeps the input width except in
  the first block (3 input channels), where it widens at once; the (1, w, 1) collapse conv (here a
  Dense over the w*C window features, with bias) produces `features`. No final activation.
  """
  features: int
  bones: Bones
  num_joints: int
  num_scales: int
  window: int
  stride: int = 1
  dilation: int = 1
  widen_first: bool = False

  @nn.compact
  def __call__(self, x: jax.Array, train: bool = False) -> jax.Array:
    b, _, v, c = x.shape
    embed = self.features if self.widen_first else c
    a_binary = bone_adjacency(self.bones, self.num_joints)
    adjacency = multiscale_adjacency(window_graph(a_binary, self.window), self.num_scales)
    windows = unfold_windows(x, self.window, self.stride, self.dilation)   # [B, T', wV, C]
    a_res = self.param('A_res', _tiny_uniform, adjacency.shape, jnp.float32)
    a = jnp.asarray(adjacency, x.dtype) + a_res.astype(x.dtype)
    h = graph_aggregate(a, windows)                                         # [B, T', wV, S*C]
    h = MLP((embed,), activation='linear', name='mlp')(h, train)
    h = nn.relu(h)
    t_out = h.shape[1]
    h = h.reshape(b, t_out, self.window, v, embed).transpose(0, 1, 3, 2, 4)
    h = h.reshape(b, t_out, v, self.window * embed)
    h = nn.Dense(self.features, kernel_init=torch_default_init, name='collapse')(h)
    return batch_norm(train, name='out_bn')(h)


class MultiWindowG3D(nn.Module):
  """Sum of G3D pathways over `windows` (default 3 and 5); no activation."""
  features: int
  bones: Bones
  num_joints: int
  num_scales: int
  windows: Sequence[int] = (3, 5)
  window_dilations: Sequence[int] = (1, 1)
  stride: int = 1
  widen_first: bool = False

  @nn.compact
  def __call__(self, x: jax.Array, train: bool = False) -> jax.Array:
    out = 0.0
    for i, (window, dilation) in enumerate(zip(self.windows, self.window_dilations)):
      pathway = G3DPathway(self.features, self.bones, self.num_joints, self.num_scales, window,
                           stride=self.stride, dilation=dilation,
                           widen_first=self.widen_first, name=f'window{i}')
      out = out + pathway(x, train)
    return out
