"""Every registered layout: a connected tree, the published joint count, mirror pairs that match
the joint names and map the bones onto bones, valid normalisation joints, and every registered
classifier running on its graph.

The classifiers get random variables of their `init` shapes (`jax.eval_shape(model.init)`, no
compiled initialisers) and one cheaply compiled forward pass, as in tests/models/test_gcn_zoo.py.
"""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from skeleton_anon.data import formats
from skeleton_anon.data.layouts import LAYOUTS, get_layout
from skeleton_anon.data.preprocess import pre_normalize
from skeleton_anon.errors import DataError
from skeleton_anon.models import CLASSIFIERS, build_classifier, registry

registry._ensure_loaded()          # every model module, whatever other tests imported first
# The package's own classifiers (other tests register tiny ones of their own).
PACKAGE_CLASSIFIERS = sorted(name for name, builder in CLASSIFIERS.items()
                             if builder.__module__.startswith('skeleton_anon.'))
# Run for real (compiled) on every layout; the others are traced (shapes, graph building).
COMPILED = ('stgcn',)

# Joint counts as published (NTU RGB+D, Kinect v1 SDK, COCO keypoints, Human3.6M as 3D lifters
# use it, OpenPose BODY_25, MediaPipe Pose, SMPL).
PUBLISHED_JOINTS = {'ntu25': 25, 'kinect_v1_20': 20, 'coco17': 17, 'h36m17': 17,
                    'openpose25': 25, 'mediapipe33': 33, 'smpl24': 24}
# A few indices fixed by the formats' own documentation.
ANCHORS = [('coco17', 0, 'nose'), ('coco17', 5, 'left_shoulder'), ('coco17', 16, 'right_ankle'),
           ('h36m17', 0, 'pelvis'), ('h36m17', 8, 'thorax'), ('h36m17', 14, 'right_shoulder'),
           ('openpose25', 1, 'neck'), ('openpose25', 8, 'mid_hip'),
           ('openpose25', 24, 'right_heel'), ('mediapipe33', 0, 'nose'),
           ('mediapipe33', 11, 'left_shoulder'), ('mediapipe33', 32, 'right_foot_index'),
           ('smpl24', 9, 'spine3'), ('smpl24', 15, 'head'), ('smpl24', 23, 'right_hand')]
MSG3D_TINY = dict(base_channels=3, num_gcn_scales=2, num_g3d_scales=2, tcn_dilations=(1,),
                  windows=(3,), num_stages=1)
GCN_TINY = dict(base_channels=8, blocks_per_stage=(1,))   # ctrgcn: 4 branches, rel width 1
TINY_KNOBS = {'stgcn': GCN_TINY, 'agcn': GCN_TINY, 'ctrgcn': GCN_TINY, 'shiftgcn': GCN_TINY,
              'msg3d': MSG3D_TINY, 'msg3d_nog3d': MSG3D_TINY,
              'sgn': dict(width=8, joint_layers=1)}
FAST_COMPILE = {'xla_backend_optimization_level': 0, 'xla_llvm_disable_expensive_passes': True}


def _mirror_permutation(layout):
  perm = np.arange(layout.num_joints)
  for left, right in layout.mirror:
    perm[left], perm[right] = right, left
  return perm


def test_the_registry_is_the_published_list():
  assert set(LAYOUTS) == set(PUBLISHED_JOINTS)
  assert set(PACKAGE_CLASSIFIERS) == set(TINY_KNOBS), 'give each classifier tiny knobs here'


@pytest.mark.parametrize('name', sorted(LAYOUTS))
def test_tree_count_and_names(name):
  layout = get_layout(name)
  assert layout is LAYOUTS[name] and layout.name == name
  v = layout.num_joints
  assert v == PUBLISHED_JOINTS[name]
  assert len(set(layout.joint_names)) == v
  edges = layout.edges
  assert edges.shape == (v - 1, 2) and edges.min() >= 0 and edges.max() < v
  assert len({frozenset(map(int, e)) for e in edges}) == v - 1     # no bone twice, no self-loop
  parents = layout.parents                                        # raises if not connected
  assert parents[layout.root] == layout.root
  for j in range(v):
    k, steps = j, 0
    while k != layout.root:
      k, steps = int(parents[k]), steps + 1
      assert steps < v, f'joint {j} never reaches the root'
  # The bones are exactly the tree's (joint, parent) links (ntu25 lists some of them the other
  # way round: the NTU paper's bones point to the spine shoulder, not to the root).
  tree = {frozenset((j, int(parents[j]))) for j in range(v) if j != layout.root}
  assert tree == {frozenset(map(int, e)) for e in edges}
  with pytest.raises(DataError, match=f'{name!r} has {v} joints'):
    get_layout(name, num_joints=v + 1)


