"""The privacy-utility-fidelity frontier on real people's skeletons (docs/privacy.md).

    python studies/privacy.py [--data_dir=../shared/data] [--out=runs/privacy]
        [--cases=msrc12_subject,kgbd_subject,kgbd_gender] [--methods=recommended,...]

Each (case, method) is one pipeline run (`python -m skeleton_anon.main`, in its own process and
workdir, so an interrupted study resumes where it stopped) of the method's config with its
overrides (METHODS). Every run's report.json already holds three points of the frontier: the
original data, the bone-retargeting baseline and the anonymized data, each scored by the attack
suite retrained on that version (strongest attacker per task), plus fidelity and utility for the
anonymized data. The study gathers them into OUT/privacy.json, OUT/privacy_tables.md (the tables
docs/privacy.md quotes) and OUT/frontier.png.

The data files are real people's recordings: read from --data_dir, never copied; a missing file
skips its cases and says so.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(ROOT, 'studies'))

from cases import CASES, case_path  # noqa: E402  (studies/cases.py: the real sets)

# method -> (config file, overrides). 'recommended' is configs/recommended.py as it ships (the
# flow prior with population bodies and drawn durations, as is 'drawn_duration'; the flow_*
# rows are the flow prior with the input's duration, as measured before durations were drawn,
# and 'flow_c256_long' is recommended.py until then);
# 'style' is the closed-form style prior (recommended until 2026-12-07); 'learned' is
# configs/recommended_learned.py (the best trained network).
INPUT_DURATION = '--config.anonymizer.knobs.output_duration=input'
OLD_FLOW = ['--config.anonymizer.knobs.components=96', '--config.anonymize.min_steps=3000',
            INPUT_DURATION]
METHODS = {
    'recommended': ('recommended.py', []),
    # The flow prior as first shipped (96 shared directions, 3,000 steps), with and without
    # population bodies; then the wider subspace, and the wider one trained longer (which is
    # recommended.py today), and that with texture.
    'flow_body': ('recommended.py', OLD_FLOW),
    'flow': ('recommended.py', [*OLD_FLOW, '--config.anonymizer.knobs.vary_body=0.0']),
    'flow_c256': ('recommended.py', ['--config.anonymize.min_steps=3000', INPUT_DURATION]),
    'flow_c256_long': ('recommended.py', [INPUT_DURATION]),
    'flow_c256_long_texture': ('recommended.py', ['--config.anonymizer.knobs.texture=1.0',
                                                  INPUT_DURATION]),
    'flow_texture_0.4': ('recommended.py', ['--config.anonymizer.knobs.texture=0.4',
                                            INPUT_DURATION]),
    # The duration channel closed (issue 21 item 4): outputs play for a duration drawn from the
    # predicted action's training durations, or for its median.
    'drawn_duration': ('recommended.py', ['--config.anonymizer.knobs.output_duration=drawn']),
    # recommended.py until 2026-12-08: every flow coordinate standardised, 10,000 steps.
    'flow_whitened_10k': ('recommended.py', ['--config.anonymizer.knobs.whiten=1.0',
                                             '--config.anonymize.min_steps=10000']),
    'action_duration': ('recommended.py', ['--config.anonymizer.knobs.output_duration=action']),
    'style': ('recommended_style.py', []),
    'keep_style_0.3': ('recommended_style.py', ['--config.anonymizer.knobs.keep_style=0.3']),
    'shared_cov': ('recommended_style.py', ['--config.anonymizer.knobs.shrink=1.0']),
    'body': ('recommended_style.py', ['--config.anonymizer.knobs.vary_body=1.0']),
    # The person-level differentially private fit (train/private_prior.py) at epsilon 8, 4, 1
    # and inf (the same fit without noise: what the private structure itself costs).
    **{f'private_{e}': ('recommended_private.py', [f'--config.anonymizer.epsilon={e}'])
       for e in ('inf', '8', '4', '1')},
    'learned': ('recommended_learned.py', []),
    'residual_mlp': ('recommended_learned.py', ['--config.anonymizer.arch=residual_mlp',
                                                '--config.anonymizer.knobs={}']),
    'no_feature_attacker': ('recommended_learned.py',
                            ['--config.anonymize.feature_attack_weight=0.0']),
}


def run_case(case: str, method: str, data_dir: str, out: str, extra: list[str],
             share: bool = False, num_seeds: int = 1) -> str | None:
  """Runs (or resumes) one pipeline run; returns the folder of its report.json, or None when
  the data is absent. share=True runs every method of a case in one workdir (OUT/case/shared):
  the pipeline keeps the finished pretrain stage, whose inputs did not change, and reruns from
  the anonymizer on; each method's report is copied to OUT/case/method."""
  _, target, overrides = CASES[case]
  path = case_path(case, data_dir)
  if path is None:
    print(f'{case}: its file is not in {data_dir}, skipped')
    return None
  workdir = os.path.join(out, case, 'shared' if share else method)
  config, method_overrides = METHODS[method]
  if share:
    extra = [*extra, '--config.allow_config_change=True']
  command = [sys.executable, '-m', 'skeleton_anon.main',
             f'--config={ROOT}/configs/{config_argument(config, num_seeds)}',
             f'--workdir={workdir}',
             f'--config.data.path={path}', f'--config.data.privacy_target={target}',
             *overrides, *method_overrides, *extra]
  print(f'{case} / {method}: {" ".join(command[2:])}', flush=True)
  start = time.time()
  if subprocess.run(command, cwd=ROOT).returncode != 0:
    # A refused run (e.g. a private fit with too few people for its epsilon) is a result too:
    # the error is in its log above; the study goes on with the next one.
    print(f'{case} / {method}: FAILED, left out of the tables', flush=True)
    return None
  print(f'{case} / {method}: {time.time() - start:.0f} s', flush=True)
  if not share:
    return workdir
  keep = os.path.join(out, case, method)
  os.makedirs(keep, exist_ok=True)
  for name in ('report.json', 'report.md'):
    shutil.copyfile(os.path.join(workdir, name), os.path.join(keep, name))
  return keep


