"""The temporal convolution (layers.temporal_conv / TemporalConv) against lax.conv and nn.Conv.

Its weight gradient may be k shifted matmuls instead of XLA's convolution gradient (faster on
CPU); what it computes must not change: same forward, same gradients to float32 rounding, and
the parameters (names, shapes, init values) of the nn.Conv it replaced, so checkpoints load.
"""

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import pytest
from jax import lax

from skeleton_anon.models import layers

# (kernel, stride, dilation, C_in, C_out): the 2s-AGCN / ST-GCN 9x1 (plain and strided, wide
# enough for 'auto' to take the matmul form), MS-G3D's dilated 3x1, CTR-GCN's 5x1, a 1x1 residual.
CASES = [(9, 1, 1, 64, 64), (9, 2, 1, 64, 128), (3, 1, 2, 16, 16), (3, 2, 2, 8, 12),
         (5, 1, 2, 6, 4), (1, 2, 1, 8, 16), (1, 1, 1, 5, 3)]


def _pad(k, d):
  return (k + (k - 1) * (d - 1) - 1) // 2


def _lax_conv(x, w, stride, dilation):
  p = _pad(w.shape[0], dilation)
  return lax.conv_general_dilated(x, w, (stride, 1), ((p, p), (0, 0)), rhs_dilation=(dilation, 1),
                                  dimension_numbers=('NHWC', 'HWIO', 'NHWC'))


def _inputs(k, c_in, c_out, frames=11, seed=0):
  rng = np.random.default_rng(seed)
  x = jnp.asarray(rng.normal(size=(3, frames, 4, c_in)), jnp.float32)
  w = jnp.asarray(rng.normal(size=(k, 1, c_in, c_out)) / np.sqrt(k * c_in), jnp.float32)
  return x, w


def _close(actual, expected, rtol=2e-5, scale=None):
  """Equal to float32 rounding: within rtol of `scale` (default: the largest |expected|)."""
  expected = np.asarray(expected)
  scale = float(np.abs(expected).max()) if scale is None else scale
  np.testing.assert_allclose(np.asarray(actual), expected, rtol=rtol, atol=rtol * scale)


