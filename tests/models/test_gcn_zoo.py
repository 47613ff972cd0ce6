"""ST-GCN, 2s-AGCN, CTR-GCN (and Shift-GCN's generic checks): shapes, gradients, sizes, modes.

Compilation dominates on CPU, so the tiny models get random variables filled from their
shapes (no compiled init) and are compiled with XLA's cheap optimisation level.
"""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from skeleton_anon.data.layouts import custom_layout, get_layout
from skeleton_anon.errors import ConfigError
from skeleton_anon.models import build_classifier, count_params, graph
from skeleton_anon.data.transforms import bone_vectors
from skeleton_anon.models.stgcn import stgcn_spatial_partition

FAST_COMPILE = {'xla_backend_optimization_level': 0, 'xla_llvm_disable_expensive_passes': True}
MODELS = ('stgcn', 'agcn', 'ctrgcn', 'shiftgcn')
TINY = {'base_channels': 8, 'blocks_per_stage': (1, 1)}   # exercises the strided stage
ONE_BLOCK = {'base_channels': 8, 'blocks_per_stage': (1,)}
NUM_CLASSES = 5


def _layout(name):
  if name == 'custom':  # a 7-joint tree: spine with two arms and a leg
    return custom_layout(np.array([[1, 0], [2, 1], [3, 1], [4, 3], [5, 0], [6, 5]]), 7)
  return get_layout(name)


def _run(fn, *args):
  """jit-compiles fn cheaply and calls it."""
  return jax.jit(fn).lower(*args).compile(compiler_options=FAST_COMPILE)(*args)


def _random_variables(model, x, seed=0):
  """Variables of model's shapes: params ~ N(0, 0.3^2), BN means 0 and variances 1."""
  shapes = jax.eval_shape(lambda: model.init(jax.random.key(0), x))
  rng = np.random.default_rng(seed)

  def fill(path, leaf):
    key = jax.tree_util.keystr(path)
    if "'var'" in key:
      return np.ones(leaf.shape, leaf.dtype)
    if "'mean'" in key:
      return np.zeros(leaf.shape, leaf.dtype)
    return (0.3 * rng.normal(size=leaf.shape)).astype(leaf.dtype)
  return jax.tree_util.tree_map_with_path(fill, shapes)


def _batch(layout, seed=1, frames=8):
  rng = np.random.default_rng(seed)
  return jnp.asarray(rng.normal(size=(2, 2, frames, layout.num_joints, 3)), jnp.float32)


@pytest.mark.parametrize('layout_name', ['ntu25', 'kinect_v1_20', 'custom'])
@pytest.mark.parametrize('name', MODELS)
def test_logits_gradients_and_padding_on_every_layout(name, layout_name):
  layout = _layout(layout_name)
  model = build_classifier(name, num_classes=NUM_CLASSES, layout=layout, num_persons=2,
                           **ONE_BLOCK)
  x = np.array(_batch(layout))
  x[0, :, 5:] = 0.0     # sample 0: 5 valid frames, then zero padding
  x[0, 1] = 0.0         # and no second person
  other = x.copy()
  other[1] = 0.0        # the same sample 0 next to an all-zero sample
  variables = _random_variables(model, x)

  def fn(variables, x, other):
    logits, vjp = jax.vjp(lambda x: model.apply(variables, x), x)
    # Gradient of sum(logits ** 2); logits of the other batch.
    return logits, vjp(2 * logits)[0], model.apply(variables, other)

  logits, grad, other_logits = _run(fn, variables, jnp.asarray(x), jnp.asarray(other))
  assert logits.shape == (2, NUM_CLASSES)
  assert np.isfinite(np.asarray(logits)).all() and np.isfinite(np.asarray(other_logits)).all()
  assert grad.shape == x.shape
  assert np.isfinite(np.asarray(grad)).all()
  assert np.abs(np.asarray(grad)).max() > 0
  # In eval mode a sample's logits do not depend on what else is in the batch.
  np.testing.assert_allclose(logits[0], other_logits[0], rtol=1e-5, atol=1e-5)


# Published sizes for 60 classes, 2 persons, NTU's 25 joints, counted from the original
# repositories' layer shapes (yysijie/st-gcn with edge importance; lshiwjx/2s-AGCN, per stream;
# Uason-Chen/CTR-GCN). The papers round them to 3.1M, 3.47M and 1.46M (the last for 120 classes:
# 1,446,672 + 60 * 257 = 1,462,092).
PUBLISHED = [('stgcn', {}, 3_098_832), ('agcn', {'stream': 'joint'}, 3_469_510),
             ('agcn', {'stream': 'bone'}, 3_469_510), ('ctrgcn', {}, 1_446_672)]


@pytest.mark.parametrize('name,knobs,published', PUBLISHED)
def test_full_size_parameter_count_matches_original(name, knobs, published):
  model = build_classifier(name, num_classes=60, layout=get_layout('ntu25'), num_persons=2,
                           **knobs)
  shapes = jax.eval_shape(lambda: model.init(jax.random.key(0), jnp.zeros((1, 2, 16, 25, 3))))
  assert 'batch_stats' in shapes
  assert count_params(shapes['params']) == pytest.approx(published, rel=0.01)


