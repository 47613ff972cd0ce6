"""ST-GCN (Yan et al., AAAI 2018) as a Flax Linen classifier, for any joint layout.

Ten blocks (64 x4, 128 x3, 256 x3 channels; stride 2 entering the wider stages), each a spatial
graph convolution over the 'spatial' partition (root / closer to the centre / farther, built
from the layout's `center` joint) followed by BN, ReLU, a 9x1 temporal convolution, BN and
dropout, with a residual. Every block multiplies the graph by its own learnable edge-importance
mask (initialised to ones). As in the original, `data_bn` normalises (V, C) features with the
persons already folded into the batch, and the classifier is a 1x1 convolution (a Dense) on the
person-averaged pooled features.

Knobs (builder keywords; defaults are the NTU configuration of the original repository):
  base_channels: 64; stage widths base, 2*base, 4*base.
  blocks_per_stage: (4, 3, 3).
  temporal_kernel: 9.
  dropout: 0.5, inside every block after the temporal convolution (rng 'dropout').
  edge_importance: True.
"""

from __future__ import annotations

from typing import Sequence

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np

from skeleton_anon.data.layouts import Layout
from skeleton_anon.errors import ConfigError
from skeleton_anon.models import graph, layers
from skeleton_anon.models.registry import check_channels, register_classifier


def stgcn_spatial_partition(layout) -> np.ndarray:
  """ST-GCN's 'spatial' strategy [3, V, V], entries a[source, target] of the normalised graph.

  The column-normalised adjacency (self-loops included) is split into: self-loops; neighbours
  at least as far from `layout.center` as the target (the original's root + close parts of hop
  1); neighbours closer to the centre than the target.
  """
  hops = graph.hop_distance(layout)
  normalized = graph.normalize_digraph((hops <= 1).astype(np.float32))
  to_center = hops[:, layout.center]
  neighbour = hops == 1
  not_closer = neighbour & (to_center[:, None] >= to_center[None, :])
  closer = neighbour & (to_center[:, None] < to_center[None, :])
  return np.stack([normalized * (hops == 0), normalized * not_closer,
                   normalized * closer]).astype(np.float32)


def check_input_joints(x, layout: Layout) -> None:
  """One-line error when the input's joints do not match the layout the graph came from."""
  if x.ndim != 5 or x.shape[3] != layout.num_joints:
    raise ConfigError(f'expected input [N, M, T, {layout.num_joints}, C] for layout '
                      f'{layout.name!r}, got shape {tuple(x.shape)}')


class STGCNBlock(nn.Module):
  """Graph conv (1x1 conv to K*out, sum over partitions) -> BN, ReLU, 9x1 conv, BN, dropout."""
  features: int
  adjacency: np.ndarray
  stride: int = 1
  residual: bool = True
  temporal_kernel: int = 9
  dropout: float = 0.5
  edge_importance: bool = True

  @nn.compact
  def __call__(self, x: jax.Array, train: bool = False) -> jax.Array:
    num_subsets = self.adjacency.shape[0]
    a = jnp.asarray(self.adjacency, x.dtype)   # x.dtype: bfloat16 compute stays bfloat16
    if self.edge_importance:
      a = a * self.param('edge_importance', nn.initializers.ones, self.adjacency.shape)
    h = nn.Dense(num_subsets * self.features, kernel_init=layers.kaiming_fan_out_init,
                 name='gcn')(x)
    b, t, v, _ = h.shape
    h = h.reshape(b, t, v, num_subsets, self.features)
    h = jnp.einsum('btvkc,kvw->btwc', h, a)
    h = nn.relu(layers.batch_norm(train, name='bn')(h))
    h = layers.TemporalConv(self.features, self.temporal_kernel, self.stride,
                            kernel_init=layers.kaiming_fan_out_init, name='tcn')(h, train)
    h = nn.Dropout(self.dropout, deterministic=not train)(h)
    if not self.residual:
      res = 0.0
    elif x.shape[-1] == self.features and self.stride == 1:
      res = x
    else:
      res = layers.TemporalConv(self.features, 1, self.stride,
                                kernel_init=layers.kaiming_fan_out_init, name='residual')(x, train)
    return nn.relu(h + res)


class STGCN(nn.Module):
  """ST-GCN classifier: x [N, M, T, V, C] -> logits [N, num_classes]."""
  num_classes: int
  num_persons: int
  layout: Layout      # hashable; the graph is derived from it when traced
  base_channels: int = 64
  blocks_per_stage: Sequence[int] = (4, 3, 3)
  temporal_kernel: int = 9
  dropout: float = 0.5
  edge_importance: bool = True

  @nn.compact
  def __call__(self, x: jax.Array, train: bool = False) -> jax.Array:
    check_input_joints(x, self.layout)
    adjacency = stgcn_spatial_partition(self.layout)
    n, m, t, v, c = x.shape
    # The original's data_bn has V*C features: persons are folded into the batch first, which
    # is InputBatchNorm on one "person" per batch entry.
    h = layers.InputBatchNorm(name='data_bn')(x.reshape(n * m, 1, t, v, c), train)
    for index, width, stride, residual in layers.block_plan(self.base_channels,
                                                            self.blocks_per_stage):
      h = STGCNBlock(width, adjacency, stride=stride, residual=residual,
                     temporal_kernel=self.temporal_kernel, dropout=self.dropout,
                     edge_importance=self.edge_importance, name=f'block{index + 1}')(h, train)
    return layers.PoolingHead(self.num_classes, self.num_persons, name='head')(h, train)


@register_classifier('stgcn')
def build_stgcn(*, num_classes: int, layout, num_persons: int, base_channels: int = 64,
                blocks_per_stage: Sequence[int] = (4, 3, 3), temporal_kernel: int = 9,
                dropout: float = 0.5, edge_importance: bool = True) -> STGCN:
  """ST-GCN on `layout`'s spatial partition (centre joint = `layout.center`)."""
  check_channels('stgcn', base_channels)
  return STGCN(num_classes=num_classes, num_persons=num_persons,
               layout=layout, base_channels=base_channels,
               blocks_per_stage=tuple(blocks_per_stage), temporal_kernel=temporal_kernel,
               dropout=dropout, edge_importance=edge_importance)
