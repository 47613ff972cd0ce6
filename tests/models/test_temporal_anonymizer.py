"""Temporal anonymizer: identity at init, sees other frames, constant bones, seeded noise."""

import functools

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

from skeleton_anon.data import transforms
from skeleton_anon.data.layouts import custom_layout
from skeleton_anon.errors import ConfigError
from skeleton_anon.models import build_anonymizer

# A 5-joint tree: root 0 -> 1 -> (2, 3), root 0 -> 4.
LAYOUT = custom_layout(np.asarray([[1, 0], [2, 1], [3, 1], [4, 0]]), 5)
PERSONS, FRAMES, JOINTS = 2, 24, 5
SMALL = dict(width=16, dilations=(1, 2), kernel_size=3)
RECEPTIVE = 1 + 2 * (1 + 2)     # frames that reach one output frame


def _batch(n=4):
  """Retargeted random skeletons; sample 1 has person 1 absent and 16 valid frames."""
  rng = np.random.RandomState(0)
  x = rng.normal(size=(n, PERSONS, FRAMES, JOINTS, 3)).astype(np.float32)
  x[1, 1] = 0.0
  lengths = np.full(n, FRAMES, np.int32)
  lengths[1] = 16
  x *= (np.arange(FRAMES)[None, :] < lengths[:, None])[:, None, :, None, None]
  x = transforms.retarget(x, lengths, LAYOUT, transforms.median_bone_lengths(x, lengths, LAYOUT))
  return jnp.asarray(x), jnp.asarray(lengths)


def _model(**knobs):
  return build_anonymizer('temporal', num_persons=PERSONS, num_joints=JOINTS, layout=LAYOUT,
                          **{**SMALL, **knobs})


@functools.lru_cache(maxsize=None)
def _perturbed(knobs_items=()):
  """(module, variables moved off the identity, apply fn): a stand-in for a trained network."""
  module = _model(**dict(knobs_items))
  x, lengths = _batch()
  variables = jax.jit(module.init)(jax.random.key(0), x, lengths)
  leaves, tree = jax.tree.flatten(variables)
  keys = jax.random.split(jax.random.key(1), len(leaves))
  leaves = [a + 0.3 * jax.random.normal(k, a.shape) for a, k in zip(leaves, keys)]
  return module, jax.tree.unflatten(tree, leaves), jax.jit(module.apply)


@pytest.mark.parametrize('output', ['bones', 'joints'])
def test_identity_at_init_and_exact_zeros(output):
  module = _model(output=output)
  x, lengths = _batch()
  y = jax.jit(lambda x, n: module.apply(module.init(jax.random.key(0), x, n), x, n))(x, lengths)
  np.testing.assert_allclose(y, x, atol=1e-5)
  _, variables, apply = _perturbed((('output', output),))
  y = np.asarray(apply(variables, x, lengths))
  assert np.all(y[1, 1] == 0.0) and np.all(y[1, :, 16:] == 0.0)
  assert np.abs(y - np.asarray(x)).mean() > 1e-2


def test_bones_output_keeps_every_bone_length_constant_over_time():
  _, variables, apply = _perturbed()
  x, lengths = _batch()
  y = np.asarray(apply(variables, x, lengths))
  assert np.abs(y - np.asarray(x)).mean() > 0.1          # it moved the skeleton a lot ...
  bones = transforms.bone_lengths(y[0], LAYOUT.parents)  # [M, T, V]
  np.testing.assert_allclose(bones.std(axis=1), 0.0, atol=1e-5)   # ... at fixed bone lengths
  np.testing.assert_allclose(bones[:, 0], transforms.bone_lengths(np.asarray(x[0, :, 0]),
                                                                  LAYOUT.parents), rtol=1e-4)


