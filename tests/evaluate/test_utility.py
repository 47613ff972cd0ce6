"""Within-action diversity: 1 for an untouched copy, 0 for a prototype per action, and blind to
body proportions and position."""

import numpy as np

from skeleton_anon.data import transforms
from skeleton_anon.data.layouts import get_layout
from skeleton_anon.evaluate.utility import within_action_diversity


def _data(make_skeletons):
  layout = get_layout('ntu25')
  x, lengths, _ = make_skeletons(n=12, m=1, t=10, second_person=())
  action = np.repeat(np.arange(3), 4)
  target = transforms.median_bone_lengths(x, lengths, layout)
  return x, lengths, action, layout, target


def test_identity_keeps_all_diversity(make_skeletons):
  x, lengths, action, layout, target = _data(make_skeletons)
  out = within_action_diversity(x, x.copy(), lengths, action, layout, target)
  assert out['ratio'] == 1.0 and out['original'] > 0
  assert sorted(out['per_action']) == [0, 1, 2]


def test_prototype_per_action_is_zero(make_skeletons):
  x, lengths, action, layout, target = _data(make_skeletons)
  lengths = np.full_like(lengths, x.shape[2])
  collapsed = x.copy()
  for a in np.unique(action):
    collapsed[action == a] = x[action == a][0]
  out = within_action_diversity(x, collapsed, lengths, action, layout, target)
  assert out['ratio'] < 1e-6


def test_proportions_and_position_are_not_diversity(make_skeletons):
  """Rescaling bones and moving people around changes nothing once postures are compared."""
  x, lengths, action, layout, target = _data(make_skeletons)
  moved = transforms.retarget(x, lengths, layout, target * 1.3)
  shift = np.random.default_rng(1).normal(size=(len(x), 1, 1, 1, 3)).astype(np.float32)
  moved = np.where(transforms.valid_mask(x, lengths)[..., None, None], moved + shift, 0)
  out = within_action_diversity(x, moved, lengths, action, layout, target)
  assert abs(out['ratio'] - 1.0) < 1e-4


def test_pulling_towards_a_prototype_lowers_diversity_in_order(make_skeletons):
  """Every sample pulled part of the way to its action's first sample: the further the pull,
  the lower the ratio (retargeting inside the metric renormalises the blended bones, so a pull
  of one half lands near, not at, one half)."""
  x, lengths, action, layout, target = _data(make_skeletons)
  lengths = np.full_like(lengths, x.shape[2])
  x = transforms.retarget(x, lengths, layout, target)
  x = x - x[..., layout.root:layout.root + 1, :]

  def pulled(weight):
    out = x.copy()
    for a in np.unique(action):
      out[action == a] = (1 - weight) * x[action == a] + weight * x[action == a][0]
    return within_action_diversity(x, out, lengths, action, layout, target)['ratio']

  quarter, half, most = pulled(0.25), pulled(0.5), pulled(0.9)
  assert 1.0 > quarter > half > most > 0.0
  assert 0.4 < half < 0.75 and most < 0.2
