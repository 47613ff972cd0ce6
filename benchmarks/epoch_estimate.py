"""Per-epoch time of NTU60 xsub training on one H100-class GPU: an ESTIMATE, not a measurement.

  python benchmarks/epoch_estimate.py [--batch=8] [--json OUT.json]

Measured here: the FLOPs of one training step at NTU60's shapes (T=300, V=25, M=2; 60 action and
40 privacy classes), from XLA's cost analysis of the compiled step (`jax_steps.cost_flops`:
compiled, never run, so this takes a minute or two on a CPU), divided by the batch. Assumed: the
GPU's dense bfloat16 peak and the fraction of it a step reaches (ASSUMPTIONS, stated in the output).
The epoch estimate is 40,320 samples x FLOPs per sample / (fraction x peak). It leaves out
everything that is not a FLOP: memory-bound elementwise work (BatchNorm, ReLU, the graph
aggregations of small channel counts) is exactly what makes the fraction low on small-channel
networks, so the range of fractions, not one number, is the honest answer.

Steps (the package's own, jax_steps.py's subjects, vmapped banks as on accelerators):
  classifier_step  one full-size MS-G3D trained with SGD: what pretraining does per member, and
                   the step behind MS-G3D's published epoch time;
  min_step         residual-MLP anonymizer through frozen MS-G3D action + privacy classifiers
                   (1a1p);
  max_step         the adversary's update (adversarial algorithm, every k-th step);
  ensemble_min_step_vmap  the same anonymizer against 3 action + 3 privacy MS-G3D (3a3p, Eq. 3:
                   the paper's main configuration).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
if REPO not in sys.path:
  sys.path.insert(0, REPO)

import jax  # noqa: E402  (after the sys.path set-up)

from benchmarks import jax_steps  # noqa: E402

NTU60_XSUB_TRAIN = 40_320
FRAMES = 300
STEPS = ('classifier_step', 'min_step', 'max_step', 'ensemble_min_step_vmap')
# H100 SXM dense (no sparsity) peaks, TFLOP/s; and the fractions of the bf16 peak assumed.
ASSUMPTIONS = {
    'gpu': 'H100 SXM (H100-class), one GPU',
    'bf16_dense_peak_tflops': 989.0,
    'fractions_of_peak': [0.4, 0.2, 0.1],
    'notes': ('0.4 is what large transformer training reaches (an upper bound here); GCNs '
              'with 64-384 channels, multi-scale graph aggregations and temporal convolutions '
              'are far more memory-bound, 0.1-0.2 is the plausible range; input pipeline '
              'assumed hidden (prefetch), host overhead and evaluation left out'),
}
# MS-G3D's published epoch time (kenziyuliu/MS-G3D issue #14, the author's NTU120 x-sub log):
# epoch 1 from 09:11:51 to 09:33:04, with `4 GPUs available, using DataParallel`, batch_size 64
# and half precision (apex O1) in the log's header; its loss line reads "BS 32".
PUBLISHED = {'source': 'https://github.com/kenziyuliu/MS-G3D/issues/14', 'dataset': 'NTU120 xsub',
             'train_samples': 63_026, 'epoch_minutes': 21.2,
             'setup': ('4 GPUs (model not stated), DataParallel, batch 64, apex O1 half '
                       'precision, 2019')}


def step_flops(measure: str, batch: int) -> dict:
  data = jax_steps.make_batch(batch, FRAMES)
  fn, args, _ = jax_steps.SUBJECTS[measure](data)
  start = time.perf_counter()
  compiled = fn.lower(*args).compile()
  flops = jax_steps.cost_flops(compiled)
  return {'name': measure, 'batch': batch, 'frames': FRAMES,
          'compile_s': time.perf_counter() - start,
          'gflop_per_step': flops / 1e9 if flops else None,
          'gflop_per_sample': flops / 1e9 / batch if flops else None}


def estimate(results: list[dict]) -> dict:
  peak = ASSUMPTIONS['bf16_dense_peak_tflops'] * 1e12
  out = {}
  for r in results:
    if not r.get('gflop_per_sample'):
      continue
    epoch_flop = NTU60_XSUB_TRAIN * r['gflop_per_sample'] * 1e9
    out[r['name']] = {f'{f:g}': epoch_flop / (f * peak) / 60.0
                      for f in ASSUMPTIONS['fractions_of_peak']}
    out[r['name']]['epoch_pflop'] = epoch_flop / 1e15
  published_rate = PUBLISHED['train_samples'] / (PUBLISHED['epoch_minutes'] * 60)
  out['published_msg3d'] = {
      'samples_per_s': published_rate,
      'ntu60_xsub_epoch_minutes_at_that_rate': NTU60_XSUB_TRAIN / published_rate / 60}
  return out


def main(argv=None):
  parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  parser.add_argument('--batch', type=int, default=8)
  parser.add_argument('--steps', nargs='*', default=list(STEPS), choices=list(STEPS))
  parser.add_argument('--json', default=None)
  args = parser.parse_args(argv)
  results = [step_flops(m, args.batch) for m in args.steps]
  out = {'name': 'ntu60_epoch_estimate', 'label': 'ESTIMATE from measured FLOPs and assumed '
                                                  'GPU efficiency, not a measurement',
         'dataset': 'NTU60 xsub', 'train_samples': NTU60_XSUB_TRAIN, 'frames': FRAMES,
         'joints': 25, 'persons': 2, 'steps': results, 'assumptions': ASSUMPTIONS,
         'published': PUBLISHED, 'epoch_minutes': estimate(results),
         'jax': jax.__version__, 'backend_for_flop_count': jax.default_backend(),
         'date_utc': time.strftime('%Y-%m-%d %H:%M:%S', time.gmtime())}
  if args.json:
    with open(args.json, 'w') as f:
      json.dump(out, f, indent=1)
  print(json.dumps(out))


if __name__ == '__main__':
  main()
