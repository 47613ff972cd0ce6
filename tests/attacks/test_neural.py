"""Retrained networks (tiny): learn an identity signal, learn nothing from shuffled labels."""

import dataclasses

import flax.linen as nn
import jax.numpy as jnp
import numpy as np
import pytest

from skeleton_anon.attacks import neural
from skeleton_anon.data.layouts import get_layout
from skeleton_anon.evaluate import metrics
from skeleton_anon.models.registry import build_classifier

LAYOUT = get_layout('ntu25')
TINY = neural.NeuralSettings(
    epochs=6, batch_size=16, lr=0.05, max_frames=8,
    knobs={'stgcn': dict(base_channels=4, blocks_per_stage=(1, 1, 1), temporal_kernel=3,
                         dropout=0.0),
           'sgn': dict(width=8, joint_layers=1, temporal_kernel=3, dropout=0.0)})


def _people(n_per=8, k=4, seed=0):
  """k people, each with its own body offset per joint, moving randomly; 16 frames."""
  rng = np.random.default_rng(seed)
  body = np.random.default_rng(99).normal(size=(k, 1, 1, 25, 3)) * 0.5
  y = np.repeat(np.arange(k), n_per)
  x = body[y] + 0.05 * rng.normal(size=(len(y), 1, 16, 25, 3))
  return x.astype(np.float32), np.full(len(y), 16, np.int32), y


class _Tiny(nn.Module):
  """Mean pose -> Dense: compiles in a second, enough to test the training plumbing."""
  num_classes: int

  @nn.compact
  def __call__(self, x, train: bool = False):
    return nn.Dense(self.num_classes)(jnp.mean(x, axis=(1, 2)).reshape(x.shape[0], -1))


@pytest.fixture
def tiny_arch(monkeypatch):
  """'_attack_test_tiny' in the registry for this test only (other tests see the real list)."""
  from skeleton_anon.models import registry
  registry._ensure_loaded()
  monkeypatch.setitem(registry.CLASSIFIERS, '_attack_test_tiny',
                      lambda *, num_classes, layout, num_persons: _Tiny(num_classes))
  return '_attack_test_tiny'


def _accuracy_and_low(logits, labels):
  fn = lambda weights=None: metrics.topk_accuracy(logits, labels, 1, weights=weights)
  return fn(), metrics.bootstrap_ci(fn, len(labels))[0]


def test_retraining_learns_identity_and_not_shuffled_labels(tiny_arch):
  x, lengths, y = _people()
  xt, lt, yt = _people(n_per=4, seed=1)
  settings = dataclasses.replace(TINY, epochs=6)
  logits, info = neural.neural_scores(tiny_arch, x, lengths, y, xt, lt, 4,
                                      layout=LAYOUT, settings=settings)
  assert logits.shape == (16, 4) and info['epochs'] == 6
  assert _accuracy_and_low(logits, yt)[1] > 0.25
  # Every person carries every label equally often: the labels say nothing about x.
  fake = np.arange(len(y)) % 4
  logits, _ = neural.neural_scores(tiny_arch, x, lengths, fake, xt, lt, 4,
                                   layout=LAYOUT, settings=settings)
  assert _accuracy_and_low(logits, yt)[1] <= 0.25


@pytest.mark.slow
def test_sgn_learns_identity():
  x, lengths, y = _people()
  xt, lt, yt = _people(n_per=4, seed=1)
  logits, _ = neural.neural_scores('sgn', x, lengths, y, xt, lt, 4, layout=LAYOUT,
                                   settings=TINY)
  assert _accuracy_and_low(logits, yt)[1] > 0.25


@pytest.mark.parametrize('arch', neural.ARCHS)
def test_default_attackers_build(arch):
  from skeleton_anon.train import pretrain
  model = build_classifier(arch, num_classes=5, layout=LAYOUT, num_persons=2,
                           **neural.DEFAULT_KNOBS[arch])
  shapes = pretrain.init_bank(model, [0], np.zeros((2, 2, 8, 25, 3), np.float32), abstract=True)
  assert 'params' in shapes


def test_sgn_contract_padding_and_absent_person():
  import jax
  model = build_classifier('sgn', num_classes=3, layout=LAYOUT, num_persons=2, width=8,
                           joint_layers=1)
  x = np.random.default_rng(0).normal(size=(2, 2, 6, 25, 3)).astype(np.float32)
  x[:, 1] = 0                                                     # second person absent
  variables = jax.jit(lambda a: model.init({'params': jax.random.key(0)}, a, train=False))(x)
  apply = jax.jit(lambda a: model.apply(variables, a, train=False))
  out = apply(x)
  padded = np.concatenate([x, np.zeros_like(x)], axis=2)          # 6 padded frames more
  np.testing.assert_allclose(apply(padded), out, atol=1e-5)
  assert out.shape == (2, 3)


def test_subsample_frames():
  x = np.arange(10, dtype=np.float32).reshape(1, 1, 10, 1, 1)
  y, lengths = neural.subsample_frames(x, np.array([7]), 4)
  assert y[0, 0, :, 0, 0].tolist() == [0, 3, 6, 9] and lengths.tolist() == [3]
  assert neural.subsample_frames(x, np.array([7]), 0)[0] is x
  assert neural.estimate_seconds(100, 64, 25, TINY) > 0