@pytest.mark.parametrize('name,index,joint', ANCHORS)
def test_documented_indices(name, index, joint):
  assert LAYOUTS[name].joint_names[index] == joint


@pytest.mark.parametrize('name', sorted(LAYOUTS))
def test_mirror_pairs_follow_names_and_map_bones_onto_bones(name):
  layout = LAYOUTS[name]
  names = layout.joint_names
  paired = [j for pair in layout.mirror for j in pair]
  assert len(paired) == len(set(paired))
  for left, right in layout.mirror:
    assert 'left' in names[left] and 'right' not in names[left]
    assert names[left].replace('left', 'right') == names[right]
  # Joints without a side are on the midline and in no pair; every sided joint is in one.
  sided = {j for j, n in enumerate(names) if 'left' in n or 'right' in n}
  assert sided == set(paired)
  perm = _mirror_permutation(layout)
  bones = {frozenset(map(int, b)) for b in layout.bones}
  assert {frozenset((int(perm[a]), int(perm[b]))) for a, b in layout.bones} == bones
  # The root is on the midline, so the tree's orientation mirrors too: left and right limbs'
  # bone vectors (child minus parent) correspond.
  assert perm[layout.root] == layout.root
  np.testing.assert_array_equal(layout.parents[perm], perm[layout.parents])


@pytest.mark.parametrize('name', sorted(LAYOUTS))
def test_normalisation_joints(name):
  layout = LAYOUTS[name]
  v = layout.num_joints
  for j in (layout.root, layout.center, layout.norm_center):
    assert 0 <= j < v
  bottom, top = layout.norm_zaxis
  right, left = layout.norm_xaxis
  assert all(0 <= j < v for j in (bottom, top, right, left)) and bottom != top
  assert (left, right) in layout.mirror and 'shoulder' in layout.joint_names[left]
  # pre_normalize centres a random pose on norm_center and ends with its shoulders on +x (the
  # z joints go onto +z first; as in 2s-AGCN, the shoulder rotation then tilts them again).
  x = np.random.default_rng(2).normal(size=(1, 1, 4, v, 3)).astype(np.float32)
  y, _ = pre_normalize(x, np.array([4]), layout, 'agcn')
  first = y[0, 0, 0]
  np.testing.assert_allclose(first[layout.norm_center], 0.0, atol=1e-5)
  across = first[right] - first[left]
  np.testing.assert_allclose(across / np.linalg.norm(across), [1, 0, 0], atol=1e-4)


def test_dataset_files_without_a_layout_keep_the_sensor_layouts():
  # 25 joints stay ntu25 although openpose25 has 25 too; shared or other counts are not guessed.
  assert formats.layout_for_joints(25) == 'ntu25'
  assert formats.layout_for_joints(20) == 'kinect_v1_20'
  with pytest.raises(DataError, match='coco17, h36m17'):
    formats.layout_for_joints(17)
  with pytest.raises(DataError, match='smpl24'):
    formats.layout_for_joints(24)


def _random_variables(model, x):
  """Variables of `model.init`'s shapes: params ~ N(0, 0.3^2), BN means 0 and variances 1."""
  shapes = jax.eval_shape(model.init, jax.random.key(0), x)
  rng = np.random.default_rng(0)

  def fill(path, leaf):
    key = jax.tree_util.keystr(path)
    if "'var'" in key:
      return np.ones(leaf.shape, leaf.dtype)
    if "'mean'" in key:
      return np.zeros(leaf.shape, leaf.dtype)
    return (0.3 * rng.normal(size=leaf.shape)).astype(leaf.dtype)
  return jax.tree_util.tree_map_with_path(fill, shapes)


@pytest.mark.parametrize('classifier', PACKAGE_CLASSIFIERS)
@pytest.mark.parametrize('name', sorted(LAYOUTS))
def test_every_classifier_runs_on_the_layout(name, classifier):
  layout = LAYOUTS[name]
  model = build_classifier(classifier, num_classes=3, layout=layout, num_persons=1,
                           **TINY_KNOBS[classifier])
  rng = np.random.default_rng(1)
  x = jnp.asarray(0.1 * rng.normal(size=(2, 1, 8, layout.num_joints, 3)), jnp.float32)
  variables = _random_variables(model, x)

  def forward(variables, x):
    return model.apply(variables, x, train=False)

  if classifier not in COMPILED:
    # Tracing builds the graph and checks every shape; compiling 49 pairs would cost minutes.
    assert jax.eval_shape(forward, variables, x).shape == (2, 3)
    return
  logits = jax.jit(forward).lower(variables, x).compile(compiler_options=FAST_COMPILE)(
      variables, x)
  assert logits.shape == (2, 3)
  assert np.isfinite(np.asarray(logits)).all()
