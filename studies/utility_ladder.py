"""Where does a recognizer trained on the release lose its accuracy on real people? (issue 21)

    python studies/utility_ladder.py [--data_dir=../shared/data] [--cases=msrc12_subject]
        [--rungs=original,encoded,subspace,bodies,durations,release] [--archs=sgn] [--seeds=1]
        [--out=runs/ladder] [--knobs=components=512,...] [--set=anonymize.min_steps=20000,...]

The recommended flow prior turns a training sequence into its release in steps; each rung of
the ladder applies one more of them to the TRAINING split, with the true action labels, and a
recognizer is trained on the result and tested on the ORIGINAL test split (as in
studies/draws.py: the recommended config's network sizes and training settings):

  original   the training split itself;
  encoded    the prior's front end and encoding, decoded at the input's duration: bones at the
             training medians, the posture rotated onto the population's, the encoding's
             fixed number of frames resampled back;
  subspace   the encoding projected onto the action's mean plus the shared subspace the flow
             draws in (what a perfect flow could give, at the medians' body);
  bodies     the subspace rung with the body and place each release draw gets;
  durations  the bodies rung played for the duration each release draw gets (with
             output_duration='drawn': a duration drawn from the action's training durations,
             whatever the performance);
  release    the flow's release (anonymized training split, its drawn durations).

The difference between two rungs is what that step costs; the flow itself costs release -
bodies. The suite's fast feature attackers are fitted on every rung too (action, scored on the
original test split). The data files are real people's recordings: read from --data_dir, never
copied; the rungs other than `release` are not private (they keep each person's motion).
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import sys

import numpy as np

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(ROOT, 'studies'))

from cases import parse_knobs, present_cases, save_results  # noqa: E402
from draws import _config, _fast_suite, _side  # noqa: E402

RUNGS = ('original', 'encoded', 'subspace', 'bodies', 'durations', 'release')


def ladder_rung(prior, x: np.ndarray, lengths: np.ndarray, action: np.ndarray, layout,
                rung: str) -> tuple[np.ndarray, np.ndarray]:
  """(the training split x [N, M, T, V, C] at `rung`, its lengths), for a rung other than
  'original' and 'release'."""
  from skeleton_anon.data import transforms
  from skeleton_anon.models import style_prior
  out = np.zeros_like(x)
  played = np.asarray(lengths, np.int32).copy()
  row_of = {int(a): r for r, a in enumerate(prior.actions)}
  basis = prior.basis[0]
  for lo in range(0, len(x), transforms.CHUNK):
    chunk, n = x[lo:lo + transforms.CHUNK], lengths[lo:lo + transforms.CHUNK]
    front = style_prior.front_end(chunk, n, layout, prior.bone_lengths, prior.reference,
                                  prior.placement, prior.align)
    encoded = transforms.direction_encoding(front, n, layout, prior.frames)
    flat = encoded.reshape(len(chunk), -1).astype(np.float64)
    rows = np.asarray([row_of[int(a)] for a in action[lo:lo + len(chunk)]])
    if rung != 'encoded':
      flat = prior.mean[rows] + ((flat - prior.mean[rows]) @ basis) @ basis.T
    present = np.any(chunk != 0, axis=(2, 3, 4))
    bones = prior.bone_lengths
    seeds = style_prior.sample_seeds(chunk, prior.salt)
    if rung in ('bodies', 'durations'):
      bones, offsets = style_prior.body_draws(prior, seeds)
    if rung == 'durations':
      n = played[lo:lo + len(chunk)] = style_prior.output_lengths(prior, rows, n, seeds,
                                                                  x.shape[2])
    decoded = transforms.direction_decoding(flat.reshape(encoded.shape).astype(np.float32), n,
                                            x.shape[2], layout, bones, present=present)
    if rung in ('bodies', 'durations'):
      mask = transforms.valid_mask(decoded, n)[..., None, None]
      decoded = np.where(mask, decoded + offsets[:, None, None, None], 0.0)
    out[lo:lo + len(chunk)] = decoded
  return out, played


def study_case(case: str, path: str, out: str, rungs: list[str], seeds: list[int],
               archs: list[str], knobs: dict, settings: tuple[str, ...] = ()) -> dict:
  from skeleton_anon.pipeline import context, stages
  config = _config(case, path, settings)
  config.anonymizer.knobs.update(knobs)
  run = context.make_run(config, os.path.join(out, case, 'run'))
  stages.anonymize_stage(run)                 # fits (or reloads) the flow prior
  data, batch = run.data, int(config.evaluate.batch_size)
  rows = {}
  for rung in rungs:
    lengths = data.train.lengths
    if rung == 'original':
      x = data.train.x
    elif rung == 'release':
      x, lengths = run.anonymizer.apply_with_lengths(data.train.x, data.train.lengths,
                                                     mesh=run.mesh, batch_size=batch)
    else:
      x, lengths = ladder_rung(run.anonymizer.prior, np.asarray(data.train.x),
                               data.train.lengths, data.train.action, data.layout, rung)
    found = {}
    for arch in archs:
      bank = run.banks.train(arch, data.train.action, data.num_actions, tuple(seeds), x,
                             lengths, task='action', role='retrained', name=f'{rung}_{arch}')
      logits = run.banks.predict_logits(bank, data.test.x, data.test.lengths)
      found[arch] = [float(np.mean(np.argmax(l, -1) == data.test.action)) for l in logits]
    side = dataclasses.replace(_side(data.train, data.privacy_train, x), lengths=lengths)
    on_real = _fast_suite(data, side, data.test.x)
    rows[rung] = {'networks_test_original': found,
                  'suite_test_original': on_real['strongest']['action']['value'],
                  'suite_attacker': on_real['strongest']['action']['attacker']}
    print(f'{case} {rung}: {json.dumps(rows[rung])}', flush=True)
  run.io.close()
  return rows


def main() -> None:
  parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  parser.add_argument('--data_dir', default=os.path.join(ROOT, '..', 'shared', 'data'))
  parser.add_argument('--cases', default='msrc12_subject')
  parser.add_argument('--rungs', default=','.join(RUNGS))
  parser.add_argument('--archs', default='sgn')
  parser.add_argument('--seeds', type=int, default=1)
  parser.add_argument('--knobs', default='', help="flow knobs over the recommended ones, "
                      "e.g. components=512,sample_steps=32")
  parser.add_argument('--set', default='', help='config settings over the recommended ones, '
                      'e.g. anonymize.min_steps=20000 (the flow\'s training steps)')
  parser.add_argument('--out', default=os.path.join(ROOT, 'runs', 'ladder'))
  args = parser.parse_args()
  rungs = args.rungs.split(',')
  unknown = sorted(set(rungs) - set(RUNGS))
  if unknown:
    parser.error(f'unknown rungs {unknown}; choose from {RUNGS}')
  results = {}
  for case, path in present_cases(args.cases, args.data_dir):
    results[case] = study_case(case, path, args.out, rungs, list(range(300, 300 + args.seeds)),
                               args.archs.split(','), parse_knobs(args.knobs),
                               tuple(filter(None, args.set.split(','))))
  save_results(args.out, 'ladder.json', results)
  for case, rows in results.items():
    print(f'\n{case}\n| rung | trained on it, tested on the original | suite (attacker) |\n'
          f'|---|---|---|')
    for rung, r in rows.items():
      nets = '; '.join(f"{arch} {', '.join(f'{100 * v:.1f}' for v in values)}"
                       for arch, values in r['networks_test_original'].items())
      print(f"| {rung} | {nets} | {100 * r['suite_test_original']:.1f} "
            f"({r['suite_attacker']}) |")


if __name__ == '__main__':
  main()
