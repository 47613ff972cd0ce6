"""Building blocks shared by the GCN classifiers (channels last, Flax Linen).

Shapes: a model takes x [N, M, T, V, C]; `InputBatchNorm` normalises it over the (M, V, C)
features (the originals' `data_bn`) and folds persons into the batch, [N*M, T, V, C]; the
blocks below work on [B, T, V, C]; `PoolingHead` averages over T and V, then over persons, and
applies the final Dense.

Conventions (identical in every model of the package):
  * BatchNorm: momentum 0.9, epsilon 1e-5 (PyTorch's momentum 0.1), statistics in `batch_stats`,
    `use_running_average = not train`. Train and eval differ only through BatchNorm and dropout.
  * A 1x1 convolution is an `nn.Dense` over the channel axis (same parameters, one matmul).
  * Temporal convolutions (`TemporalConv`) hold the parameters an `nn.Conv` with kernel (k, 1) on
    [B, T, V, C] would ('conv/kernel' [k, 1, C_in, C_out], 'conv/bias'), computed by
    `temporal_conv`: XLA's convolution forward, on CPU its weight gradient as k shifted matmuls
    and a 1-frame kernel as a strided Dense (see `temporal_conv`).
  * Kernels default to PyTorch's default init (uniform +-1/sqrt(fan_in)) so fresh models train
    like the originals; biases start at zero.
"""

from __future__ import annotations

import contextlib
import functools
from typing import Callable, Sequence

import flax.linen as nn
import jax
import jax.numpy as jnp
from jax import lax

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


WEIGHT_GRADS = ('auto', 'matmul', 'conv')
# 'auto' takes the shifted-matmul weight gradient on CPU when both channel counts are at least
# this (BENCHMARKS.md, "Temporal convolution weight gradient": alone, XLA CPU's convolution
# weight gradient is 1.5-2.7x slower than the k matmuls at 128-256 channels, about as fast at 64,
# and twice as fast on MS-G3D's 16-channel branches; in the whole 2s-AGCN / ST-GCN backward the
# matmul form is 1.4-1.6x faster).
MATMUL_WEIGHT_GRAD_MIN_CHANNELS = 64
_traced_weight_grad: str | None = None


@contextlib.contextmanager
def weight_grad_while_tracing(weight_grad: str):
  """Within the block, temporal convolutions whose `weight_grad` is 'auto' trace as `weight_grad`
  (for benchmarks: 'conv' traces the previous nn.Conv form, to time both in one process).
  Only tracing happens inside the block (`jax.jit(f).lower(...)`), not a later call."""
  global _traced_weight_grad
  if weight_grad not in WEIGHT_GRADS:
    raise ValueError(f'unknown weight_grad {weight_grad!r}; use one of {WEIGHT_GRADS}')
  saved, _traced_weight_grad = _traced_weight_grad, weight_grad
  try:
    yield
  finally:
    _traced_weight_grad = saved


def _conv_over_time(x, kernel, stride: int, dilation: int, padding: int):
  """nn.Conv's own call for a (k, 1) kernel on [B, T, V, C] (NHWC / HWIO)."""
  return lax.conv_general_dilated(x, kernel, (stride, 1), ((padding, padding), (0, 0)),
                                  rhs_dilation=(dilation, 1),
                                  dimension_numbers=('NHWC', 'HWIO', 'NHWC'))


@functools.partial(jax.custom_vjp, nondiff_argnums=(2, 3, 4))
def _conv_matmul_weight_grad(x, kernel, stride, dilation, padding):
  return _conv_over_time(x, kernel, stride, dilation, padding)


def _conv_matmul_weight_grad_fwd(x, kernel, stride, dilation, padding):
  return _conv_over_time(x, kernel, stride, dilation, padding), (x, kernel)


def _conv_matmul_weight_grad_bwd(stride, dilation, padding, residuals, g):
  x, kernel = residuals
  # Input gradient: XLA's own (the transposed convolution), which is fast on CPU.
  _, input_vjp = jax.vjp(lambda x_: _conv_over_time(x_, kernel, stride, dilation, padding), x)
  (dx,) = input_vjp(g)
  # Weight gradient: one matmul per tap i, dW[i] = sum over (b, t, v) of
  # x_padded[b, i*dilation + t*stride, v]^T g[b, t, v], contracting batch, frames and joints.
  # g is transposed once to [C_out, B, T, V], so that each tap's matmul reads the tap in its own
  # layout. The taps run in a loop: unrolled, XLA CPU schedules every tap's slice of x during the
  # forward pass and keeps them all (+2.2 GiB on 2s-AGCN at batch 8, T=300); in a loop only one
  # tap exists at a time, and it is as fast.
  g_t = jnp.transpose(g, (3, 0, 1, 2))
  x_padded = jnp.pad(x, ((0, 0), (padding, padding), (0, 0), (0, 0)))
  span = (g.shape[1] - 1) * stride + 1

  def tap_gradient(i):
    tap = lax.dynamic_slice_in_dim(x_padded, i * dilation, span, axis=1)[:, ::stride]
    return jnp.einsum('fbtv,btvc->fc', g_t, tap).T

  dw = lax.map(tap_gradient, jnp.arange(kernel.shape[0]))[:, None]
  return dx, dw.astype(kernel.dtype)


