"""Small random skeleton batches and tiny banks shared by the engine tests."""

import jax
import numpy as np

from skeleton_anon.train import pretrain
from tiny_models import TinyAnonymizer, TinyClassifier

NUM_FRAMES = 6


def random_arrays(n=16, seed=0, num_actions=3, num_privacy=2):
  """x [n, 2, T, 5, 3] with the second person absent in half the samples and padded frames zero."""
  rng = np.random.default_rng(seed)
  x = rng.normal(size=(n, 2, NUM_FRAMES, 5, 3)).astype(np.float32)
  x[::2, 1] = 0
  lengths = rng.integers(3, NUM_FRAMES + 1, size=n).astype(np.int32)
  x *= (np.arange(NUM_FRAMES)[None, :] < lengths[:, None])[:, None, :, None, None]
  action = rng.integers(0, num_actions, n).astype(np.int32)
  privacy = rng.integers(0, num_privacy, n).astype(np.int32)
  return {'x': x, 'lengths': lengths, 'action': action, 'privacy': privacy}


def tiny_bank(num_classes, seeds, x, task='action'):
  model = TinyClassifier(num_classes)
  return pretrain.Bank('tiny', task, 'trained_against', model,
                       pretrain.init_bank(model, seeds, x), tuple(seeds), num_classes)


def tiny_anonymizer(x, lengths):
  model = TinyAnonymizer()
  return model, model.init(jax.random.key(0), x[:2], lengths[:2])
