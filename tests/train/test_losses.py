import jax.numpy as jnp
import numpy as np

from skeleton_anon.train import losses


def test_padding_rows_do_not_change_losses():
  rng = np.random.default_rng(0)
  logits = jnp.asarray(rng.normal(size=(5, 4)), jnp.float32)
  labels = jnp.asarray([0, 1, 2, 3, 0])
  w_real = jnp.ones(3)
  w_pad = jnp.asarray([1., 1., 1., 0., 0.])
  np.testing.assert_allclose(losses.cross_entropy(logits[:3], labels[:3], w_real),
                             losses.cross_entropy(logits, labels, w_pad), rtol=1e-6)
  np.testing.assert_allclose(losses.entropy(logits[:3], w_real), losses.entropy(logits, w_pad),
                             rtol=1e-6)
  np.testing.assert_allclose(losses.accuracy(logits[:3], labels[:3], w_real),
                             losses.accuracy(logits, labels, w_pad))


def test_entropy_of_uniform_prediction_is_log_k():
  assert np.isclose(losses.entropy(jnp.zeros((2, 4)), jnp.ones(2)), np.log(4), atol=1e-6)


def test_reconstruction_ignores_padded_frames_and_absent_persons():
  x = np.zeros((1, 2, 4, 3, 3), np.float32)
  x[0, 0, :2] = 1.0                      # person 0 valid for 2 frames, person 1 absent
  x_anon = x.copy()
  x_anon[0, 0, :2] += 0.5                # error 0.25 per coordinate where it counts
  x_anon[0, 0, 2:] = 7.0                 # garbage in padded frames: ignored
  x_anon[0, 1] = 3.0                     # garbage for the absent person: ignored
  mse = losses.reconstruction_mse(jnp.asarray(x_anon), jnp.asarray(x), jnp.asarray([2]),
                                  jnp.ones(1))
  assert np.isclose(mse, 0.25, atol=1e-6)


def test_topk_clips_k_to_class_count():
  logits = jnp.asarray([[0.1, 0.9], [0.8, 0.2]])
  np.testing.assert_array_equal(losses.topk_correct(logits, jnp.asarray([0, 1]), 1), [0., 0.])
  np.testing.assert_array_equal(losses.topk_correct(logits, jnp.asarray([0, 1]), 5), [1., 1.])