_conv_matmul_weight_grad.defvjp(_conv_matmul_weight_grad_fwd, _conv_matmul_weight_grad_bwd)


def temporal_conv(x: jax.Array, kernel: jax.Array, stride: int = 1, dilation: int = 1,
                  padding: int = 0, weight_grad: str = 'auto') -> jax.Array:
  """Convolution over T of x [B, T, V, C_in] with kernel [k, 1, C_in, C_out], no bias.

  The same function as nn.Conv's (`lax.conv_general_dilated`, strides (stride, 1), padding
  `padding` frames on each side of T, kernel dilation (dilation, 1)); only how its gradient is
  computed differs:
    'conv'    nn.Conv's computation exactly, gradients as XLA derives them (convolutions);
    'matmul'  the forward and the input gradient as above, the weight gradient as k shifted
              matmuls (dW[i] = sum over b, t, v of x_padded[b, i*d + t*s, v]^T g[b, t, v]),
              which XLA CPU runs up to 2.7x faster than its convolution weight gradient on wide
              layers (2s-AGCN / ST-GCN forward+backward: 1.4-1.6x faster); a 1-frame
              kernel is a strided Dense (x[:, ::stride] @ kernel[0, 0]), whose weight gradient
              is one matmul;
    'auto'    on CPU 'matmul' for 1-frame kernels and when C_in and C_out are both
              >= MATMUL_WEIGHT_GRAD_MIN_CHANNELS, else 'conv'; 'conv' on other backends.
  """
  if weight_grad not in WEIGHT_GRADS:
    raise ValueError(f'unknown weight_grad {weight_grad!r}; use one of {WEIGHT_GRADS}')
  if weight_grad == 'auto' and _traced_weight_grad is not None:
    weight_grad = _traced_weight_grad
  if weight_grad == 'auto':
    wide = min(kernel.shape[2], kernel.shape[3]) >= MATMUL_WEIGHT_GRAD_MIN_CHANNELS
    on_cpu = jax.default_backend() == 'cpu'
    weight_grad = 'matmul' if on_cpu and (wide or kernel.shape[0] == 1) else 'conv'
  if weight_grad == 'conv':
    return _conv_over_time(x, kernel, stride, dilation, padding)
  if kernel.shape[0] == 1 and padding == 0:
    return jnp.einsum('btvc,cf->btvf', x[:, ::stride], kernel[0, 0])
  return _conv_matmul_weight_grad(x, kernel, stride, dilation, padding)


class TemporalConvolution(nn.Module):
  """The convolution of `TemporalConv` (no BatchNorm): parameters 'kernel' [k, 1, C_in, features]
  and 'bias' [features], created and promoted exactly as nn.Conv((k, 1)) does, so checkpoints
  of either load into the other; computed by `temporal_conv`."""
  features: int
  kernel_size: int
  stride: int = 1
  dilation: int = 1
  padding: int = 0
  kernel_init: Callable = torch_default_init
  weight_grad: str = 'auto'

  @nn.compact
  def __call__(self, x: jax.Array) -> jax.Array:
    kernel = self.param('kernel', self.kernel_init,
                        (self.kernel_size, 1, x.shape[-1], self.features), jnp.float32)
    bias = self.param('bias', nn.initializers.zeros_init(), (self.features,), jnp.float32)
    x, kernel, bias = nn.dtypes.promote_dtype(x, kernel, bias, dtype=None)
    y = temporal_conv(x, kernel, self.stride, self.dilation, self.padding, self.weight_grad)
    return y + bias


class TemporalConv(nn.Module):
  """Conv with kernel (k, 1) over T (with bias), 'same' padding, then BatchNorm; no activation.

  Input [B, T, V, C] -> [B, ceil(T/stride), V, features]. Padding is
  (k + (k-1)(d-1) - 1) // 2 on each side, as in MS-G3D / 2s-AGCN / CTR-GCN. Parameters are those
  of nn.Conv (`conv/kernel`, `conv/bias`) and `bn`; `weight_grad` picks how the convolution's
  weight gradient is computed (`temporal_conv`), never what it computes.
  """
  features: int
  kernel_size: int
  stride: int = 1
  dilation: int = 1
  kernel_init: Callable = torch_default_init
  weight_grad: str = 'auto'

  @nn.compact
  def __call__(self, x: jax.Array, train: bool = False) -> jax.Array:
    pad = (self.kernel_size + (self.kernel_size - 1) * (self.dilation - 1) - 1) // 2
    x = TemporalConvolution(self.features, self.kernel_size, self.stride, self.dilation, pad,
                            kernel_init=self.kernel_init, weight_grad=self.weight_grad,
                            name='conv')(x)
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
