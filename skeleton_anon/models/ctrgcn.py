"""CTR-GCN (Chen et al., ICCV 2021): channel-wise topology refinement, for any joint layout.

Each of the 10 blocks is a channel-wise topology refinement graph convolution followed by a
multi-scale temporal convolution. For every partition subset k (identity, inward, outward of
`graph.spatial_partition`), the refinement builds a per-channel graph

  G_k[c, u, v] = alpha * W4 tanh(mean_t phi1(x)[u] - mean_t phi2(x)[v]) + A_k[u, v]

(A_k a learnable adjacency initialised to the partition, alpha a learnable scalar starting at 0)
and aggregates out[t, u, c] = sum_v G_k[c, u, v] phi3(x)[t, v, c]; note the target-first index,
as in the original. The temporal module has four branches of out/4 channels: two 5x1
convolutions with dilations 1 and 2, a 3x1 max-pool and a strided 1x1 convolution.

Knobs (builder keywords; defaults are the paper's sizes):
  base_channels: 64; stage widths base, 2*base, 4*base.
  blocks_per_stage: (4, 3, 3); stages 2 and 3 start with temporal stride 2.
  temporal_kernel: 5; dilations: (1, 2).
  rel_reduction: 8 (relation width = in channels // 8; 8 for the 3-channel input).
  dropout: 0.0 before the classifier (the original's default).
"""

from __future__ import annotations

from typing import Sequence

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np

from skeleton_anon.data.layouts import Layout
from skeleton_anon.models import graph, layers
from skeleton_anon.models.registry import check_channels, register_classifier
from skeleton_anon.models.stgcn import check_input_joints

_conv_init = layers.kaiming_fan_out_init


class TopologyRefinement(nn.Module):
  """One subset's CTR-GC: [B, T, V, Cin] and a [V, V] (target, source) graph -> [B, T, V, out]."""
  features: int
  rel_reduction: int = 8

  @nn.compact
  def __call__(self, x: jax.Array, adjacency: jax.Array, alpha: jax.Array) -> jax.Array:
    c_in = x.shape[-1]
    # The original widens the relation for raw 3-channel (or 9-channel) input.
    rel = 8 if c_in in (2, 3, 9) else c_in // self.rel_reduction
    q = nn.Dense(rel, kernel_init=_conv_init, name='conv1')(x).mean(axis=1)   # [B, V, R]
    k = nn.Dense(rel, kernel_init=_conv_init, name='conv2')(x).mean(axis=1)
    values = nn.Dense(self.features, kernel_init=_conv_init, name='conv3')(x)
    relation = jnp.tanh(q[:, :, None, :] - k[:, None, :, :])                  # [B, U, V, R]
    relation = nn.Dense(self.features, kernel_init=_conv_init, name='conv4')(relation)
    topology = relation * alpha + adjacency[None, :, :, None]                 # [B, U, V, out]
    return jnp.einsum('buvc,btvc->btuc', topology, values)


class RefinedGraphConv(nn.Module):
  """Sum of the subsets' CTR-GCs, BN (starting near 0), residual projection, ReLU."""
  features: int
  adjacency: np.ndarray
  rel_reduction: int = 8

  @nn.compact
  def __call__(self, x: jax.Array, train: bool = False) -> jax.Array:
    learned = self.param('adjacency', lambda key, shape: jnp.asarray(self.adjacency),
                         self.adjacency.shape)
    alpha = self.param('alpha', nn.initializers.zeros, (1,))
    out = 0.0
    for k in range(self.adjacency.shape[0]):
      out = out + TopologyRefinement(self.features, self.rel_reduction,
                                     name=f'ctrgc{k}')(x, learned[k], alpha)
    out = layers.batch_norm(train, name='bn', scale_init=nn.initializers.constant(1e-6))(out)
    if x.shape[-1] != self.features:
      x = nn.Dense(self.features, kernel_init=_conv_init, name='down')(x)
      x = layers.batch_norm(train, name='down_bn')(x)
    return nn.relu(out + x)


