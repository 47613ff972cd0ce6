"""Leakage scores and the noise / retargeting baselines."""

import numpy as np
import pytest

from skeleton_anon.data import transforms
from skeleton_anon.data.layouts import get_layout
from skeleton_anon.evaluate import baselines, leakage


@pytest.fixture(autouse=True)
def small_chunks(monkeypatch):
  # Several chunks even on tiny arrays, so chunk boundaries are exercised.
  monkeypatch.setattr(baselines, '_CHUNK', 2)


def test_topk_and_chance():
  logits = np.array([[0.9, 0.1, 0, 0, 0, 0],
                     [0.1, 0.2, 0.3, 0.4, 0.5, 0.6],
                     [0.6, 0.5, 0.4, 0.3, 0.2, 0.1],
                     [0, 1, 0, 0, 0, 0]])
  labels = np.array([0, 0, 5, -1])       # last one unknown: ignored
  assert leakage.topk_accuracy(logits, labels, 1) == pytest.approx(1 / 3)
  # Sample 1's label 0 is its lowest logit (not in top 5); sample 2's label 5 is 6th: miss.
  assert leakage.topk_accuracy(logits, labels, 5) == pytest.approx(1 / 3)
  assert leakage.topk_accuracy(logits, labels, 6) == pytest.approx(1.0)
  top1, top5 = leakage.top1_top5(logits[:, :2], np.array([0, 1, 1, 1]))
  assert top1 == pytest.approx(0.75) and top5 is None     # 2 classes: no top-5
  assert leakage.majority_chance(np.array([1, 1, 1, 0, -1])) == pytest.approx(0.75)
  with pytest.raises(ValueError):
    leakage.topk_accuracy(logits, labels[:2], 1)


def test_agreement_matrix_and_table():
  preds = np.array([[0, 1, 2, 3], [0, 1, 2, 0], [1, 1, 1, 1]])
  agree = leakage.agreement_matrix(preds)
  np.testing.assert_allclose(np.diag(agree), 1.0)
  assert agree[0, 1] == pytest.approx(0.75) and agree[1, 0] == agree[0, 1]
  assert agree[0, 2] == pytest.approx(0.25)
  logits = {'a': np.eye(3)[[0, 1, 2]], 'b': np.eye(3)[[0, 0, 0]]}
  table = leakage.leakage_table(logits, np.array([0, 1, 2]))
  assert table['models'] == ['a', 'b']
  assert table['top1'] == pytest.approx([1.0, 1 / 3])
  assert table['agreement'][0][1] == pytest.approx(1 / 3)


def test_noise_touches_only_valid_entries(make_skeletons):
  x, lengths, _ = make_skeletons(n=5, m=2, t=10)
  noisy = baselines.add_noise(x, lengths, 0.05, seed=3)
  assert noisy.dtype == np.float32 and noisy.shape == x.shape
  mask = transforms.valid_mask(x, lengths)
  assert (noisy[~mask] == 0).all()                      # padding and absent persons stay zero
  assert (noisy[mask] != x[mask]).mean() > 0.99
  np.testing.assert_array_equal(noisy, baselines.add_noise(x, lengths, 0.05, seed=3))
  assert not np.array_equal(noisy, baselines.add_noise(x, lengths, 0.05, seed=4))
  # Per-coordinate RMSE of sigma-noise is close to sigma.
  assert baselines.recon_rmse(x, noisy, lengths) == pytest.approx(0.05, rel=0.1)
  assert baselines.recon_rmse(x, x, lengths) == 0.0


def test_recon_rmse_ignores_padding(make_skeletons):
  x, lengths, _ = make_skeletons(n=3, m=2, t=8)
  changed = x.copy()
  changed[~transforms.valid_mask(x, lengths)] = 100.0     # garbage in padding must not count
  assert baselines.recon_rmse(x, changed, lengths) == 0.0
  changed = x + np.float32(0.5) * transforms.valid_mask(x, lengths)[..., None, None]
  assert baselines.recon_rmse(x, changed, lengths) == pytest.approx(0.5)


@pytest.mark.parametrize('layout_name', ['ntu25', 'kinect_v1_20'])
def test_retarget_sets_lengths_and_keeps_directions(make_skeletons, layout_name):
  layout = get_layout(layout_name)
  x, lengths, bone_len = make_skeletons(n=4, m=2, t=9, layout_name=layout_name)
  target = np.linspace(0.1, 0.3, layout.num_joints).astype(np.float32)
  target[layout.root] = 0
  out = transforms.retarget(x, lengths, layout, target)
  mask = transforms.valid_mask(x, lengths)
  assert (out[~mask] == 0).all()
  new_bones = transforms.bone_vectors(out, layout.parents)[mask]
  old_bones = transforms.bone_vectors(x, layout.parents)[mask]
  np.testing.assert_allclose(np.linalg.norm(new_bones, axis=-1),
                             np.broadcast_to(target, new_bones.shape[:-1]), atol=1e-5)
  non_root = np.arange(layout.num_joints) != layout.root
  new_bones, old_bones = new_bones[:, non_root], old_bones[:, non_root]
  cos = (new_bones * old_bones).sum(-1) / (
      np.linalg.norm(new_bones, axis=-1) * np.linalg.norm(old_bones, axis=-1))
  np.testing.assert_allclose(cos, 1.0, atol=1e-5)
  np.testing.assert_allclose(out[..., layout.root, :][mask], x[..., layout.root, :][mask])
  # Retargeting to the sample's own lengths reproduces it.
  same = transforms.retarget(x[:1], lengths[:1], layout, bone_len[0])
  np.testing.assert_allclose(same, x[:1], atol=1e-5)


def test_median_bone_lengths(make_skeletons):
  layout = get_layout('ntu25')
  x, lengths, bone_len = make_skeletons(n=5, m=2, t=10)
  med = transforms.median_bone_lengths(x, lengths, layout)
  assert med.shape == (25,) and med[layout.root] == 0
  # Each sample's bones are constant over time, so the median lies within the per-sample range.
  assert ((med >= bone_len.min(0) - 1e-6) & (med <= bone_len.max(0) + 1e-6)).all()
  # The strided subset used on big data gives the same answer on constant-per-sample bones
  # up to which samples it drew; with everything identical it must be exact.
  same = np.repeat(x[:1], 3, axis=0)
  np.testing.assert_allclose(transforms.median_bone_lengths(same, lengths[[0, 0, 0]], layout),
                             bone_len[0], atol=1e-5)
  with pytest.MonkeyPatch.context() as patch:
    patch.setattr(transforms, '_MEDIAN_MAX_ENTRIES', 7)       # forces the strided subset
    np.testing.assert_allclose(transforms.median_bone_lengths(same, lengths[[0, 0, 0]], layout),
                               bone_len[0], atol=1e-5)
  with pytest.raises(ValueError):
    transforms.median_bone_lengths(np.zeros_like(x), lengths, layout)
