"""2s-AGCN (Shi et al., CVPR 2019): one stream of the two-stream adaptive graph network.

Each of the 10 blocks is an adaptive graph convolution followed by a 9x1 temporal convolution.
The graph of subset k is A_k + B_k + C_k: A_k the fixed spatial partition of the layout
(identity, inward, outward; `graph.spatial_partition`), B_k a learnable residual adjacency
(a parameter, starting at 1e-6) and C_k a data-dependent, softmax-normalised similarity of two
embeddings of the input (divided by embedding width x frames, as in the original).

Streams: `stream='joint'` reads joint coordinates; `stream='bone'` first turns them into bone
vectors inside the model (joint minus its parent in the layout's tree; the root's bone is zero),
so a saved dataset feeds either stream. Train one model per stream and add their scores for
the two-stream ensemble.

Knobs (builder keywords; defaults are the paper's sizes):
  stream: 'joint' | 'bone'.
  base_channels: 64; stage widths base, 2*base, 4*base.
  blocks_per_stage: (4, 3, 3); stages 2 and 3 start with temporal stride 2.
  temporal_kernel: 9.
  embed_ratio: 4; embedding width = out channels // embed_ratio.
  dropout: 0.0 (the original has no dropout).
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
from skeleton_anon.data.transforms import bone_vectors
from skeleton_anon.models.registry import check_channels, register_classifier
from skeleton_anon.models.stgcn import check_input_joints

STREAMS = ('joint', 'bone')


def _branch_init(num_subsets: int):
  # The original's conv_branch_init: normal with std sqrt(2 / (out * in * subsets)).
  def init(key, shape, dtype=jnp.float32):
    fan_in, fan_out = shape[-2], shape[-1]
    return jax.random.normal(key, shape, dtype) * np.sqrt(2.0 / (fan_in * fan_out * num_subsets))
  return init


class AdaptiveGraphConv(nn.Module):
  """Sum over subsets of x (A_k + B_k + C_k) W_k, BN, residual, ReLU; [B,T,V,Cin] -> [.., out].

  `adjacency` [K, V, V] is indexed (source, target): out[w] = sum_v x[v] A[v, w].
  """
  features: int
  adjacency: np.ndarray
  embed_ratio: int = 4

  @nn.compact
  def __call__(self, x: jax.Array, train: bool = False) -> jax.Array:
    num_subsets, num_joints, _ = self.adjacency.shape
    frames, c_in = x.shape[1], x.shape[-1]
    embed = self.features // self.embed_ratio
    learned = self.param('residual_adjacency', nn.initializers.constant(1e-6),
                         self.adjacency.shape)
    graph_sum = jnp.asarray(self.adjacency, x.dtype) + learned   # x.dtype: bf16 compute
    out = 0.0
    for k in range(num_subsets):
      theta = nn.Dense(embed, kernel_init=layers.kaiming_fan_out_init, name=f'embed_a{k}')(x)
      phi = nn.Dense(embed, kernel_init=layers.kaiming_fan_out_init, name=f'embed_b{k}')(x)
      # Similarity of joints v and w over all frames and embedding channels.
      logits = jnp.einsum('btvi,btwi->bvw', theta, phi) / (embed * frames)
      data_graph = nn.softmax(logits, axis=1) + graph_sum[k]   # normalised over sources v
      aggregated = jnp.einsum('btvc,bvw->btwc', x, data_graph)
      out = out + nn.Dense(self.features, kernel_init=_branch_init(num_subsets),
                           name=f'conv_d{k}')(aggregated)
    out = layers.batch_norm(train, name='bn', scale_init=nn.initializers.constant(1e-6))(out)
    if c_in != self.features:
      x = nn.Dense(self.features, kernel_init=layers.kaiming_fan_out_init, name='down')(x)
      x = layers.batch_norm(train, name='down_bn')(x)
    return nn.relu(out + x)


class AGCNBlock(nn.Module):
  """Adaptive graph conv, temporal conv + BN, block residual (none / identity / strided 1x1)."""
  features: int
  adjacency: np.ndarray
  stride: int = 1
  residual: bool = True
  temporal_kernel: int = 9
  embed_ratio: int = 4

  @nn.compact
  def __call__(self, x: jax.Array, train: bool = False) -> jax.Array:
    h = AdaptiveGraphConv(self.features, self.adjacency, self.embed_ratio, name='gcn')(x, train)
    h = layers.TemporalConv(self.features, self.temporal_kernel, self.stride,
                            kernel_init=layers.kaiming_fan_out_init, name='tcn')(h, train)
    if not self.residual:
      res = 0.0
    elif x.shape[-1] == self.features and self.stride == 1:
      res = x
    else:
      res = layers.TemporalConv(self.features, 1, self.stride,
                                kernel_init=layers.kaiming_fan_out_init, name='residual')(x, train)
    return nn.relu(h + res)


class AGCN(nn.Module):
  """2s-AGCN single stream: x [N, M, T, V, C] joints -> logits [N, num_classes]."""
  num_classes: int
  num_persons: int
  layout: Layout      # hashable; the graph is derived from it when traced
  stream: str = 'joint'
  base_channels: int = 64
  blocks_per_stage: Sequence[int] = (4, 3, 3)
  temporal_kernel: int = 9
  embed_ratio: int = 4
  dropout: float = 0.0

  @nn.compact
  def __call__(self, x: jax.Array, train: bool = False) -> jax.Array:
    check_input_joints(x, self.layout)
    adjacency = graph.spatial_partition(self.layout)
    if self.stream == 'bone':
      x = bone_vectors(x, self.layout.parents)
    h = layers.InputBatchNorm(name='data_bn')(x, train)
    for index, width, stride, residual in layers.block_plan(self.base_channels,
                                                            self.blocks_per_stage):
      h = AGCNBlock(width, adjacency, stride=stride, residual=residual,
                    temporal_kernel=self.temporal_kernel, embed_ratio=self.embed_ratio,
                    name=f'block{index + 1}')(h, train)
    head = layers.PoolingHead(self.num_classes, self.num_persons, dropout_rate=self.dropout,
                              kernel_init=nn.initializers.normal(np.sqrt(2.0 / self.num_classes)),
                              name='head')
    return head(h, train)


@register_classifier('agcn')
def build_agcn(*, num_classes: int, layout, num_persons: int, stream: str = 'joint',
               base_channels: int = 64, blocks_per_stage: Sequence[int] = (4, 3, 3),
               temporal_kernel: int = 9, embed_ratio: int = 4, dropout: float = 0.0) -> AGCN:
  """One 2s-AGCN stream on `layout`'s spatial partition graph."""
  if stream not in STREAMS:
    raise ConfigError(f'agcn: stream must be one of {STREAMS}, got {stream!r}')
  check_channels('agcn', base_channels, at_least=embed_ratio,
                 why=f'the graph embedding is base_channels // embed_ratio={embed_ratio} wide')
  return AGCN(num_classes=num_classes, num_persons=num_persons,
              layout=layout, stream=stream, base_channels=base_channels,
              blocks_per_stage=tuple(blocks_per_stage), temporal_kernel=temporal_kernel,
              embed_ratio=embed_ratio, dropout=dropout)
