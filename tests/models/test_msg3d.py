"""MS-G3D and its no-G3D gender variant: sizes, any layout, gradients, train/eval, graphs."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from skeleton_anon.data.layouts import custom_layout, get_layout
from skeleton_anon.errors import ConfigError
from skeleton_anon.models import build_classifier, count_params
from skeleton_anon.models.layers import graph_aggregate
from skeleton_anon.models.msg3d_blocks import (bone_adjacency, k_hop_matrix,
                                               multiscale_adjacency, unfold_windows,
                                               window_graph)

# One STGC block, one channel per MS-TCN branch: compiles in seconds on a loaded CPU.
TINY = dict(base_channels=3, num_gcn_scales=2, num_g3d_scales=2, tcn_dilations=(1,),
            windows=(3,), num_stages=1)
LAYOUTS = {
    'ntu25': get_layout('ntu25'),
    'kinect_v1_20': get_layout('kinect_v1_20'),
    'custom': custom_layout(np.array([[1, 0], [2, 1], [3, 1], [4, 0]]), 5),
}


def _numpy_variables(module, x, seed=0):
  """Random variables with the module's structure, without compiling an init."""
  shapes = jax.eval_shape(module.init, jax.random.key(0), x)
  rng = np.random.RandomState(seed)
  params = jax.tree.map(lambda s: rng.normal(0, 0.3, s.shape).astype(np.float32),
                        shapes['params'])
  stats = jax.tree_util.tree_map_with_path(
      lambda path, s: np.full(s.shape, 1.0 if path[-1].key == 'var' else 0.0, np.float32),
      shapes['batch_stats'])
  return {'params': params, 'batch_stats': stats}


def _padded_batch(layout, persons=2, frames=8, seed=1):
  """Sample 1 has no second person and 5 valid frames; the rest is zero padding."""
  x = np.random.RandomState(seed).normal(size=(2, persons, frames, layout.num_joints, 3))
  x = x.astype(np.float32)
  if persons > 1:
    x[1, 1] = 0.0
  x[1, :, 5:] = 0.0
  return jnp.asarray(x)


@pytest.mark.parametrize('layout_name', sorted(LAYOUTS))
@pytest.mark.parametrize('name', ['msg3d', 'msg3d_nog3d'])
def test_logits_and_finite_input_gradients(name, layout_name):
  layout = LAYOUTS[layout_name]
  module = build_classifier(name, num_classes=3, layout=layout, num_persons=2, **TINY)
  x = _padded_batch(layout)
  variables = _numpy_variables(module, x)

  @jax.jit
  def logits_and_grad(variables, x):
    fn = lambda x: (lambda y: (y.sum(), y))(module.apply(variables, x))
    return jax.value_and_grad(fn, has_aux=True)(x)

  (_, logits), grad = logits_and_grad(variables, x)
  assert logits.shape == (2, 3)
  assert bool(jnp.isfinite(logits).all()) and bool(jnp.isfinite(grad).all())
  assert float(jnp.abs(grad[0]).max()) > 0


@pytest.mark.parametrize('name,classes,persons,expected', [
    ('msg3d', 60, 2, 3_194_595),        # MS-G3D, NTU-60 (original repository)
    ('msg3d_nog3d', 2, 1, 1_415_855),   # Moon et al.'s gender classifier
    ('msg3d', 40, 2, 3_186_895),        # their re-ID model, 40 subjects
])
def test_full_size_parameter_counts(name, classes, persons, expected):
  module = build_classifier(name, num_classes=classes, layout=LAYOUTS['ntu25'],
                            num_persons=persons)
  x = jax.ShapeDtypeStruct((1, persons, 16, 25, 3), jnp.float32)
  shapes = jax.eval_shape(module.init, jax.random.key(0), x)
  # The issue asks for 1%; the structure matches the original exactly.
  assert count_params(shapes['params']) == expected


def test_train_and_eval_differ_only_through_batchnorm():
  """Eval with running statistics set to the batch statistics reproduces train mode."""
  layout = LAYOUTS['kinect_v1_20']
  knobs = dict(TINY, num_stages=2, windows=(3, 5))
  module = build_classifier('msg3d', num_classes=4, layout=layout, num_persons=2, **knobs)
  x = _padded_batch(layout, frames=7)
  variables = _numpy_variables(module, x)
  train_fn = jax.jit(lambda v, x: module.apply(v, x, train=True, mutable=['batch_stats']))
  eval_fn = jax.jit(lambda v, x: module.apply(v, x, train=False))

  y_train, updates = train_fn(variables, x)
  # Fresh stats are mean 0 / var 1 and momentum is 0.9: recover the batch's own statistics.
  batch_stats = jax.tree_util.tree_map_with_path(
      lambda path, new: (new - 0.9 * (1.0 if path[-1].key == 'var' else 0.0)) / 0.1,
      updates['batch_stats'])
  y_eval = eval_fn({'params': variables['params'], 'batch_stats': batch_stats}, x)
  np.testing.assert_allclose(np.asarray(y_eval), np.asarray(y_train), rtol=2e-3, atol=2e-3)

  y_eval_fresh = eval_fn(variables, x)
  assert not np.allclose(np.asarray(y_eval_fresh), np.asarray(y_train), atol=1e-3)
  np.testing.assert_array_equal(np.asarray(eval_fn(variables, x)), np.asarray(y_eval_fresh))
  assert y_train.shape == (2, 4)


