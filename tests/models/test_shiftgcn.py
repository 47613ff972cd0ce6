"""Shift-GCN: the temporal shift's forward and custom gradient, the spatial shift, the size."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from skeleton_anon.data.layouts import get_layout
from skeleton_anon.models import build_classifier, count_params
from skeleton_anon.models.shiftgcn import spatial_shift, spatial_shift_index, temporal_shift

# Offsets around and beyond the frame range, negative, integer and half-way values; the last
# channel's input is all zeros (its offset gradient is exactly zero).
OFFSETS = np.array([-2.3, -0.5, 0.0, 0.75, 1.0, 1.6, 9.2, 0.3], np.float32)


def _interpolation_matrix(num_frames, offset, stride):
  """[ceil(T/s), T]: row t mixes frames floor(p) and floor(p)+1 at s*t, p = offset (+0.5)."""
  pos = float(offset) + (0.5 if stride > 1 else 0.0)
  lower = int(np.floor(pos))
  frac = pos - lower
  num_out = -(-num_frames // stride)
  mat = np.zeros((num_out, num_frames), np.float64)
  for t in range(num_out):
    for frame, weight in ((stride * t + lower, 1 - frac), (stride * t + lower + 1, frac)):
      if 0 <= frame < num_frames:
        mat[t, frame] += weight
  return mat


def _inputs(num_frames, seed=0):
  rng = np.random.default_rng(seed)
  x = rng.normal(size=(3, num_frames, 4, len(OFFSETS))).astype(np.float32)
  x[..., -1] = 0.0
  return x


def _apply_per_channel(mats, x):
  return np.stack([np.einsum('ts,bsv->btv', m, x[..., c]) for c, m in enumerate(mats)], -1)


@pytest.mark.parametrize('stride,num_frames', [(1, 9), (2, 10), (2, 9)])
def test_forward_is_linear_interpolation(stride, num_frames):
  x = _inputs(num_frames)
  mats = [_interpolation_matrix(num_frames, p, stride) for p in OFFSETS]
  out = temporal_shift(jnp.asarray(x), jnp.asarray(OFFSETS), stride)
  np.testing.assert_allclose(out, _apply_per_channel(mats, x), rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize('stride,num_frames', [(1, 9), (2, 10), (2, 9)])
def test_input_gradient_is_transposed_interpolation(stride, num_frames):
  x = _inputs(num_frames)
  mats = [_interpolation_matrix(num_frames, p, stride) for p in OFFSETS]
  out, vjp = jax.vjp(lambda x: temporal_shift(x, jnp.asarray(OFFSETS), stride), jnp.asarray(x))
  grad_out = np.random.default_rng(1).normal(size=out.shape).astype(np.float32)
  grad_x = vjp(jnp.asarray(grad_out))[0]
  np.testing.assert_allclose(grad_x, _apply_per_channel([m.T for m in mats], grad_out),
                             rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize('stride,num_frames', [(1, 9), (2, 10)])
def test_offset_gradient_follows_cuda_kernel_rule(stride, num_frames):
  x = _inputs(num_frames)
  num_out = -(-num_frames // stride)
  grad_out = np.random.default_rng(2).normal(size=(3, num_out, 4, len(OFFSETS)))
  grad_out = grad_out.astype(np.float32)
  _, vjp = jax.vjp(lambda p: temporal_shift(jnp.asarray(x), p, stride), jnp.asarray(OFFSETS))
  grad_offsets = np.asarray(vjp(jnp.asarray(grad_out))[0])

  # The kernel's rule: g_c = batch mean of sum over frames and joints of
  # grad_out * (x[upper frame] - x[lower frame]); the gradient is 0.01 sign(g_c), 1e-4 at 0.
  padded = np.pad(x, ((0, 0), (20, 20), (0, 0), (0, 0)))
  expected = np.empty(len(OFFSETS), np.float32)
  for c, offset in enumerate(OFFSETS):
    lower = int(np.floor(offset + (0.5 if stride > 1 else 0.0)))
    frames = stride * np.arange(num_out) + lower + 20
    channel = padded[..., c]                                   # [B, T + 40, V]
    slope = channel[:, frames + 1] - channel[:, frames]
    raw = (grad_out[..., c] * slope).sum(axis=(1, 2)).mean()
    expected[c] = 0.01 * np.sign(raw) if raw != 0 else 1e-4
  np.testing.assert_array_equal(grad_offsets, expected)
  assert grad_offsets[-1] == pytest.approx(1e-4)   # the all-zero channel


def test_offset_gradient_sign_agrees_with_true_derivative():
  x = jnp.asarray(_inputs(12, seed=3))
  offsets = jnp.asarray(np.array([-1.3, -0.4, 0.2, 0.6, 1.7, 2.2, 3.4, 0.5], np.float32))
  grad_out = jnp.asarray(np.random.default_rng(4).normal(size=(3, 12, 4, 8)), jnp.float32)
  _, vjp = jax.vjp(lambda p: temporal_shift(x, p, 1), offsets)
  custom = np.asarray(vjp(grad_out)[0])[:-1]  # the last channel is all zero
  eps = 1e-3
  true = []
  for c in range(7):
    step = jnp.zeros(8).at[c].set(eps)
    diff = temporal_shift(x, offsets + step, 1) - temporal_shift(x, offsets - step, 1)
    true.append(float(jnp.sum(grad_out * diff)) / (2 * eps))
  np.testing.assert_array_equal(np.sign(custom), np.sign(true))
  np.testing.assert_allclose(np.abs(custom), 0.01)


def test_spatial_shift_moves_channel_j_by_j_joints():
  num_joints, channels = 5, 7
  x = np.random.default_rng(5).normal(size=(2, 3, num_joints, channels)).astype(np.float32)
  shifted_in = np.asarray(spatial_shift(jnp.asarray(x), +1))
  shifted_out = np.asarray(spatial_shift(jnp.asarray(x), -1))
  for v in range(num_joints):
    for j in range(channels):
      np.testing.assert_array_equal(shifted_in[:, :, v, j], x[:, :, (v + j) % num_joints, j])
      np.testing.assert_array_equal(shifted_out[:, :, v, j], x[:, :, (v - j) % num_joints, j])
  np.testing.assert_array_equal(spatial_shift(jnp.asarray(shifted_in), -1), x)
  index = spatial_shift_index(num_joints, channels, +1)
  assert sorted(index.tolist()) == list(range(num_joints * channels))  # a permutation


def test_parameter_count_matches_published():
  model = build_classifier('shiftgcn', num_classes=60, layout=get_layout('ntu25'), num_persons=2)
  shapes = jax.eval_shape(lambda: model.init(jax.random.key(0), jnp.zeros((1, 2, 16, 25, 3))))
  count = count_params(shapes['params'])
  # The anonymization paper's count for Shift-GCN (60 classes, 2 persons, NTU's 25 joints).
  assert count == pytest.approx(687_475, rel=0.01)
  # The original's layer shapes give 693,107; its joint-axis offsets (2 x 1,408) never move
  # and are left out.
  assert count == 693_107 - 2 * 1_408


def test_model_trains_offsets_with_the_custom_gradient():
  layout = get_layout('kinect_v1_20')
  model = build_classifier('shiftgcn', num_classes=4, layout=layout, num_persons=2,
                           base_channels=8, blocks_per_stage=(1,))
  x = jnp.asarray(np.random.default_rng(6).normal(size=(2, 2, 8, 20, 3)), jnp.float32)
  labels = jnp.array([1, 3])

  def grads(key, x):
    variables = model.init(key, x)

    def loss(params):
      logits, _ = model.apply({**variables, 'params': params}, x, train=True,
                              mutable=['batch_stats'])
      return -jnp.take_along_axis(jax.nn.log_softmax(logits), labels[:, None], 1).sum()
    return jax.grad(loss)(variables['params'])

  fast = {'xla_backend_optimization_level': 0, 'xla_llvm_disable_expensive_passes': True}
  key = jax.random.key(0)
  g = jax.jit(grads).lower(key, x).compile(compiler_options=fast)(key, x)
  tcn = g['block1']['tcn']
  for name in ('shift_in', 'shift_out'):
    magnitudes = np.abs(np.asarray(tcn[name]))
    on_rule = np.isclose(magnitudes, 0.01, rtol=1e-6) | np.isclose(magnitudes, 1e-4, rtol=1e-6)
    assert on_rule.all(), (name, magnitudes)
  assert np.abs(np.asarray(g['block1']['gcn']['linear_weight'])).max() > 0
