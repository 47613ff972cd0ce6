"""Pure, jit-able training and evaluation steps.

Every step is a plain function of (models, optimizer, state, batch, ...) with no framework object, so
other JAX code can reuse it. Models and optimisers are static: bind them with `functools.partial`
and wrap with `jax.jit(..., donate_argnums=...)` (see `jit_step`). A batch is a dict of global arrays
sharded on the batch axis: 'x' [N, M, T, V, C], 'lengths' [N], 'weight' [N] (0 marks padding) and
integer labels ('label', or 'action' and 'privacy' for the anonymizer steps).

Classifier banks: S classifiers of one architecture are stored with a leading axis S on every leaf of
their variables (and NetState) and evaluated or trained together in one jitted step; the ensemble
step of Eq. 3 is one call over a bank of N action and a bank of M privacy classifiers, and Eq. 2 is
the case N = M = 1. `bank_form` says how the members run inside that step (see BANK_FORMS).

Precision (PRECISIONS): 'float32' (the default) computes everything in float32. 'bfloat16' is
mixed precision: parameters, optimizer state and BatchNorm statistics stay float32; the networks'
inputs and a bfloat16 copy of their parameters make every matmul and convolution run in bfloat16,
and the networks' outputs are cast back to float32 before any loss or metric (train/losses.py
always sees float32). The gradient of the cast is the identity, so the parameter gradients and
updates are float32. The models need no dtype knob for this: a Linen module computes in the dtype
of its inputs and parameters.
"""

from __future__ import annotations

import functools
from typing import Callable

import flax.linen as nn
import jax
import jax.numpy as jnp
import optax

from skeleton_anon.train import losses
from skeleton_anon.train.adversaries import FeatureAttack, feature_attack_loss
from skeleton_anon.train.state import NetState

# Weights (action CE, privacy entropy, reconstruction) as functions of (alpha, beta).
# 'paper' is Eq. 2/3: CE - alpha*H + beta*MSE. 'recon_first' is the other reference code's weighting,
# MSE - alpha*H + beta*CE, kept so its published hyperparameters can be reproduced.
LOSS_FORMS = {
    'paper': lambda alpha, beta: (1.0, alpha, beta),
    'recon_first': lambda alpha, beta: (beta, alpha, 1.0),
}


# How a bank's S members run inside a step. 'vmap': all at once, as one batched program (every
# matmul gets S weight matrices; fills hardware that one small classifier leaves idle). 'map': one
# after another with jax.lax.map (the same compiled body S times, and only one member's
# activations alive at a time). Both give the same numbers up to float rounding. Measured on a
# 2-core CPU (BENCHMARKS.md): for full-size MS-G3D banks 'map' is faster and needs less memory,
# for tiny classifiers (the demo's) 'vmap' is faster.
BANK_FORMS = ('vmap', 'map')
# 'auto' maps banks whose members have at least this many parameters on CPU.
AUTO_MAP_MIN_PARAMS = 500_000


def over_members(fn: Callable, member_args, form: str = 'vmap'):
  """fn(member) for every member of `member_args` (a pytree with leading axis S), stacked."""
  if form == 'vmap':
    return jax.vmap(fn)(member_args)
  if form == 'map':
    return jax.lax.map(fn, member_args)
  raise ValueError(f'unknown bank form {form!r}; use one of {BANK_FORMS}')


