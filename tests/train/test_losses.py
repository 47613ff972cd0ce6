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


def test_reconstruction_weights_joints_by_keypoint_score():
  """2D keypoints: a joint the estimator did not see (score 0) may move freely; the others count
  by their confidence, and the mean is over the confidence mass."""
  x = np.ones((1, 1, 2, 3, 2), np.float32)
  x_anon = x.copy()
  x_anon[0, 0, :, 0] += 10.0                       # joint 0 moved by 10 in x and y
  x_anon[0, 0, :, 1, 0] += 1.0                     # joint 1 moved by 1 in x
  score = np.zeros((1, 1, 2, 3), np.float32)
  score[..., 1] = 0.5
  score[..., 2] = 1.0
  args = (jnp.asarray([2]), jnp.ones(1))
  scored = losses.reconstruction_mse(jnp.asarray(x_anon), jnp.asarray(x), *args,
                                     jnp.asarray(score))
  # per frame: joint 1 contributes 0.5 * 1, over mass (0.5 + 1.0) * 2 coordinates
  np.testing.assert_allclose(float(scored), 0.5 / 3.0, rtol=1e-6)
  plain = losses.reconstruction_mse(jnp.asarray(x_anon), jnp.asarray(x), *args)
  np.testing.assert_allclose(float(plain), (200.0 + 1.0) / 6.0, rtol=1e-6)
