"""Building blocks shared by the GCN classifiers (channels last, Flax Linen).

Shapes: a model takes x [N, M, T, V, C]; `InputBatchNorm` normalises it over the (M, V, C)
features (the originals' `data_bn`) and folds persons into the batch, [N*M, T, V, C]; the
blocks below work on [B, T, V, C]; `PoolingHead` averages over T and V, then over persons, and
applies the final Dense.

Conventions (identical in every model of the package):
  * BatchNorm: momentum 0.9, epsilon 1e-5 (PyTorch's momentum 0.1), statistics in `batch_stats`,
    `use_running_average = not train`. Train and eval differ only through BatchNorm and dropout.
  * A 1x1 convolution is an `nn.Dense` over the channel axis (same parameters, one matmul).
  * Temporal convolutions are `nn.Conv` with kernel (k, 1) on [B, T, V, C].
  * Kernels default to PyTorch's default init (uniform +-1/sqrt(fan_in)) so fresh models train
    like the originals; biases start at zero.
"""

from __future__ import annotations

from typing import Callable, Sequence

import flax.linen as nn
import jax
import jax.numpy as jnp

# PyTorch's default Conv/Linear weight init: kaiming_uniform(a=sqrt(5)) == U(+-1/sqrt(fan_in)).
torch_default_init = nn.initializers.variance_scaling(1.0 / 3.0, 'fan_in', 'uniform')
# Kaiming normal with fan_out (ST-GCN / 2s-AGCN / CTR-GCN `conv_init`).
kaiming_fan_out_init = nn.initializers.variance_scaling(2.0, 'fan_out', 'normal')

_ACTIVATIONS: dict[str, Callable[[jax.Array], jax.Array]] = {
    'relu': nn.relu,
    'leakyrelu': lambda x: nn.leaky_relu(x, 0.2),  # MS-G3D's activation_factory slope
    'tanh': jnp.tanh,
    'linear': lambda x: x,
}


def activation(name: str) -> Callable[[jax.Array], jax.Array]:
  """The activation called `name` ('relu', 'leakyrelu', 'tanh', 'linear')."""
  if name not in _ACTIVATIONS:
    raise ValueError(f'unknown activation {name!r}; known: {sorted(_ACTIVATIONS)}')
  return _ACTIVATIONS[name]


def batch_norm(train: bool, *, name: str | None = None, axis: int = -1,
               scale_init=nn.initializers.ones) -> nn.BatchNorm:
  """The package's BatchNorm: PyTorch defaults, statistics in `batch_stats`.

  Must be called inside a compact method (it creates a submodule).
  `scale_init` lets a model start a branch at zero (e.g. CTR-GCN's bn_init(bn, 1e-6)).
  """
  return nn.BatchNorm(use_running_average=not train, momentum=0.9, epsilon=1e-5, axis=axis,
                      scale_init=scale_init, name=name)


def fold_persons(x: jax.Array) -> jax.Array:
  """[N, M, T, V, C] -> [N*M, T, V, C] (persons become batch entries, person-major per sample)."""
  n, m, t, v, c = x.shape
  return x.reshape(n * m, t, v, c)