def points(case: str, method: str, report: dict) -> list[dict]:
  """The frontier points of one report: original, retarget baseline, anonymized."""
  out = []
  strongest = report.get('strongest', {})
  fid = report.get('fidelity') or {}
  utility = report.get('utility') or {}
  rmse = report.get('recon_rmse') or {}
  for data in ('original', 'retarget', 'anonymized'):
    block = strongest.get(data) or {}
    privacy, action = block.get('privacy') or {}, block.get('action') or {}
    point = {'case': case, 'method': method if data == 'anonymized' else data, 'data': data,
             'privacy_attacker': privacy.get('attacker'), 'privacy_metric': privacy.get('metric'),
             'privacy': privacy.get('value'), 'action_attacker': action.get('attacker'),
             'action': action.get('value'),
             'rmse': {'original': 0.0, 'retarget': rmse.get('retarget'),
                      'anonymized': rmse.get('anonymized')}[data]}
    if data == 'anonymized':
      point['networks'] = network_rows(report)
      point.update({
          'mpjpe': fid.get('mpjpe'), 'bone_std': fid.get('bone_std_changed'),
          'bone_std_original': fid.get('bone_std_original'), 'jitter_ratio': fid.get('jitter_ratio'),
          'diversity': (utility.get('diversity') or {}).get('ratio'),
          'train_on_anonymized': ((utility.get('train_on_anonymized') or {}).get('best') or {})
          .get('anonymized'),
          'train_on_original': ((utility.get('train_on_anonymized') or {}).get('best') or {})
          .get('original'),
          'seconds': (report.get('timing') or {}).get('evaluate_total')})
    out.append(point)
  chance = (report.get('attacks') or {}).get('chance') or report.get('chance') or {}
  for p in out:
    p['chance_privacy'], p['chance_action'] = chance.get('privacy'), chance.get('action')
  return out


# Every network row of the study is a mean +- spread over this many seeds (issue 20): the
# held-out judges, the retrained attackers and the recognizers trained on the release.
NETWORK_SEEDS = 3


def config_argument(config: str, num_seeds: int) -> str:
  """configs/NAME.py, with ':seeds=N' for the recommended configs (recommended.network_seeds):
  every network bank of the run gets `num_seeds` seeds."""
  if num_seeds > 1 and config.startswith('recommended'):
    return f'{config}:seeds={num_seeds}'
  return config


def _spread(values: list[float]) -> dict | None:
  values = [v for v in values if v is not None]
  if not values:
    return None
  return {'mean': float(sum(values) / len(values)), 'spread': float(max(values) - min(values)),
          'n': len(values)}


def network_rows(report: dict) -> dict:
  """{row: {'mean', 'spread', 'n'}} of the run's networks, over their seeds; classifiers the
  report flagged as not having learned (report.json `learning`) are left out and counted."""
  rows = report['evaluations']
  def pick(data, task, roles):
    return [r['top1'] for r in rows if r['data'] == data and r['task'] == task
            and r['role'] in roles and r.get('learned') is not False]
  held = ('holdout_seed', 'holdout_arch')
  tto = ((report.get('utility') or {}).get('train_on_anonymized') or {})
  return {
      'held_out_action_original': _spread(pick('original', 'action', held)),
      'held_out_privacy_original': _spread(pick('original', 'privacy', held)),
      'held_out_action_anonymized': _spread(pick('anonymized', 'action', held)),
      'held_out_privacy_anonymized': _spread(pick('anonymized', 'privacy', held)),
      'retrained_action_anonymized': _spread(pick('anonymized', 'action', ('retrained',))),
      'retrained_privacy_anonymized': _spread(pick('anonymized', 'privacy', ('retrained',))),
      'train_anonymized_test_original': _spread(
          [r['top1'] for r in tto.get('retrained_banks') or []]),
      'flagged': len((report.get('learning') or {}).get('flagged') or []),
  }


def _ms(block) -> str:
  return '-' if not block else f"{100 * block['mean']:.1f} +- {100 * block['spread']:.1f}"


