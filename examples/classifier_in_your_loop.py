"""Drop one of the project's classifiers into your own Flax/Optax training loop.

  python examples/classifier_in_your_loop.py [--arch=sgn] [--steps=200]

The model is a plain Linen module from `build_classifier`; the loss, the optimiser and the
jitted step below are yours. Only the public API is used (docs/api.md).
"""

import argparse

import jax
import jax.numpy as jnp
import optax

import skeleton_anon as sa


def main(argv=None) -> float:
  parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  parser.add_argument('--arch', default='sgn', help=f'one of {sorted(sa.CLASSIFIERS)}')
  parser.add_argument('--steps', type=int, default=200)
  parser.add_argument('--batch_size', type=int, default=32)
  args = parser.parse_args(argv)

  ds = sa.make_synthetic(num_subjects=6, num_actions=4, repetitions=2, num_views=2,
                         num_frames=16, seed=0)
  x, y = jnp.asarray(ds.x), jnp.asarray(ds.action)
  model = sa.build_classifier(args.arch, num_classes=4, layout=ds.get_layout(),
                              num_persons=ds.num_persons)
  variables = model.init({'params': jax.random.key(0), 'dropout': jax.random.key(1)}, x[:2],
                         train=False)
  params, stats = variables['params'], variables.get('batch_stats', {})
  tx = optax.adam(1e-3)
  opt_state = tx.init(params)

  @jax.jit
  def train_step(params, stats, opt_state, xb, yb, key):
    def loss_fn(p):
      logits, updates = model.apply({'params': p, 'batch_stats': stats}, xb, train=True,
                                    rngs={'dropout': key}, mutable=['batch_stats'])
      loss = optax.softmax_cross_entropy_with_integer_labels(logits, yb).mean()
      return loss, updates.get('batch_stats', stats)
    (loss, stats), grads = jax.value_and_grad(loss_fn, has_aux=True)(params)
    updates, opt_state = tx.update(grads, opt_state, params)
    return optax.apply_updates(params, updates), stats, opt_state, loss

  key = jax.random.key(2)
  for step in range(args.steps):
    key, batch_key, dropout_key = jax.random.split(key, 3)
    idx = jax.random.choice(batch_key, len(y), (args.batch_size,), replace=False)
    params, stats, opt_state, loss = train_step(params, stats, opt_state, x[idx], y[idx],
                                                dropout_key)
  logits = model.apply({'params': params, 'batch_stats': stats}, x, train=False)
  accuracy = float(jnp.mean(jnp.argmax(logits, -1) == y))
  print(f'{args.arch}: loss {float(loss):.3f}, training accuracy {accuracy:.3f} '
        f'after {args.steps} steps (chance {1 / 4:.2f})')
  return accuracy


if __name__ == '__main__':
  main()