def test_k_hop_scales_on_a_chain():
  a = bone_adjacency([(1, 0), (2, 1), (3, 2)], 4)      # 0 - 1 - 2 - 3
  np.testing.assert_array_equal(k_hop_matrix(a, 0), np.eye(4))
  two_hop = k_hop_matrix(a, 2, with_self=False)
  assert two_hop[0, 2] == two_hop[1, 3] == 1 and two_hop.sum() == 4
  np.testing.assert_array_equal(k_hop_matrix(a, 5, with_self=True), np.eye(4))  # beyond reach
  scales = multiscale_adjacency(a, 3)
  assert scales.shape == (3, 4, 4)
  # D^-1/2 (A_1 + I) D^-1/2 at (0, 1): degrees 2 and 3.
  assert scales[1, 0, 1] == pytest.approx(1 / np.sqrt(6))


def test_window_graph_and_unfold_match_their_definition():
  a = bone_adjacency([(1, 0)], 2)
  big = window_graph(a, 3)
  assert big.shape == (6, 6) and big.min() == 1.0      # two joints, all connected in the window
  x = jnp.arange(2 * 5 * 2 * 1, dtype=jnp.float32).reshape(2, 5, 2, 1)
  windows = np.asarray(unfold_windows(x, 3, 2, 1))      # stride 2: centres at frames 0, 2, 4
  assert windows.shape == (2, 3, 6, 1)
  xp = np.pad(np.asarray(x), ((0, 0), (1, 1), (0, 0), (0, 0)))
  for w in range(3):
    for j in range(3):
      np.testing.assert_array_equal(windows[:, w, j * 2:(j + 1) * 2], xp[:, 2 * w + j])


def test_bad_knobs_are_config_errors_and_modules_hash():
  layout = LAYOUTS['custom']
  with pytest.raises(ConfigError, match='multiple of 6'):
    build_classifier('msg3d', num_classes=2, layout=layout, num_persons=1, base_channels=10)
  with pytest.raises(ConfigError, match='unknown knobs'):
    build_classifier('msg3d_nog3d', num_classes=2, layout=layout, num_persons=1, depth=3)
  module = build_classifier('msg3d', num_classes=2, layout=layout, num_persons=1,
                            windows=[3, 5, 7], tcn_dilations=[1, 2])
  hash(module)   # static attributes only: the module can be a static jit argument
  assert module.window_dilations == (1, 1, 1)


@pytest.mark.parametrize('joints,channels', [(6, 3), (6, 12)])
def test_multiscale_aggregation_and_its_gradients_match_the_einsum(joints, channels):
  """`graph_aggregate` gives MS-G3D's [B, T, V, S*C] (scale-major channels) and its gradients."""
  rng = np.random.RandomState(0)
  a = rng.normal(size=(3, 4, joints)).astype(np.float32)       # [S, V_out, V_in], not square
  x = rng.normal(size=(2, 5, joints, channels)).astype(np.float32)
  cotangent = rng.normal(size=(2, 5, 4, 3 * channels))
  out, vjp = jax.vjp(graph_aggregate, jnp.asarray(a), jnp.asarray(x))
  a64, x64 = a.astype(np.float64), x.astype(np.float64)
  expected = np.einsum('svu,btuc->btvsc', a64, x64).reshape(2, 5, 4, 3 * channels)
  np.testing.assert_allclose(np.asarray(out), expected, rtol=1e-5, atol=1e-5)
  grad_a, grad_x = vjp(jnp.asarray(cotangent, jnp.float32))
  per_scale = cotangent.reshape(2, 5, 4, 3, channels)
  np.testing.assert_allclose(np.asarray(grad_a), np.einsum('btvsc,btuc->svu', per_scale, x64),
                             rtol=1e-4, atol=1e-4)
  np.testing.assert_allclose(np.asarray(grad_x), np.einsum('svu,btvsc->btuc', a64, per_scale),
                             rtol=1e-4, atol=1e-4)
