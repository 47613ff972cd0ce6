"""The synthetic dataset: deterministic, valid, and with learnable but not trivial privacy cues."""

import numpy as np
import pytest

from skeleton_anon.data import get_layout, validate
from skeleton_anon.data.preprocess import pre_normalize
from skeleton_anon.data.synthetic import iter_synthetic, make_synthetic
from skeleton_anon.data.synthetic_body import forward_kinematics, sample_bodies, CHANNELS
from skeleton_anon.errors import ConfigError

NTU = get_layout('ntu25')
SMALL = dict(num_subjects=4, num_actions=3, repetitions=2, num_views=2, num_frames=24)


@pytest.fixture(scope='module')
def reid_data():
  """20 subjects, 10 actions, 2 repetitions, one camera: the demo's scale at low T."""
  return make_synthetic(num_subjects=20, num_actions=10, repetitions=2, num_views=1,
                        num_frames=32, seed=3)


def _mean_bone_lengths(ds):
  """[N, E] bone lengths averaged over the frames where the main person is tracked."""
  x = ds.x[:, 0]
  tracked = (x != 0).any(-1).all(-1)                                 # [N, T]
  bones = np.linalg.norm(x[:, :, NTU.edges[:, 0]] - x[:, :, NTU.edges[:, 1]], axis=-1)
  return (bones * tracked[..., None]).sum(1) / tracked.sum(1)[:, None]


def _replication(ds):
  return np.array([int(n[13:16]) for n in ds.names])


def _logistic_regression_accuracy(x_train, y_train, x_test, y_test, steps=1500, lr=0.2):
  mean, std = x_train.mean(0), x_train.std(0) + 1e-9
  x_train, x_test = (x_train - mean) / std, (x_test - mean) / std
  w, b = np.zeros(x_train.shape[1]), 0.0
  for _ in range(steps):
    p = 1 / (1 + np.exp(-(x_train @ w + b)))
    w -= lr * (x_train.T @ (p - y_train) / len(y_train) + 1e-3 * w)
    b -= lr * (p - y_train).mean()
  return float((((x_test @ w + b) > 0) == y_test).mean())


def test_deterministic_for_a_seed_and_streamed_equals_whole():
  a = make_synthetic(**SMALL, seed=5)
  b = make_synthetic(**SMALL, seed=5)
  c = make_synthetic(**SMALL, seed=6)
  np.testing.assert_array_equal(a.x, b.x)
  np.testing.assert_array_equal(a.lengths, b.lengths)
  np.testing.assert_array_equal(a.gender, b.gender)
  assert not np.array_equal(a.x, c.x)
  parts = list(iter_synthetic(**SMALL, seed=5))
  assert len(parts) == SMALL['num_subjects']
  np.testing.assert_array_equal(np.concatenate([p.x for p in parts]), a.x)
  np.testing.assert_array_equal(np.concatenate([p.names for p in parts]), a.names)


def test_shapes_labels_and_names():
  ds = make_synthetic(**SMALL, seed=0)
  n = 4 * 3 * 2 * 2
  assert ds.x.shape == (n, 1, 24, 25, 3) and ds.x.dtype == np.float32
  ds = validate(ds)
  assert ds.split is None and ds.layout == 'ntu25'
  assert sorted(np.unique(ds.subject)) == [0, 1, 2, 3]
  assert sorted(np.unique(ds.action)) == [0, 1, 2]
  assert ds.gender.sum() == n // 2           # half the subjects are men (1, as ETRI's reader)
  for name, s, a, c, r in zip(ds.names, ds.subject, ds.action, ds.camera, ds.replication):
    assert name == f'S001C{c:03d}P{s + 1:03d}R{r:03d}A{a + 1:03d}'
  assert set(ds.camera) == {1, 2} and set(ds.replication) == {1, 2}
  assert len(set(ds.lengths.tolist())) > 1   # tempo and action change the length
  # People stand a few metres in front of the camera (Kinect camera space).
  valid = ds.x[:, 0][(ds.x[:, 0] != 0).any(-1)]
  assert 2.0 < np.median(valid[:, 2]) < 4.5