def test_output_at_t_depends_on_other_frames_within_the_receptive_field_only():
  _, variables, apply = _perturbed()
  x, lengths = _batch()
  t, near, far = 10, 12, 10 + RECEPTIVE
  moved = x.at[0, :, near].add(0.5)
  changed = np.abs(np.asarray(apply(variables, moved, lengths) - apply(variables, x, lengths)))
  assert changed[0, :, t].max() > 1e-3                   # frame 12 changes frame 10
  moved = x.at[0, :, far].add(0.5)
  changed = np.abs(np.asarray(apply(variables, moved, lengths) - apply(variables, x, lengths)))
  assert changed[0, :, t].max() == 0.0                   # beyond the receptive field it does not


def test_valid_frames_do_not_depend_on_padding_length():
  module, variables, apply = _perturbed()
  x, lengths = _batch()
  longer = jnp.pad(x, ((0, 0), (0, 0), (0, 8), (0, 0), (0, 0)))
  y, y_long = apply(variables, x, lengths), apply(variables, longer, lengths)
  np.testing.assert_allclose(y_long[:, :, :FRAMES], y, atol=1e-5)


def test_stochastic_codes_are_seeded_per_sample_and_drawn_from_the_rng_in_training():
  _, variables, apply = _perturbed((('noise_dim', 4),))
  x, lengths = _batch()
  first, again = apply(variables, x, lengths), apply(variables, x, lengths)
  np.testing.assert_array_equal(first, again)            # reproducible at inference
  other_seed = _model(noise_dim=4, noise_seed=1)
  assert not np.allclose(jax.jit(other_seed.apply)(variables, x, lengths), first, atol=1e-4)
  # The same skeleton twice in a batch gets the same code; another sample another code.
  twin = x.at[2].set(x[0])
  out = np.asarray(apply(variables, twin, lengths))
  np.testing.assert_allclose(out[2], out[0], atol=1e-6)
  drawn = jax.jit(lambda v, x, n, k: _model(noise_dim=4).apply(v, x, n, rngs={'noise': k}))
  a, b = drawn(variables, x, lengths, jax.random.key(3)), drawn(variables, x, lengths,
                                                               jax.random.key(4))
  assert not np.allclose(a, b, atol=1e-4)


def test_training_changes_motion_sample_by_sample():
  """A target only a network that sees other frames can reach: the skeleton two frames later."""
  module = _model(width=32)
  x, lengths = _batch(8)
  target = jnp.roll(x, -2, axis=2)
  # Compare valid frames whose target is valid too (sample 1 ends at frame 16).
  mask = jnp.asarray(np.arange(FRAMES)[None, :] < np.asarray(lengths)[:, None] - 2)
  mask = mask[:, None, :, None, None]
  loss = lambda y: jnp.sum(mask * (y - target) ** 2) / jnp.sum(mask)
  tx = optax.adam(3e-3)

  @jax.jit
  def train(variables):
    def step(carry, _):
      params, opt = carry
      g = jax.grad(lambda p: loss(module.apply({'params': p}, x, lengths)))(params)
      updates, opt = tx.update(g, opt, params)
      return (optax.apply_updates(params, updates), opt), None
    params = variables['params']
    (params, _), _ = jax.lax.scan(step, (params, tx.init(params)), None, length=150)
    return module.apply({'params': params}, x, lengths)

  y = train(module.init(jax.random.key(0), x, lengths))
  assert float(loss(y)) < 0.5 * float(loss(x))
  change = np.asarray(y - x)[:, 0]
  assert change.std(axis=0).mean() > 0.05                # not one offset for every sample


def test_bad_knobs_are_config_errors():
  with pytest.raises(ConfigError, match='needs the skeleton layout'):
    build_anonymizer('temporal', num_persons=1, num_joints=5)
  with pytest.raises(ConfigError, match='output'):
    build_anonymizer('temporal', num_persons=1, num_joints=5, layout=LAYOUT, output='angles')
  with pytest.raises(ConfigError, match='unknown knobs'):
    build_anonymizer('temporal', num_persons=1, num_joints=5, layout=LAYOUT, depth=3)
  with pytest.raises(ConfigError, match='joints'):
    build_anonymizer('temporal', num_persons=1, num_joints=7, layout=LAYOUT)
  hash(build_anonymizer('temporal', num_persons=1, num_joints=5, output='joints',
                        dilations=[1, 2]))