@pytest.mark.parametrize('weight_grad', ['matmul', 'conv', 'auto'])
@pytest.mark.parametrize('k,stride,dilation,c_in,c_out', CASES)
def test_forward_and_gradients_match_lax_conv(k, stride, dilation, c_in, c_out, weight_grad):
  x, w = _inputs(k, c_in, c_out)
  ours = jax.jit(lambda x, w: layers.temporal_conv(x, w, stride, dilation, _pad(k, dilation),
                                                   weight_grad))
  expected = _lax_conv(x, w, stride, dilation)
  assert ours(x, w).shape == expected.shape == (3, -(-11 // stride), 4, c_out)
  _close(ours(x, w), expected, rtol=1e-6)
  # A cotangent that is not constant over frames, so every tap's gradient differs.
  g = jnp.asarray(np.random.default_rng(1).normal(size=expected.shape), jnp.float32)
  grad = lambda f: jax.jit(jax.grad(lambda x, w: jnp.sum(f(x, w) * g), argnums=(0, 1)))
  (dx, dw), (dx_ref, dw_ref) = grad(ours)(x, w), grad(
      lambda x, w: _lax_conv(x, w, stride, dilation))(x, w)
  _close(dx, dx_ref)
  _close(dw, dw_ref)


def test_auto_takes_the_matmul_weight_gradient_only_for_wide_convolutions():
  def uses_custom_vjp(c):
    x, w = _inputs(9, c, c, frames=5)
    jaxpr = jax.make_jaxpr(lambda x, w: layers.temporal_conv(x, w, 1, 1, 4))(x, w)
    return 'custom_vjp' in str(jaxpr)
  wide = layers.MATMUL_WEIGHT_GRAD_MIN_CHANNELS
  assert uses_custom_vjp(wide) == (jax.default_backend() == 'cpu')
  assert not uses_custom_vjp(wide // 2)
  with pytest.raises(ValueError, match='weight_grad'):
    layers.temporal_conv(*_inputs(3, 2, 2), weight_grad='fft')
  # Benchmarks trace the previous form ('conv': nn.Conv's convolution, 1x1 included) in place
  # of 'auto'.
  with layers.weight_grad_while_tracing('conv'):
    assert not uses_custom_vjp(wide)
    x, w = _inputs(1, 8, 8)
    assert 'conv_general_dilated' in str(jax.make_jaxpr(layers.temporal_conv)(x, w))
  assert uses_custom_vjp(wide) == (jax.default_backend() == 'cpu')


def test_input_gradient_alone_does_not_compute_the_weight_gradient():
  # A frozen classifier (the min step) differentiates its input only: the matmul form must not
  # add the weight gradient's FLOPs there.
  x, w = _inputs(9, 64, 64)

  def compiled(weight_grad):
    loss = lambda x, w, g: jnp.sum(layers.temporal_conv(x, w, 1, 1, 4, weight_grad) * g)
    return jax.jit(jax.grad(loss)).lower(x, w, x).compile()
  matmul, conv = compiled('matmul'), compiled('conv')
  assert matmul.cost_analysis()['flops'] <= 1.01 * conv.cost_analysis()['flops']
  assert ' dot(' not in matmul.as_text()   # the weight gradient's matmuls are gone


def test_vmapped_kernels_match_a_loop():
  # Banks of classifiers vmap over their parameters.
  x, _ = _inputs(9, 64, 64)
  ws = jnp.stack([_inputs(9, 64, 64, seed=s)[1] for s in range(3)])
  loss = lambda w: jnp.sum(jnp.sin(layers.temporal_conv(x, w, 2, 1, 4, 'matmul')))
  batched = jax.jit(jax.vmap(jax.grad(loss)))(ws)
  ref = lambda w: jnp.sum(jnp.sin(_lax_conv(x, w, 2, 1)))
  for i in range(3):
    _close(batched[i], jax.grad(ref)(ws[i]))


class _NNConvTemporalConv(nn.Module):
  """TemporalConv as it was before: nn.Conv (k, 1) then BatchNorm."""
  features: int
  kernel_size: int
  stride: int = 1
  dilation: int = 1

  @nn.compact
  def __call__(self, x, train=False):
    p = _pad(self.kernel_size, self.dilation)
    x = nn.Conv(self.features, (self.kernel_size, 1), strides=(self.stride, 1),
                padding=((p, p), (0, 0)), kernel_dilation=(self.dilation, 1),
                kernel_init=layers.kaiming_fan_out_init, name='conv')(x)
    return layers.batch_norm(train, name='bn')(x)


@pytest.mark.parametrize('weight_grad', ['matmul', 'auto'])
@pytest.mark.parametrize('k,stride,dilation,c_in,c_out', CASES)
def test_module_keeps_nn_conv_parameters_and_numerics(k, stride, dilation, c_in, c_out,
                                                      weight_grad):
  x, _ = _inputs(k, c_in, c_out)
  old = _NNConvTemporalConv(c_out, k, stride, dilation)
  new = layers.TemporalConv(c_out, k, stride, dilation, kernel_init=layers.kaiming_fan_out_init,
                            weight_grad=weight_grad)
  old_vars, new_vars = old.init(jax.random.key(3), x), new.init(jax.random.key(3), x)
  # Same tree, shapes and init values: an old checkpoint loads as it is.
  assert jax.tree.structure(old_vars) == jax.tree.structure(new_vars)
  jax.tree.map(np.testing.assert_array_equal, old_vars, new_vars)
  # Give the bias and BatchNorm scale non-trivial values, then compare in both modes.
  rng = np.random.default_rng(4)
  variables = jax.tree.map(lambda a: a + 0.1 * rng.normal(size=a.shape).astype(a.dtype),
                           old_vars)
  _close(new.apply(variables, x), old.apply(variables, x), rtol=1e-6)
  g = jnp.asarray(rng.normal(size=old.apply(variables, x).shape), jnp.float32)

  def loss(module, params, x):
    y, _ = module.apply({**variables, 'params': params}, x, train=True, mutable=['batch_stats'])
    return jnp.sum(y * g)
  grads = jax.jit(jax.grad(lambda p, x: loss(new, p, x), argnums=(0, 1)))(variables['params'], x)
  ref = jax.jit(jax.grad(lambda p, x: loss(old, p, x), argnums=(0, 1)))(variables['params'], x)
  # The conv bias's gradient is zero up to rounding (BatchNorm removes the mean): every leaf is
  # compared at the scale of the largest gradient.
  scale = max(float(jnp.abs(leaf).max()) for leaf in jax.tree.leaves(ref))
  jax.tree.map(lambda a, e: _close(a, e, scale=scale), grads, ref)


def test_bfloat16_compute_keeps_the_dtype():
  # precision='bfloat16' casts inputs and parameters; the matmul gradient must stay bfloat16.
  x, w = _inputs(9, 64, 64)
  x, w = x.astype(jnp.bfloat16), w.astype(jnp.bfloat16)
  f = lambda x, w: jnp.sum(layers.temporal_conv(x, w, 1, 1, 4, 'matmul').astype(jnp.float32))
  dx, dw = jax.jit(jax.grad(f, argnums=(0, 1)))(x, w)
  assert dx.dtype == dw.dtype == jnp.bfloat16
  dw_ref = jax.grad(lambda w: jnp.sum(_lax_conv(x, w, 1, 1).astype(jnp.float32)))(w)
  _close(dw.astype(jnp.float32), dw_ref.astype(jnp.float32), rtol=2e-2)
