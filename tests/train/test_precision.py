"""precision='bfloat16' (issue 13): bfloat16 compute, float32 parameters, statistics and losses.

Tolerances. bfloat16 keeps 8 significant bits, so one rounding has relative error up to
u = 2**-8 ~ 0.0039. The inputs, the weights and every layer's output are rounded once each; through
the few layers of these networks the errors partly cancel: the logits measured here differ by
about 1u of their largest magnitude. The test allows 5u (2%) of the largest |logit| for logits and
5u relative for the losses, and a cosine of at least 0.98 between the float32 and bfloat16
gradients (measured 0.996; the bfloat16 one also carries the reconstruction term's gradient of
x's own rounding, which float32 does not see): loose enough for XLA's choice of accumulation
order, tight enough that a layer left in the wrong dtype, or a loss computed in bfloat16 (whose
sums over a batch lose ~u per term), fails.
"""

import functools

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
import pytest

from skeleton_anon.data.layouts import get_layout
from skeleton_anon.errors import ConfigError
from skeleton_anon.models import build_anonymizer, build_classifier
from skeleton_anon.train import pretrain, state as state_lib, steps

U = 2.0 ** -8
LOGIT_RTOL = 5 * U
MIN_GRAD_COSINE = 0.98
TINY_STGCN = dict(base_channels=8, blocks_per_stage=(1, 1, 1), temporal_kernel=5, dropout=0.0)
TINY_MSG3D = dict(base_channels=6, num_gcn_scales=2, num_g3d_scales=2, tcn_dilations=(1,),
                  windows=(3,), num_stages=1)


@pytest.fixture(scope='module')
def setup():
  layout = get_layout('ntu25')
  rng = np.random.default_rng(0)
  n, t = 8, 24
  x = rng.normal(0, 0.3, (n, 2, t, 25, 3)).astype(np.float32)
  x[::2, 1] = 0
  batch = {'x': jnp.asarray(x), 'lengths': jnp.full((n,), t, jnp.int32),
           'weight': jnp.ones(n, jnp.float32),
           'action': jnp.asarray(rng.integers(0, 5, n), jnp.int32),
           'privacy': jnp.asarray(rng.integers(0, 3, n), jnp.int32)}
  batch['label'] = batch['action']
  action = build_classifier('stgcn', num_classes=5, layout=layout, num_persons=2, **TINY_STGCN)
  privacy = build_classifier('msg3d', num_classes=3, layout=layout, num_persons=2, **TINY_MSG3D)
  anon = build_anonymizer('residual_mlp', num_persons=2, num_joints=25, layout=layout)
  return dict(batch=batch, action=action, privacy=privacy, anon=anon,
              action_vars=pretrain.init_bank(action, [0, 1], x),
              privacy_vars=pretrain.init_bank(privacy, [5], x),
              anon_vars=anon.init(jax.random.key(0), batch['x'], batch['lengths']))


def _flat(tree):
  return jnp.concatenate([jnp.ravel(a) for a in jax.tree.leaves(tree)])


def _assert_float32(tree):
  dtypes = {str(a.dtype) for a in jax.tree.leaves(tree) if jnp.issubdtype(a.dtype, jnp.floating)}
  assert dtypes == {'float32'}, dtypes


def test_bfloat16_forward_loss_and_gradient_agree_with_float32(setup):
  s = setup
  weights = steps.LOSS_FORMS['paper'](0.5, 1.0)
  out = {}
  for precision in steps.PRECISIONS:
    loss = functools.partial(steps.anonymizer_loss, s['anon'], s['action'], s['privacy'], weights,
                             precision=precision)
    value_and_grad = jax.jit(jax.value_and_grad(
        lambda p, loss=loss: loss({'params': p}, s['action_vars'], s['privacy_vars'],
                                  s['batch']), has_aux=True))
    (_, metrics), grads = value_and_grad(s['anon_vars']['params'])
    logits = jax.jit(functools.partial(steps.bank_logits, s['privacy'], precision=precision))(
        s['privacy_vars'], s['batch']['x'])
    out[precision] = metrics, grads, logits
  (m32, g32, l32), (m16, g16, l16) = out['float32'], out['bfloat16']
  # What the losses and the caller see is float32, whatever the compute dtype.
  _assert_float32((m16, g16, l16))
  scale = float(jnp.max(jnp.abs(l32)))
  assert scale > 0
  np.testing.assert_allclose(np.asarray(l16), np.asarray(l32), atol=LOGIT_RTOL * scale)
  for k in ('loss', 'action_ce', 'privacy_entropy'):
    np.testing.assert_allclose(float(m16[k]), float(m32[k]), rtol=LOGIT_RTOL, err_msg=k)
  # The reconstruction error of a near-identity anonymizer: in bfloat16 it gains x's rounding,
  # |round(x) - x| <= u |x| per element, so the difference is at most u^2 mean(x^2) (measured
  # about a quarter of that).
  bound = float(jnp.mean(jnp.square(s['batch']['x']))) * U ** 2
  assert abs(float(m16['recon_mse']) - float(m32['recon_mse'])) <= bound
  a, b = _flat(g32), _flat(g16)
  assert bool(jnp.all(jnp.isfinite(b)))
  assert float(a @ b / (jnp.linalg.norm(a) * jnp.linalg.norm(b))) >= MIN_GRAD_COSINE


def test_bfloat16_steps_keep_float32_state_and_finite_updates(setup):
  s = setup
  tx = state_lib.sgd(0.05, 1, weight_decay=1e-4)
  bank = state_lib.init_bank_state(s['action_vars'], tx)
  step = jax.jit(functools.partial(steps.bank_train_step, s['action'], tx, precision='bfloat16'))
  new_bank, metrics = step(bank, s['batch'], jax.random.key(1))
  _assert_float32((new_bank.params, new_bank.batch_stats, new_bank.opt_state, metrics))
  assert bool(jnp.all(jnp.isfinite(_flat(new_bank.params))))
  assert not np.array_equal(np.asarray(_flat(new_bank.params)), np.asarray(_flat(bank.params)))
  ref_bank, ref_metrics = jax.jit(functools.partial(steps.bank_train_step, s['action'], tx))(
      bank, s['batch'], jax.random.key(1))
  np.testing.assert_allclose(np.asarray(metrics['loss']), np.asarray(ref_metrics['loss']),
                             rtol=LOGIT_RTOL)

  anon_tx = state_lib.sgd(0.01, 1)
  anon_state = state_lib.init_state(s['anon_vars'], anon_tx)
  # The ST-GCN bank stands in for the privacy bank too (3 privacy labels < its 5 classes): the
  # MS-G3D path was checked above, and a second compile of it would only cost time.
  min_fn = jax.jit(functools.partial(steps.min_step, s['anon'], s['action'], s['action'],
                                     anon_tx, steps.LOSS_FORMS['paper'](0.5, 1.0),
                                     precision='bfloat16'))
  new_anon, anon_metrics = min_fn(anon_state, s['action_vars'], s['action_vars'], s['batch'])
  _assert_float32((new_anon.params, new_anon.opt_state, anon_metrics))
  assert all(bool(jnp.isfinite(v).all()) for v in jax.tree.leaves(anon_metrics))
  assert bool(jnp.all(jnp.isfinite(_flat(new_anon.params))))


def test_unknown_precision_is_a_config_error():
  with pytest.raises(ConfigError, match="precision 'float16' is not one of"):
    pretrain.section_precision(ml_collections.ConfigDict(dict(precision='float16')))
  assert pretrain.section_precision(ml_collections.ConfigDict()) == 'float32'