def resolve_bank_form(form: str, *banks_variables: dict) -> str:
  """The form to use for these banks (variables with a leading seed axis).

  'auto' gives 'map' on CPU when the largest member has AUTO_MAP_MIN_PARAMS parameters or more,
  else 'vmap' (accelerators always: not measured there, and vmap is what fills them). Other
  values are checked and returned.
  """
  if form == 'auto':
    if jax.default_backend() != 'cpu':
      return 'vmap'
    member_params = max((sum(leaf.size // leaf.shape[0] for leaf in jax.tree.leaves(v['params']))
                         for v in banks_variables), default=0)
    return 'map' if member_params >= AUTO_MAP_MIN_PARAMS else 'vmap'
  if form not in BANK_FORMS:
    raise ValueError(f'unknown bank form {form!r}; use auto or one of {BANK_FORMS}')
  return form


# 'float32': everything in float32. 'bfloat16': bfloat16 compute, float32 parameters and losses.
PRECISIONS = ('float32', 'bfloat16')


def compute_dtype(precision: str = 'float32'):
  """The dtype the networks compute in for `precision`, or None for float32 (no cast at all)."""
  if precision not in PRECISIONS:
    raise ValueError(f'unknown precision {precision!r}; use one of {PRECISIONS}')
  return None if precision == 'float32' else jnp.bfloat16


def cast_floats(tree, dtype):
  """`tree` with its floating-point leaves cast to `dtype` (None: unchanged)."""
  if dtype is None:
    return tree
  return jax.tree.map(
      lambda a: a.astype(dtype) if jnp.issubdtype(jnp.result_type(a), jnp.floating) else a, tree)


def _f32(tree):
  """A network's output, back to float32 for the losses and metrics."""
  return cast_floats(tree, jnp.float32)


def _compute_variables(variables: dict, dtype) -> dict:
  """The variables a network computes with: a `dtype` copy of 'params', the rest (BatchNorm
  statistics) as stored, in float32."""
  if dtype is None:
    return variables
  return {k: cast_floats(v, dtype) if k == 'params' else v for k, v in variables.items()}


def jit_step(fn: Callable, *static, donate_argnums=(0,)):
  """jax.jit of `fn` with its leading static arguments (models, optimisers, constants) bound."""
  return jax.jit(functools.partial(fn, *static), donate_argnums=donate_argnums)


# ---------------------------------------------------------------- classifiers


def classifier_logits(model: nn.Module, variables: dict, x: jnp.ndarray,
                      precision: str = 'float32') -> jnp.ndarray:
  """Eval-mode logits [N, K] of one classifier (BatchNorm uses running statistics); float32."""
  dtype = compute_dtype(precision)
  if dtype is None:
    return model.apply(variables, x, train=False)
  return _f32(model.apply(_compute_variables(variables, dtype), cast_floats(x, dtype),
                          train=False))


def bank_logits(model: nn.Module, variables: dict, x: jnp.ndarray,
                bank_form: str = 'vmap', precision: str = 'float32') -> jnp.ndarray:
  """Eval-mode logits [S, N, K] of a bank whose variables carry a leading seed axis S."""
  return over_members(lambda v: classifier_logits(model, v, x, precision), variables, bank_form)


def _train_one(model: nn.Module, tx: optax.GradientTransformation, state: NetState,
               x: jnp.ndarray, labels: jnp.ndarray, weight: jnp.ndarray, rng: jax.Array,
               precision: str = 'float32'):
  """One SGD step of one classifier on cross-entropy; updates params and BatchNorm statistics."""
  dtype = compute_dtype(precision)

  def loss_fn(params):
    logits, updates = model.apply({'params': cast_floats(params, dtype),
                                   'batch_stats': state.batch_stats}, cast_floats(x, dtype),
                                  train=True, rngs={'dropout': rng}, mutable=['batch_stats'])
    if dtype is not None:   # losses in float32; the statistics stay float32 as stored
      logits, updates = _f32(logits), _f32(updates)
    return losses.cross_entropy(logits, labels, weight), (logits, updates)

  (loss, (logits, updates)), grads = jax.value_and_grad(loss_fn, has_aux=True)(state.params)
  deltas, opt_state = tx.update(grads, state.opt_state, state.params)
  new_state = state.replace(params=optax.apply_updates(state.params, deltas),
                            batch_stats=updates.get('batch_stats', state.batch_stats),
                            opt_state=opt_state, step=state.step + 1)
  return new_state, {'loss': loss, 'accuracy': losses.accuracy(logits, labels, weight)}


def bank_train_step(model: nn.Module, tx: optax.GradientTransformation, state: NetState,
                    batch: dict, rng: jax.Array, *, bank_form: str = 'vmap',
                    member_ids: tuple[int, ...] | None = None, precision: str = 'float32'):
  """One step for every classifier of a bank (leading seed axis S) on batch['label'].

  Each member gets its own dropout key; all see the same batch. With `member_ids` (the members'
  init seeds) member i's key is fold_in(rng, member_ids[i]): its dropout stream is the same
  whichever bank, and however many other members, it trains in. Without them (an adversary
  population numbered by position) the step's key is split S ways. Returns (state, metrics) with
  metrics 'loss' and 'accuracy' of shape [S]. `precision`: see PRECISIONS.
  """
  num_seeds = jax.tree.leaves(state.params)[0].shape[0]
  if member_ids is None:
    rngs = jax.random.split(rng, num_seeds)
  else:
    if len(member_ids) != num_seeds:
      raise ValueError(f'{len(member_ids)} member ids for a bank of {num_seeds}')
    rngs = jax.vmap(lambda i: jax.random.fold_in(rng, i))(jnp.asarray(member_ids, jnp.uint32))

  def train(member):
    member_state, member_rng = member
    return _train_one(model, tx, member_state, batch['x'], batch['label'], batch['weight'],
                      member_rng, precision)

  return over_members(train, (state, rngs), bank_form)


# ---------------------------------------------------------------- anonymizer


def _anon_variables(state: NetState, params=None) -> dict:
  variables = {'params': state.params if params is None else params}
  if state.batch_stats:
    variables['batch_stats'] = state.batch_stats
  return variables


def apply_anonymizer(anon_model: nn.Module, anon_variables: dict, x: jnp.ndarray,
                     lengths: jnp.ndarray, rng: jax.Array | None = None,
                     precision: str = 'float32') -> jnp.ndarray:
  """f(x); `rng` feeds the 'noise' stream of a stochastic anonymizer (others ignore it).

  With precision 'bfloat16' f(x) is computed, and returned, in bfloat16.
  """
  dtype = compute_dtype(precision)
  anon_variables, x = _compute_variables(anon_variables, dtype), cast_floats(x, dtype)
  if rng is None:
    return anon_model.apply(anon_variables, x, lengths)
  return anon_model.apply(anon_variables, x, lengths, rngs={'noise': rng})


def anonymizer_loss(anon_model: nn.Module, action_model: nn.Module, privacy_model: nn.Module,
                    weights: tuple, anon_variables: dict, action_variables: dict,
                    privacy_variables: dict, batch: dict, bank_form: str = 'vmap',
                    rng: jax.Array | None = None, feature_attack: FeatureAttack | None = None,
                    precision: str = 'float32'):
  """Eq. 3 (Eq. 2 when both banks hold one classifier) and its parts.

  loss = w_ce * sum_i CE(y, h_i(f(x))) - w_H * sum_j H(g_j(f(x))) + w_rec * MSE(x, f(x)), the sums
  running over the N action and M privacy classifiers of the two banks, plus
  feature_attack.weight times the cross-fitted statistics attacker's loss (train/adversaries.py)
  when `feature_attack` is given and its weight is positive. `rng` (optional) draws a stochastic
  anonymizer's codes and the attacker's random halves. `action_model` None (a privacy-only run
  on single-action data) drops the action term and its metrics.

  Both banks run in eval mode (BatchNorm on running statistics) and behind stop_gradient, so the
  min step changes only the anonymizer. For the privacy classifier this is a choice: the min step
  then optimises against exactly the function that the evaluator and the next max step's starting
  point compute, and anonymized batches never leak into the adversary's running statistics, which
  only its own max step may update (one of the reference code's quirks was a classifier whose
  statistics kept moving outside its training step).

  `precision` 'bfloat16' runs the anonymizer and both banks in bfloat16 (see PRECISIONS); every
  term of the loss is computed from float32 casts of their outputs.
  """
  x, lengths, w = batch['x'], batch['lengths'], batch['weight']
  w_ce, w_ent, w_rec = weights
  noise_rng = attack_rng = None
  if rng is not None:
    noise_rng, attack_rng = jax.random.split(rng)
  x_low = apply_anonymizer(anon_model, anon_variables, x, lengths, noise_rng, precision)
  x_anon = _f32(x_low)       # for the losses; the classifiers read x_low (no extra rounding)
  privacy_logits = bank_logits(privacy_model, jax.lax.stop_gradient(privacy_variables), x_low,
                               bank_form, precision)
  ent = jnp.sum(jax.vmap(lambda l: losses.entropy(l, w))(privacy_logits))
  rec = losses.reconstruction_mse(x_anon, x, lengths, w, batch.get('score'))
  metrics = {
      'privacy_entropy': ent, 'recon_mse': rec,
      'privacy_accuracy': jnp.mean(jax.vmap(
          lambda l: losses.accuracy(l, batch['privacy'], w))(privacy_logits)),
  }
  loss = -w_ent * ent + w_rec * rec
  if action_model is not None:   # None: a privacy-only run (single-action data), no CE term
    action_logits = bank_logits(action_model, jax.lax.stop_gradient(action_variables), x_low,
                                bank_form, precision)
    ce = jnp.sum(jax.vmap(lambda l: losses.cross_entropy(l, batch['action'], w))(action_logits))
    loss = loss + w_ce * ce
    metrics['action_ce'] = ce
    metrics['action_accuracy'] = jnp.mean(jax.vmap(
        lambda l: losses.accuracy(l, batch['action'], w))(action_logits))
  if feature_attack is not None and feature_attack.weight > 0:
    if attack_rng is None:
      attack_rng = jax.random.key(0)
    attack, attack_metrics = feature_attack_loss(feature_attack, x_anon, lengths,
                                                 batch['privacy'], w, attack_rng)
    loss = loss + feature_attack.weight * attack
    metrics.update(attack_metrics)
  return loss, {'loss': loss, **metrics}


def min_step(anon_model: nn.Module, action_model: nn.Module, privacy_model: nn.Module,
             tx: optax.GradientTransformation, weights: tuple, anon_state: NetState,
             action_variables: dict, privacy_variables: dict, batch: dict,
             rng: jax.Array | None = None, *, bank_form: str = 'vmap',
             feature_attack: FeatureAttack | None = None, precision: str = 'float32'):
  """One anonymizer update on Eq. 3 (ensemble) or Eq. 2 (adversarial), see anonymizer_loss.

  `weights` = LOSS_FORMS[form](alpha, beta). Returns (anon_state, metrics).
  """
  def loss_fn(params):
    return anonymizer_loss(anon_model, action_model, privacy_model, weights,
                           _anon_variables(anon_state, params), action_variables,
                           privacy_variables, batch, bank_form, rng, feature_attack, precision)

  (_, metrics), grads = jax.value_and_grad(loss_fn, has_aux=True)(anon_state.params)
  deltas, opt_state = tx.update(grads, anon_state.opt_state, anon_state.params)
  anon_state = anon_state.replace(params=optax.apply_updates(anon_state.params, deltas),
                                  opt_state=opt_state, step=anon_state.step + 1)
  return anon_state, metrics


def max_step(anon_model: nn.Module, privacy_model: nn.Module, tx: optax.GradientTransformation,
             privacy_state: NetState, anon_variables: dict, batch: dict, rng: jax.Array, *,
             bank_form: str = 'vmap', precision: str = 'float32'):
  """The adversary's update: privacy classifiers trained with CE on f(x), the anonymizer frozen.

  Updates the adversaries' params and BatchNorm statistics (train mode). A stochastic
  anonymizer draws its codes from `rng` too. Returns (state, metrics).
  """
  x_anon = jax.lax.stop_gradient(apply_anonymizer(anon_model, anon_variables, batch['x'],
                                                  batch['lengths'], jax.random.fold_in(rng, 1),
                                                  precision))
  adv_batch = {'x': x_anon, 'label': batch['privacy'], 'weight': batch['weight']}
  return bank_train_step(privacy_model, tx, privacy_state, adv_batch, rng, bank_form=bank_form,
                         precision=precision)


def reconstruction_step(anon_model: nn.Module, tx: optax.GradientTransformation,
                        state: NetState, batch: dict, *, precision: str = 'float32'):
  """Auto-encoder pretraining: one update on the masked reconstruction MSE."""
  def loss_fn(params):
    x_anon = _f32(apply_anonymizer(anon_model, _anon_variables(state, params), batch['x'],
                                   batch['lengths'], precision=precision))
    return losses.reconstruction_mse(x_anon, batch['x'], batch['lengths'], batch['weight'],
                                     batch.get('score'))

  loss, grads = jax.value_and_grad(loss_fn)(state.params)
  deltas, opt_state = tx.update(grads, state.opt_state, state.params)
  state = state.replace(params=optax.apply_updates(state.params, deltas), opt_state=opt_state,
                        step=state.step + 1)
  return state, {'loss': loss}


def anonymize_batch(anon_model: nn.Module, anon_variables: dict, x: jnp.ndarray,
                    lengths: jnp.ndarray) -> jnp.ndarray:
  """f(x) for a batch (a stochastic anonymizer's codes come from its seed and the data)."""
  return apply_anonymizer(anon_model, anon_variables, x, lengths)