@pytest.mark.parametrize('name', MODELS)
def test_train_and_eval_differ_only_through_batch_statistics(name):
  layout = get_layout('kinect_v1_20')
  knobs = dict(TINY, dropout=0.0) if name == 'stgcn' else TINY
  model = build_classifier(name, num_classes=NUM_CLASSES, layout=layout, num_persons=2, **knobs)
  x = _batch(layout, seed=2)
  variables = _run(model.init, jax.random.key(3), x)

  def fn(variables, x):
    train_logits, updated = model.apply(variables, x, train=True, mutable=['batch_stats'])
    # running <- 0.9 running + 0.1 batch, so the batch statistics can be solved for.
    batch_stats = jax.tree_util.tree_map(lambda new, old: (new - 0.9 * old) / 0.1,
                                         updated['batch_stats'], variables['batch_stats'])
    eval_logits = model.apply({'params': variables['params'], 'batch_stats': batch_stats}, x)
    return train_logits, eval_logits, model.apply(variables, x)

  train_logits, eval_logits, eval_initial = _run(fn, variables, x)
  np.testing.assert_allclose(eval_logits, train_logits, rtol=2e-3, atol=2e-4)
  # With the initial statistics (mean 0, variance 1) eval mode is a different function.
  assert np.abs(np.asarray(eval_initial) - np.asarray(train_logits)).max() > 1e-3


def test_dropout_is_random_in_train_mode_only():
  layout = get_layout('kinect_v1_20')
  model = build_classifier('stgcn', num_classes=NUM_CLASSES, layout=layout, num_persons=2,
                           dropout=0.5, **ONE_BLOCK)
  x = _batch(layout)
  variables = _random_variables(model, x)

  def fn(variables, x):
    outs = []
    for train in (True, False):
      for seed in (0, 1):
        out = model.apply(variables, x, train=train, mutable=['batch_stats'],
                          rngs={'dropout': jax.random.key(seed)})[0]
        outs.append(out)
    return outs

  train0, train1, eval0, eval1 = _run(fn, variables, x)
  assert np.abs(np.asarray(train0) - np.asarray(train1)).max() > 1e-4
  np.testing.assert_array_equal(eval0, eval1)


def test_bone_vectors_are_child_minus_parent():
  layout = _layout('custom')
  x = np.random.default_rng(0).normal(size=(2, 3, layout.num_joints, 3)).astype(np.float32)
  bones = np.asarray(bone_vectors(jnp.asarray(x), layout.parents))
  for child, parent in layout.bones:
    np.testing.assert_allclose(bones[..., child, :], x[..., child, :] - x[..., parent, :],
                               rtol=1e-6)
  np.testing.assert_array_equal(bones[..., layout.root, :], 0.0)
  assert not np.asarray(bone_vectors(jnp.zeros_like(x), layout.parents)).any()


def test_bone_stream_is_joint_model_on_bone_vectors():
  layout = _layout('custom')
  kwargs = dict(num_classes=NUM_CLASSES, layout=layout, num_persons=2, **ONE_BLOCK)
  joint = build_classifier('agcn', stream='joint', **kwargs)
  bone = build_classifier('agcn', stream='bone', **kwargs)
  x = _batch(layout)
  variables = _random_variables(joint, x)

  def fn(variables, x):
    return bone.apply(variables, x), joint.apply(variables, bone_vectors(x, layout.parents))

  from_bone, from_joint = _run(fn, variables, x)
  np.testing.assert_allclose(from_bone, from_joint, rtol=1e-5, atol=1e-6)


def test_agcn_rejects_unknown_stream():
  with pytest.raises(ConfigError, match='stream'):
    build_classifier('agcn', num_classes=3, layout=get_layout('ntu25'), num_persons=1,
                     stream='motion')


@pytest.mark.parametrize('layout_name', ['ntu25', 'kinect_v1_20', 'custom'])
def test_stgcn_partition_splits_normalised_graph_by_distance_to_centre(layout_name):
  layout = _layout(layout_name)
  parts = stgcn_spatial_partition(layout)
  v = layout.num_joints
  assert parts.shape == (3, v, v)
  full = graph.normalize_digraph(graph.adjacency(layout, self_loops=True))
  np.testing.assert_allclose(parts.sum(axis=0), full, rtol=1e-6)
  assert ((parts > 0).sum(axis=0) <= 1).all()              # each edge in one part only
  np.testing.assert_array_equal(parts[0] > 0, np.eye(v, dtype=bool))
  depth = graph.hop_distance(layout)[:, layout.center]
  src, dst = np.nonzero(parts[2])
  assert (depth[src] < depth[dst]).all() and len(src) == v - 1  # every joint but the centre