def unfold_persons(x: jax.Array, num_persons: int) -> jax.Array:
  """[N*M, ...] -> [N, M, ...]: the inverse of `fold_persons`."""
  return x.reshape((x.shape[0] // num_persons, num_persons) + x.shape[1:])


class InputBatchNorm(nn.Module):
  """The originals' `data_bn`: BatchNorm1d over M*V*C features, then persons folded.

  Statistics are taken over samples and frames (padded frames included, as in the originals).

  Returns [N*M, T, V, C].
  """

  @nn.compact
  def __call__(self, x: jax.Array, train: bool = False) -> jax.Array:
    n, m, t, v, c = x.shape
    # Features ordered (M, V, C) like the PyTorch `permute(0, 4, 3, 1, 2).view(N, M*V*C, T)`.
    feats = jnp.transpose(x, (0, 2, 1, 3, 4)).reshape(n, t, m * v * c)
    feats = batch_norm(train, name='bn')(feats)
    feats = feats.reshape(n, t, m, v, c)
    return fold_persons(jnp.transpose(feats, (0, 2, 1, 3, 4)))


class PoolingHead(nn.Module):
  """Global average pool over T and V, mean over persons, dropout, Dense -> logits [N, K].

  Attributes:
    num_classes: K.
    num_persons: M, to unfold [N*M, T, V, C].
    dropout_rate: dropout before the Dense (rng 'dropout'); 0 disables it.
    kernel_init: the Dense's weight init (ST-GCN family: normal(0, sqrt(2/K)); default PyTorch).
  """
  num_classes: int
  num_persons: int
  dropout_rate: float = 0.0
  kernel_init: Callable = torch_default_init

  @nn.compact
  def __call__(self, x: jax.Array, train: bool = False) -> jax.Array:
    pooled = x.mean(axis=(1, 2))                                      # [N*M, C]
    pooled = unfold_persons(pooled, self.num_persons).mean(axis=1)    # [N, C]
    if self.dropout_rate > 0:
      pooled = nn.Dropout(self.dropout_rate, deterministic=not train)(pooled)
    return nn.Dense(self.num_classes, kernel_init=self.kernel_init, name='fc')(pooled)


class MLP(nn.Module):
  """MS-G3D's MLP: per layer [dropout] -> 1x1 conv (Dense, with bias) -> BatchNorm -> activation.

  Attributes:
    features: output channels of each layer.
    activation: activation name after each BatchNorm ('linear' for none).
    dropout_rate: dropout before each layer (MS-G3D applies it when > 0.001).
  """
  features: Sequence[int]
  activation: str = 'relu'
  dropout_rate: float = 0.0
  kernel_init: Callable = torch_default_init

  @nn.compact
  def __call__(self, x: jax.Array, train: bool = False) -> jax.Array:
    act = activation(self.activation)
    for i, width in enumerate(self.features):
      if self.dropout_rate > 0.001:
        x = nn.Dropout(self.dropout_rate, deterministic=not train)(x)
      x = nn.Dense(width, kernel_init=self.kernel_init, name=f'fc{i}')(x)
      x = batch_norm(train, name=f'bn{i}')(x)
      x = act(x)
    return x


class TemporalConv(nn.Module):
  """Conv with kernel (k, 1) over T (with bias), 'same' padding, then BatchNorm; no activation.

  Input [B, T, V, C] -> [B, ceil(T/stride), V, features]. Padding is
  (k + (k-1)(d-1) - 1) // 2 on each side, as in MS-G3D / 2s-AGCN / CTR-GCN.
  """
  features: int
  kernel_size: int
  stride: int = 1
  dilation: int = 1
  kernel_init: Callable = torch_default_init

  @nn.compact
  def __call__(self, x: jax.Array, train: bool = False) -> jax.Array:
    pad = (self.kernel_size + (self.kernel_size - 1) * (self.dilation - 1) - 1) // 2
    x = nn.Conv(self.features, (self.kernel_size, 1), strides=(self.stride, 1),
                padding=((pad, pad), (0, 0)), kernel_dilation=(self.dilation, 1),
                kernel_init=self.kernel_init, name='conv')(x)
    return batch_norm(train, name='bn')(x)


def graph_aggregate(a: jax.Array, x: jax.Array) -> jax.Array:
  """Sum over neighbours: out[b, t, v, c] = sum_u a[v, u] x[b, t, u, c].

  `a` is [V_out, V_in] or stacked [S, V_out, V_in]; the stacked form returns [B, T, V, S*C]
  with the scale index major in the channels (as MS-G3D's `view(N, S*C, T, V)`).
  """
  if a.ndim == 2:
    return jnp.einsum('vu,btuc->btvc', a, x)
  b, t, _, c = x.shape
  s, v = a.shape[:2]
  out = jnp.einsum('svu,btuc->btvsc', a, x)
  return out.reshape(b, t, v, s * c)


def block_plan(base_channels: int, blocks_per_stage) -> list[tuple[int, int, int, bool]]:
  """(index, width, stride, residual) of each block of the backbone the GCNs share (ST-GCN,
  2s-AGCN, CTR-GCN, Shift-GCN): stage s is `blocks_per_stage[s]` blocks of width
  base_channels * 2**s, the first block of every later stage halves time (stride 2), and only the
  very first block has no residual connection. Blocks are named block{index + 1}."""
  plan, index = [], 0
  for stage, count in enumerate(blocks_per_stage):
    for i in range(count):
      plan.append((index, base_channels * 2 ** stage, 2 if stage > 0 and i == 0 else 1,
                   index > 0))
      index += 1
  return plan