class MultiScaleTemporalConv(nn.Module):
  """Four branches of features/4 channels, concatenated: dilated convs, max-pool, 1x1."""
  features: int
  kernel_size: int = 5
  stride: int = 1
  dilations: Sequence[int] = (1, 2)

  @nn.compact
  def __call__(self, x: jax.Array, train: bool = False) -> jax.Array:
    num_branches = len(self.dilations) + 2
    if self.features % num_branches:
      raise ValueError(f'ctrgcn: {self.features} channels do not split into {num_branches} '
                       'temporal branches')
    width = self.features // num_branches
    outs = []
    for i, dilation in enumerate(self.dilations):
      h = nn.Dense(width, kernel_init=_conv_init, name=f'branch{i}_in')(x)
      h = nn.relu(layers.batch_norm(train, name=f'branch{i}_bn')(h))
      outs.append(layers.TemporalConv(width, self.kernel_size, self.stride, dilation,
                                      kernel_init=_conv_init, name=f'branch{i}_tconv')(h, train))
    h = nn.Dense(width, kernel_init=_conv_init, name='pool_in')(x)
    h = nn.relu(layers.batch_norm(train, name='pool_in_bn')(h))
    h = nn.max_pool(h, (3, 1), strides=(self.stride, 1), padding=((1, 1), (0, 0)))
    outs.append(layers.batch_norm(train, name='pool_bn')(h))
    h = nn.Dense(width, kernel_init=_conv_init, name='point')(x[:, ::self.stride])
    outs.append(layers.batch_norm(train, name='point_bn')(h))
    return jnp.concatenate(outs, axis=-1)


class CTRGCNBlock(nn.Module):
  """Refined graph conv, multi-scale temporal conv, block residual; ReLU."""
  features: int
  adjacency: np.ndarray
  stride: int = 1
  residual: bool = True
  temporal_kernel: int = 5
  dilations: Sequence[int] = (1, 2)
  rel_reduction: int = 8

  @nn.compact
  def __call__(self, x: jax.Array, train: bool = False) -> jax.Array:
    h = RefinedGraphConv(self.features, self.adjacency, self.rel_reduction, name='gcn')(x, train)
    h = MultiScaleTemporalConv(self.features, self.temporal_kernel, self.stride,
                               tuple(self.dilations), name='tcn')(h, train)
    if not self.residual:
      res = 0.0
    elif x.shape[-1] == self.features and self.stride == 1:
      res = x
    else:
      res = layers.TemporalConv(self.features, 1, self.stride, kernel_init=_conv_init,
                                name='residual')(x, train)
    return nn.relu(h + res)


class CTRGCN(nn.Module):
  """CTR-GCN classifier: x [N, M, T, V, C] -> logits [N, num_classes]."""
  num_classes: int
  num_persons: int
  layout: Layout      # hashable; the graph is derived from it when traced
  base_channels: int = 64
  blocks_per_stage: Sequence[int] = (4, 3, 3)
  temporal_kernel: int = 5
  dilations: Sequence[int] = (1, 2)
  rel_reduction: int = 8
  dropout: float = 0.0

  @nn.compact
  def __call__(self, x: jax.Array, train: bool = False) -> jax.Array:
    check_input_joints(x, self.layout)
    adjacency = graph.spatial_partition(self.layout)
    h = layers.InputBatchNorm(name='data_bn')(x, train)
    for index, width, stride, residual in layers.block_plan(self.base_channels,
                                                            self.blocks_per_stage):
      h = CTRGCNBlock(width, adjacency, stride=stride, residual=residual,
                      temporal_kernel=self.temporal_kernel, dilations=tuple(self.dilations),
                      rel_reduction=self.rel_reduction, name=f'block{index + 1}')(h, train)
    head = layers.PoolingHead(self.num_classes, self.num_persons, dropout_rate=self.dropout,
                              kernel_init=nn.initializers.normal(np.sqrt(2.0 / self.num_classes)),
                              name='head')
    return head(h, train)


@register_classifier('ctrgcn')
def build_ctrgcn(*, num_classes: int, layout, num_persons: int, base_channels: int = 64,
                 blocks_per_stage: Sequence[int] = (4, 3, 3), temporal_kernel: int = 5,
                 dilations: Sequence[int] = (1, 2), rel_reduction: int = 8,
                 dropout: float = 0.0) -> CTRGCN:
  """CTR-GCN on `layout`'s spatial partition graph."""
  check_channels('ctrgcn', base_channels, multiple_of=len(dilations) + 2, at_least=rel_reduction,
                 why=f'{len(dilations) + 2} temporal branches (len(dilations) + 2) and a relation '
                     f'width of base_channels // rel_reduction={rel_reduction}')
  return CTRGCN(num_classes=num_classes, num_persons=num_persons,
                layout=layout, base_channels=base_channels,
                blocks_per_stage=tuple(blocks_per_stage), temporal_kernel=temporal_kernel,
                dilations=tuple(dilations), rel_reduction=rel_reduction, dropout=dropout)