@pytest.mark.parametrize('name', ['stgcn', 'agcn', 'ctrgcn'])
def test_models_are_hashable_and_reject_a_mismatched_joint_count(name):
  layout = get_layout('ntu25')
  model = build_classifier(name, num_classes=3, layout=layout, num_persons=2, **ONE_BLOCK)
  same = build_classifier(name, num_classes=3, layout=layout, num_persons=2, **ONE_BLOCK)
  assert hash(model) == hash(same) and model == same   # usable as a static jit argument
  with pytest.raises(ConfigError, match="25.*'ntu25'.*20"):
    jax.eval_shape(lambda: model.init(jax.random.key(0), jnp.zeros((1, 2, 8, 20, 3))))


@pytest.mark.parametrize('arch', ['stgcn', 'agcn', 'ctrgcn', 'shiftgcn', 'sgn'])
def test_unknown_knob_is_a_one_line_config_error(arch):
  from skeleton_anon.errors import ConfigError
  from skeleton_anon.models import build_classifier
  with pytest.raises(ConfigError, match=rf"classifier '{arch}': unknown knobs \['chanels'\]"):
    build_classifier(arch, num_classes=3, layout=get_layout('ntu25'), num_persons=1,
                     chanels=8)


def test_frame_stride_reads_every_kth_frame():
  """frame_stride=k is the same network applied to x[:, :, ::k]."""
  layout = get_layout('ntu25')
  knobs = dict(base_channels=4, blocks_per_stage=(1, 1, 1), temporal_kernel=3, dropout=0.0)
  strided = build_classifier('stgcn', num_classes=3, layout=layout, num_persons=1,
                             frame_stride=3, **knobs)
  plain = build_classifier('stgcn', num_classes=3, layout=layout, num_persons=1, **knobs)
  x = np.random.default_rng(0).normal(size=(2, 1, 12, 25, 3)).astype(np.float32)
  variables = strided.init(jax.random.key(0), x)
  inner = {k: v['inner'] for k, v in variables.items()}
  np.testing.assert_allclose(strided.apply(variables, x), plain.apply(inner, x[:, :, ::3]),
                             rtol=1e-5, atol=1e-5)
  with pytest.raises(ConfigError, match='frame_stride must be >= 1'):
    build_classifier('stgcn', num_classes=3, layout=layout, num_persons=1, frame_stride=0)


@pytest.mark.parametrize('name,knobs,needs', [
    ('ctrgcn', dict(base_channels=10, dilations=(1, 2)), 'multiple of 4'),
    ('ctrgcn', dict(base_channels=4, dilations=(1, 2)), '>= 8'),
    ('agcn', dict(base_channels=2, embed_ratio=4), '>= 4'),
    ('msg3d', dict(base_channels=10), 'multiple of 6'),
    ('stgcn', dict(base_channels=0), '>= 1'),
])
def test_channels_a_network_cannot_split_are_one_line_errors(name, knobs, needs):
  from skeleton_anon.errors import ConfigError
  from skeleton_anon.models import build_classifier
  from skeleton_anon.data.layouts import get_layout
  with pytest.raises(ConfigError, match=f"classifier '{name}': base_channels=.*{needs}"):
    build_classifier(name, num_classes=3, layout=get_layout('ntu25'), num_persons=1, **knobs)


def test_block_plan_is_the_shared_backbone():
  from skeleton_anon.models.layers import block_plan
  plan = block_plan(64, (4, 3, 3))
  assert [p[0] for p in plan] == list(range(10))
  assert [p[1] for p in plan] == [64] * 4 + [128] * 3 + [256] * 3
  assert [i for i, _, stride, _ in plan if stride == 2] == [4, 7]
  assert [i for i, _, _, residual in plan if not residual] == [0]


@pytest.mark.parametrize('name,knobs', [
    *[(m, ONE_BLOCK) for m in MODELS],
    ('msg3d', {'base_channels': 6, 'num_gcn_scales': 2, 'num_g3d_scales': 1, 'windows': (3,),
               'tcn_dilations': (1,), 'num_stages': 1}),
    ('sgn', {'width': 8}),
])
def test_every_classifier_reads_2d_keypoints(name, knobs):
  """Image-plane keypoints (C=2, coco17): every classifier builds, gives finite logits and
  gradients (CTR-GCN's relation width once divided 2 channels down to zero)."""
  layout = get_layout('coco17')
  model = build_classifier(name, num_classes=NUM_CLASSES, layout=layout, num_persons=2, **knobs)
  x = np.array(_batch(layout))[..., :2]
  variables = _random_variables(model, x)

  def fn(variables, x):
    logits, vjp = jax.vjp(lambda x: model.apply(variables, x), x)
    return logits, vjp(2 * logits)[0]

  logits, grad = _run(fn, variables, jnp.asarray(x))
  assert logits.shape == (2, NUM_CLASSES) and np.isfinite(np.asarray(logits)).all()
  assert grad.shape == x.shape and np.abs(np.asarray(grad)).max() > 0