def test_two_person_interactions():
  ds = validate(make_synthetic(num_subjects=10, num_actions=6, repetitions=3, num_views=1,
                               num_frames=24, num_persons=2, seed=1))
  second = (ds.x[:, 1] != 0).any(axis=(1, 2, 3))
  interaction = ds.action == 5               # round(6 * 11/60) = 1: the last action
  np.testing.assert_array_equal(second, interaction)
  # Person 1 sometimes leaves before the clip ends (the 2s-AGCN padding path).
  last_seen = np.array([np.flatnonzero((p != 0).any(axis=(1, 2))).max() + 1 if p.any() else 0
                        for p in ds.x[:, 1]])
  assert (last_seen[interaction] < ds.lengths[interaction]).any()


def test_bones_are_rigid_within_a_recording(reid_data):
  x = reid_data.x[:5, 0, :20]
  spine = np.linalg.norm(x[:, :, 1] - x[:, :, 0], axis=-1)          # [5, 20]
  assert spine.std(1).max() < 0.02           # only the 5 mm jitter moves it
  assert 0.2 < spine.mean() < 0.35


def test_bone_lengths_alone_do_not_reidentify_everyone(reid_data):
  features = _mean_bone_lengths(reid_data)
  rep = _replication(reid_data)
  gallery, probe = rep == 1, rep == 2
  dist = ((features[probe][:, None] - features[gallery][None]) ** 2).sum(-1)
  hit = reid_data.subject[gallery][dist.argmin(1)] == reid_data.subject[probe]
  chance = 1 / 20
  assert 3 * chance < hit.mean() < 0.9


def test_gender_is_predictable_from_proportions_on_unseen_subjects():
  ds = make_synthetic(num_subjects=40, num_actions=4, repetitions=1, num_views=2,
                      num_frames=24, seed=11)
  features = np.log(_mean_bone_lengths(ds))
  train = ds.subject < 20                    # test subjects are never seen in training
  acc = _logistic_regression_accuracy(features[train], ds.gender[train], features[~train],
                                      ds.gender[~train])
  assert acc > 0.68                          # chance is 0.5


def test_actions_are_separable(reid_data):
  y, lengths = pre_normalize(reid_data.x, reid_data.lengths, NTU, 'agcn', repeat_to_end=False)
  k = 12
  frames = np.rint(np.arange(k)[None] * (lengths[:, None] - 1) / (k - 1)).astype(int)
  traj = y[np.arange(len(y))[:, None], 0, frames].reshape(len(y), -1)
  train = _replication(reid_data) == 1
  centroids = np.stack([traj[train & (reid_data.action == a)].mean(0) for a in range(10)])
  dist = ((traj[~train][:, None] - centroids[None]) ** 2).sum(-1)
  assert (dist.argmin(1) == reid_data.action[~train]).mean() > 0.8   # chance is 0.1


def test_forward_kinematics_rest_pose_is_upright():
  rng = np.random.default_rng(0)
  bodies = sample_bodies(rng, np.array([False, True]))
  pos = forward_kinematics(np.zeros((2, 1, len(CHANNELS))), bodies)
  head, feet = pos[:, 0, 3, 1], pos[:, 0, [15, 19], 1].min(-1)
  np.testing.assert_allclose(feet, 0.02 * bodies.height, atol=1e-5)
  assert ((head / bodies.height > 0.85) & (head / bodies.height < 0.97)).all()
  # Right shoulder on +x, facing -z: the Kinect convention for a person facing the camera.
  assert (pos[:, 0, 8, 0] > pos[:, 0, 4, 0]).all()
  assert (pos[:, 0, 15, 2] < pos[:, 0, 14, 2]).all()


def test_bad_sizes_are_config_errors():
  with pytest.raises(ConfigError, match='num_subjects must be >= 2'):
    make_synthetic(num_subjects=1)
  with pytest.raises(ConfigError, match='num_frames must be >= 8'):
    make_synthetic(num_frames=4)
  with pytest.raises(ConfigError, match='999'):
    make_synthetic(num_actions=1000, num_subjects=2)
