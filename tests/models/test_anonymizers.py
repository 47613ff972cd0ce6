"""Anonymizers: shapes, exact zeros on padding and absent persons, near-identity start, gradients."""

import functools

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from skeleton_anon.errors import ConfigError
from skeleton_anon.models import build_anonymizer, count_params
from skeleton_anon.models.anonymizers import IDENTITY_TOLERANCE, reconstruction_loss

PERSONS, FRAMES, JOINTS = 2, 6, 5
CASES = [('residual_mlp', {'variant': 'paper'}), ('residual_mlp', {'variant': 'reference'}),
         ('autoencoder', {})]


def _batch():
  """Sample 0: both persons, 6 frames. Sample 1: person 1 absent, 4 valid frames."""
  rng = np.random.RandomState(0)
  x = rng.uniform(-2, 2, (2, PERSONS, FRAMES, JOINTS, 3)).astype(np.float32)
  x[1, 1] = 0.0
  x[1, :, 4:] = 0.0
  return jnp.asarray(x), jnp.asarray([6, 4], jnp.int32)


@functools.lru_cache(maxsize=None)
def _run(name, knobs_items=()):
  """(module, variables, x, lengths, y): init and apply in one compiled call, cached per case."""
  module = build_anonymizer(name, num_persons=PERSONS, num_joints=JOINTS, **dict(knobs_items))
  x, lengths = _batch()

  @jax.jit
  def init_and_apply(key):
    variables = module.init(key, x, lengths)
    return variables, module.apply(variables, x, lengths)

  variables, y = init_and_apply(jax.random.key(0))
  return module, variables, x, lengths, y


@pytest.mark.parametrize('name,knobs', CASES)
def test_padding_and_absent_persons_stay_exactly_zero(name, knobs):
  *_, x, _, y = _run(name, tuple(knobs.items()))
  y = np.asarray(y)
  assert y.shape == x.shape
  assert np.all(y[1, 1] == 0.0)            # absent person
  assert np.all(y[1, :, 4:] == 0.0)        # padded frames
  assert np.abs(y[0]).min(axis=(-1, -2)).max() > 0   # valid frames are not wiped
  assert np.isfinite(y).all()


@pytest.mark.parametrize('variant', ['paper', 'reference'])
def test_residual_mlp_starts_near_identity(variant):
  _, variables, x, _, y = _run('residual_mlp', (('variant', variant),))
  deviation = float(jnp.abs(y - x).max())
  assert deviation <= IDENTITY_TOLERANCE * float(jnp.abs(x).max())
  assert deviation > 0   # small random init, not exact zeros (relu would block gradients)
  blocks = 1 if variant == 'paper' else 10
  features = PERSONS * JOINTS * 3
  assert count_params(variables['params']) == blocks * 2 * (features * features + features)


@pytest.mark.parametrize('name,knobs', CASES)
def test_gradients_reach_every_parameter(name, knobs):
  module, variables, x, lengths, _ = _run(name, tuple(knobs.items()))
  target = jnp.roll(x, 1, axis=-1)

  def loss(params):
    y = module.apply({'params': params}, x, lengths)
    return jnp.mean((y - target) ** 2)

  grads = jax.jit(jax.grad(loss))(variables['params'])
  norms = jax.tree_util.tree_leaves(jax.tree.map(lambda g: float(jnp.abs(g).sum()), grads))
  assert len(norms) >= 4 and all(np.isfinite(n) and n > 0 for n in norms), norms


def test_autoencoder_layout_and_code():
  module, variables, x, _, _ = _run('autoencoder')
  params = variables['params']
  assert set(params) == {'encoder', 'decoder'}
  features = PERSONS * JOINTS * 3
  kernels = lambda tree: [tree[k]['kernel'].shape for k in sorted(tree)]
  assert kernels(params['encoder']) == [(features, 500), (500, 100), (100, 10)]
  assert kernels(params['decoder']) == [(10, 100), (100, 500), (500, features)]

  @jax.jit
  def round_trip(variables, x):
    codes = module.apply(variables, x, method=module.encode)
    return codes, module.apply(variables, codes, x.shape, method=module.decode)

  codes, frames = round_trip(variables, x)
  assert codes.shape == (2, FRAMES, 10) and float(codes.min()) >= 0.0   # relu on the code
  assert frames.shape == x.shape


def test_reconstruction_loss_ignores_padding():
  module, variables, x, lengths, y = _run('autoencoder')
  valid = np.ones(x.shape, bool)
  valid[1, 1] = False
  valid[1, :, 4:] = False
  expected = float(np.mean((np.asarray(y) - np.asarray(x))[valid] ** 2))
  loss = jax.jit(lambda p, x, n: reconstruction_loss(module, p, x, n))
  got = float(loss(variables['params'], x, lengths))
  assert got == pytest.approx(expected, rel=1e-5)


def test_bad_knobs_are_config_errors():
  with pytest.raises(ConfigError, match='variant'):
    build_anonymizer('residual_mlp', num_persons=1, num_joints=3, variant='unet')
  with pytest.raises(ConfigError, match='unknown knobs'):
    build_anonymizer('autoencoder', num_persons=1, num_joints=3, width=5)
  with pytest.raises(ConfigError, match='unknown anonymizer'):
    build_anonymizer('unet', num_persons=1, num_joints=3)
  hash(build_anonymizer('autoencoder', num_persons=1, num_joints=3, hidden=[8, 4]))