def network_table(rows: list[dict]) -> str:
  lines = ['| case / method | held-out action: original -> anonymized | held-out privacy: '
           'original -> anonymized | retrained on anonymized: action / privacy | train anonymized,'
           ' test original | flagged |', '|---|---|---|---|---|---|']
  for r in rows:
    n = r.get('networks')
    if not n:
      continue
    lines.append(
        f"| {r['case']} / {r['method']} | {_ms(n['held_out_action_original'])} -> "
        f"{_ms(n['held_out_action_anonymized'])} | {_ms(n['held_out_privacy_original'])} -> "
        f"{_ms(n['held_out_privacy_anonymized'])} | {_ms(n['retrained_action_anonymized'])} / "
        f"{_ms(n['retrained_privacy_anonymized'])} | "
        f"{_ms(n['train_anonymized_test_original'])} | {n['flagged']} |")
  return '\n'.join(lines) + '\n'


def _fmt(v, pct=True):
  if v is None:
    return '-'
  return f'{100 * v:.1f}' if pct else f'{v:.3f}'


def tables(rows: list[dict]) -> str:
  lines = []
  for case in dict.fromkeys(r['case'] for r in rows):
    part = [r for r in rows if r['case'] == case]
    seen, unique = set(), []
    for r in part:                       # original / retarget appear once per method's run
      key = (r['method'], r['data'])
      if key not in seen:
        seen.add(key)
        unique.append(r)
    chance = part[0]
    lines += [f'### {case}', '',
              f"Chance: privacy {_fmt(chance['chance_privacy'])}, action "
              f"{_fmt(chance['chance_action'])} (percent; privacy metric as named).", '',
              '| data / method | privacy (strongest) | attacker | action (strongest) | RMSE | '
              'MPJPE | bone std | jitter x | diversity | train-on-anon action |',
              '|---|---|---|---|---|---|---|---|---|---|']
    for r in unique:
      lines.append(
          f"| {r['method']} | {_fmt(r['privacy'])} ({r['privacy_metric'] or '-'}) | "
          f"{r['privacy_attacker'] or '-'} | {_fmt(r['action'])} | {_fmt(r['rmse'], False)} | "
          f"{_fmt(r.get('mpjpe'), False)} | {_fmt(r.get('bone_std'), False)} | "
          f"{_fmt(r.get('jitter_ratio'), False)} | {_fmt(r.get('diversity'), False)} | "
          f"{_fmt(r.get('train_on_anonymized'))} |")
    lines.append('')
  return '\n'.join(lines)


def plot(rows: list[dict], path: str) -> None:
  import matplotlib
  matplotlib.use('Agg')
  import matplotlib.pyplot as plt
  cases = list(dict.fromkeys(r['case'] for r in rows))
  fig, axes = plt.subplots(1, len(cases), figsize=(5 * len(cases), 4), squeeze=False)
  for ax, case in zip(axes[0], cases):
    part = [r for r in rows if r['case'] == case and r['privacy'] is not None]
    for r in part:
      x = r['rmse'] or 0.0
      ax.scatter(x, r['privacy'], label=r['method'])
      ax.annotate(r['method'], (x, r['privacy']), fontsize=7)
    if part:
      ax.axhline(part[0]['chance_privacy'], color='grey', ls='--', lw=0.8, label='chance')
    ax.set_xlabel('reconstruction RMSE (data units)')
    ax.set_ylabel(f"privacy, strongest retrained attacker ({part[0]['privacy_metric'] if part else ''})")
    ax.set_title(case)
  fig.tight_layout()
  fig.savefig(path, dpi=120)


def main(argv=None) -> None:
  parser = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
  parser.add_argument('--data_dir', default=os.path.join(ROOT, '..', 'shared', 'data'))
  parser.add_argument('--out', default=os.path.join(ROOT, 'runs', 'privacy'))
  parser.add_argument('--cases', default=','.join(CASES))
  parser.add_argument('--methods', default='recommended')
  parser.add_argument('--network_seeds', type=int, default=NETWORK_SEEDS,
                      help='seeds of every network bank (rows are mean +- spread over them)')
  parser.add_argument('--share_pretrain', action='store_true',
                      help='one workdir per case: the judges are trained once for all methods')
  parser.add_argument('--extra', action='append', default=[],
                      help='one more --config.* override for every run (repeatable)')
  args = parser.parse_args(argv)
  rows = []
  for case in args.cases.split(','):
    for method in args.methods.split(','):
      workdir = run_case(case, method, args.data_dir, args.out, args.extra,
                         share=args.share_pretrain, num_seeds=args.network_seeds)
      if workdir is None:
        continue
      with open(os.path.join(workdir, 'report.json')) as f:
        rows += points(case, method, json.load(f))
  os.makedirs(args.out, exist_ok=True)
  with open(os.path.join(args.out, 'privacy.json'), 'w') as f:
    json.dump(rows, f, indent=2)
  text = tables(rows) + '\n#### Networks (mean +- spread over seeds)\n\n' + network_table(
      [r for r in rows if r['data'] == 'anonymized'])
  with open(os.path.join(args.out, 'privacy_tables.md'), 'w') as f:
    f.write(text)
  if rows:
    plot(rows, os.path.join(args.out, 'frontier.png'))
  print(text)


if __name__ == '__main__':
  main()
