"""Train an anonymizer against an action and a privacy classifier with the pure steps.

  python examples/anonymizer_own_loop.py [--steps=100] [--alpha=1.0]

Eq. 2 of Moon et al. in your own loop: `bank_train_step` pretrains the two classifiers (banks of
one seed), then `min_step` updates the anonymizer on CE(action) - alpha * H(privacy) + beta * MSE
with both classifiers frozen. Only the public API is used (docs/api.md).
"""

import argparse

import jax
import jax.numpy as jnp
import optax

import skeleton_anon as sa


def bank(model, x, seed):       # a bank of one classifier: a leading seed axis on every leaf
  v = model.init({'params': jax.random.key(seed), 'dropout': jax.random.key(seed + 1)}, x[:2],
                 train=False)
  return jax.tree.map(lambda a: a[None], v)


def main(argv=None) -> dict:
  parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  parser.add_argument('--steps', type=int, default=100)
  parser.add_argument('--pretrain_steps', type=int, default=100)
  parser.add_argument('--alpha', type=float, default=1.0)
  parser.add_argument('--beta', type=float, default=10.0)
  args = parser.parse_args(argv)

  ds = sa.make_synthetic(num_subjects=6, num_actions=3, repetitions=2, num_views=2,
                         num_frames=16, seed=0)
  layout, n = ds.get_layout(), len(ds.x)
  batch = {'x': jnp.asarray(ds.x), 'lengths': jnp.asarray(ds.lengths),
           'weight': jnp.ones(n), 'action': jnp.asarray(ds.action),
           'privacy': jnp.asarray(ds.subject)}
  knobs = dict(layout=layout, num_persons=ds.num_persons, width=16)
  action_model = sa.build_classifier('sgn', num_classes=3, **knobs)
  privacy_model = sa.build_classifier('sgn', num_classes=6, **knobs)

  states = {}
  tx_cls = optax.adam(1e-3)
  for name, model, seed in (('action', action_model, 0), ('privacy', privacy_model, 10)):
    step = sa.jit_step(sa.bank_train_step, model, tx_cls)
    state = sa.init_bank_state(bank(model, batch['x'], seed), tx_cls)
    labelled = {**batch, 'label': batch[name]}
    for i in range(args.pretrain_steps):
      state, _ = step(state, labelled, jax.random.key(i))
    states[name] = state.variables

  anon_model = sa.build_anonymizer('residual_mlp', num_persons=ds.num_persons,
                                   num_joints=ds.x.shape[3], layout=layout)
  tx = optax.adam(1e-3)
  anon = sa.init_state(anon_model.init(jax.random.key(20), batch['x'][:2],
                                       batch['lengths'][:2]), tx)
  weights = sa.LOSS_FORMS['paper'](args.alpha, args.beta)
  step = sa.jit_step(sa.min_step, anon_model, action_model, privacy_model, tx, weights)
  history = []
  for i in range(args.steps):
    anon, metrics = step(anon, states['action'], states['privacy'], batch)
    history.append({k: float(v) for k, v in metrics.items()})
  for when, m in (('first step', history[0]), ('last step', history[-1])):
    print(f'{when}: ' + ', '.join(f'{k} {v:.3f}' for k, v in sorted(m.items())))
  x_anon = sa.apply_anonymizer(anon_model, anon.variables, batch['x'], batch['lengths'])
  return {'history': history, 'x_anon': x_anon, 'batch': batch}


if __name__ == '__main__':
  main()
