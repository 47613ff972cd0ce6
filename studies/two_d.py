"""Privacy on 2D keypoints: the real Kinect v1 sets projected into the image (docs/privacy_2d.md).

    python studies/two_d.py [--data_dir=../shared/data] [--out=runs/two_d]
        [--cases=kgbd_gender,kgbd_subject,msrc12_subject] [--methods=recommended] [--compare_3d]

There is no real 2D pose-estimator dataset here, but there are two real 3D Kinect v1 datasets in
camera space (metres; ../shared/data/README.md). Projecting their joints through a pinhole camera
gives real people's motion as a 2D pose estimator in the same camera would see it. Camera
assumption: the Kinect v1 colour camera, 640 x 480 pixels, focal length 525 px, principal point
(320, 240), no distortion, colour and depth cameras treated as one (the 2.5 cm baseline ignored):

    u = cx + f * X / Z,    v = cy - f * Y / Z        (camera Y is up, image v is down)

then pyskl's PreNormalize2D mode 'fix' (`preprocess.normalize(method='image')`):
(u - w/2) / (w/2), (v - h/2) / (h/2). Joints that are zero in the 3D file (sensor dropouts,
padding) stay zero. The written files keep layout 'custom' with the source's edges, the labels
and split arrays, `img_shape` = (480, 640) per sample and `normalize='image'`; there is no `score`
(Kinect gives no per-joint confidence). They are written under OUT/data/ (OUT defaults to
runs/two_d, which .gitignore keeps out of git) and never into the repository tree.

Each case of studies/privacy.py (CASES, same overrides) is then one pipeline run
(`python -m skeleton_anon.main --config=configs/recommended.py`, its own process and workdir
OUT/CASE/METHOD, its output in OUT/logs/CASE.METHOD.log); a case whose report.json exists is not
rerun, so an interrupted study resumes. A run that fails is recorded (command, exit status, the
log's last lines) in OUT/two_d.json and the study goes on with the others. The frontier points
come from studies/privacy.py's `points`; the networks' rows (held-out and retrained SGNs,
linkage, gender ROC AUC) from report.json `evaluations` and `attacks`; fidelity is also given in
pixels (the exported anonymized file against the 2D input, both mapped back to the 640 x 480
frame). --compare_3d runs every case on the 3D file as well (OUT/3d_same_day, the same pipeline
command as studies/privacy.py), so 2D sits beside 3D from the same code and day. Writes
OUT/two_d.json and OUT/two_d_tables.md. About 12 minutes on 2 CPU cores (msrc12 9.7 min,
each KGBD case under a minute); about 8 more with --compare_3d. Delete OUT/data to re-project.

The data files are real people's recordings: read from --data_dir, never copied (only their
projection is written, under OUT); a missing file skips its cases and says so.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time

import numpy as np

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)
sys.path.insert(0, os.path.join(ROOT, 'studies'))

import privacy as study_privacy  # noqa: E402  (studies/privacy.py: CASES, METHODS, points)
from skeleton_anon.data import preprocess  # noqa: E402
from skeleton_anon.data.dataset import SkeletonDataset, load_npz, save_npz  # noqa: E402
from skeleton_anon.evaluate.fidelity import fidelity  # noqa: E402

# Kinect v1 colour camera (approximate intrinsics).
CAMERA = {'width': 640, 'height': 480, 'f': 525.0, 'cx': 320.0, 'cy': 240.0}
# Head and hip centre of each file's joint order (../shared/data/README.md), for the axis check.
HEAD_HIP = {'msrc12.npz': (3, 0), 'kgbd_dev.npz': (0, 11)}
# Left and right shoulder, for the mirror check.
SHOULDERS = {'msrc12.npz': (4, 8), 'kgbd_dev.npz': (3, 2)}
DEFAULT_CASES = 'kgbd_gender,kgbd_subject,msrc12_subject'   # fast ones first


def project(x: np.ndarray, camera: dict = CAMERA) -> np.ndarray:
  """Camera-space joints [..., 3] (metres, Y up, Z forward) -> pixels [..., 2] (v down).

  Joints that are exactly zero (absent) stay zero."""
  x = np.asarray(x, np.float64)
  present = (x != 0).any(axis=-1)
  z = np.where(present, x[..., 2], 1.0)
  if (present & (z <= 0)).any():
    raise ValueError('a present joint has Z <= 0 (behind the camera); not a camera-space file')
  u = camera['cx'] + camera['f'] * x[..., 0] / z
  v = camera['cy'] - camera['f'] * x[..., 1] / z
  return np.where(present[..., None], np.stack([u, v], -1), 0.0).astype(np.float32)


def axis_check(ds: SkeletonDataset, file_name: str, pixels: np.ndarray) -> dict:
  """What the data says about its axes: mean head - hip and left - right shoulder vectors in
  camera space and in the image, and how many keypoints fall outside the assumed frame."""
  head, hip = HEAD_HIP[file_name]
  left, right = SHOULDERS[file_name]
  x = np.asarray(ds.x, np.float64)
  present = (x != 0).any(-1).all(-1)                                   # [N, M, T] whole bodies
  frames = x[present]                                                  # [F, V, 3]
  pix = np.asarray(pixels, np.float64)[present]                         # [F, V, 2]
  joints = (ds.x != 0).any(-1)
  p = np.asarray(pixels)[joints]
  outside = ((p[:, 0] < 0) | (p[:, 0] >= CAMERA['width']) | (p[:, 1] < 0) |
             (p[:, 1] >= CAMERA['height']))
  return {
      'head_minus_hip_camera_m': (frames[:, head] - frames[:, hip]).mean(0).round(4).tolist(),
      'head_minus_hip_image_px': (pix[:, head] - pix[:, hip]).mean(0).round(1).tolist(),
      'left_minus_right_shoulder_camera_m':
          (frames[:, left] - frames[:, right]).mean(0).round(4).tolist(),
      'left_minus_right_shoulder_image_px':
          (pix[:, left] - pix[:, right]).mean(0).round(1).tolist(),
      'depth_z_m': {'min': round(float(frames[..., 2].min()), 3),
                    'median': round(float(np.median(frames[..., 2])), 3),
                    'max': round(float(frames[..., 2].max()), 3)},
      'pixels_u': [round(float(p[:, 0].min()), 1), round(float(p[:, 0].max()), 1)],
      'pixels_v': [round(float(p[:, 1].min()), 1), round(float(p[:, 1].max()), 1)],
      'keypoints_outside_frame': int(outside.sum()), 'keypoints': int(len(p)),
      'samples_with_keypoints_outside_frame': int(
          np.unique(np.nonzero(joints)[0][outside]).size),
      'zero_frames_inside_lengths': int(
          ((~(ds.x != 0).any(axis=(1, 3, 4))) &
           (np.arange(ds.num_frames)[None] < ds.lengths[:, None])).sum()),
  }


def to_2d(src: str, dst: str) -> dict:
  """Writes the projected, image-normalised 2D file `dst` (unless it exists); returns the check."""
  ds = load_npz(src)
  if ds.num_channels != 3:
    raise ValueError(f'{src}: expected 3D camera-space joints, got C={ds.num_channels}')
  pixels = project(ds.x)
  check = axis_check(ds, os.path.basename(src), pixels)
  if os.path.exists(dst):
    return check
  img_shape = np.tile(np.asarray([[CAMERA['height'], CAMERA['width']]], np.int32),
                      (ds.num_samples, 1))
  out = preprocess.normalize(pixels, ds.lengths, ds.get_layout(), 'image', img_shape=img_shape,
                             path=src)
  assert (out.lengths == ds.lengths).all()
  # A keypoint that lands exactly on the image centre would read as absent (0, 0).
  lost = int(((pixels != 0).any(-1) & ~(out.x != 0).any(-1)).sum())
  if lost:
    raise ValueError(f'{lost} keypoints normalised to exactly (0, 0)')
  two_d = SkeletonDataset(
      x=out.x, lengths=ds.lengths, action=ds.action, subject=ds.subject, layout=ds.layout,
      gender=ds.gender, split=ds.split, names=ds.names, edges=ds.edges, camera=ds.camera,
      setup=ds.setup, replication=ds.replication, score=None, img_shape=img_shape,
      meta={'normalize': 'image'})
  save_npz(two_d, dst)
  return check


def run_case(case: str, method: str, data_dir: str, out: str, extra: list[str]) -> dict:
  """One pipeline run of studies/privacy.py's case and method on the case's file in `data_dir`.

  Returns {'workdir', 'command', 'status': 'done'|'resumed'|'failed', 'seconds', 'rc',
  'error_tail'}; the run's whole output goes to OUT/logs/CASE.METHOD.log."""
  file_name, target, overrides = study_privacy.CASES[case]
  path = os.path.realpath(os.path.join(data_dir, file_name))
  workdir = os.path.join(out, case, method)
  config, method_overrides = study_privacy.METHODS[method]
  command = [sys.executable, '-m', 'skeleton_anon.main',
             f'--config={ROOT}/configs/{config}', f'--workdir={workdir}',
             f'--config.data.path={path}', f'--config.data.privacy_target={target}',
             *overrides, *method_overrides, *extra]
  info = {'workdir': workdir, 'command': ' '.join(['python', *command[1:]])}
  if os.path.exists(os.path.join(workdir, 'report.json')):
    print(f'{case} / {method}: report.json exists, not rerun', flush=True)
    return {**info, 'status': 'resumed'}
  os.makedirs(os.path.join(out, 'logs'), exist_ok=True)
  log_path = os.path.join(out, 'logs', f'{case}.{method}.log')
  print(f'{case} / {method}: {info["command"]}  (log {log_path})', flush=True)
  start = time.time()
  with open(log_path, 'a') as log:
    rc = subprocess.run(command, cwd=ROOT, stdout=log, stderr=subprocess.STDOUT).returncode
  seconds = round(time.time() - start, 1)
  info.update(seconds=seconds, rc=rc, log=log_path)
  if rc != 0 or not os.path.exists(os.path.join(workdir, 'report.json')):
    with open(log_path) as f:
      tail = f.read().splitlines()[-25:]
    print(f'{case} / {method}: FAILED (exit {rc}) after {seconds:.0f} s:\n  ' +
          '\n  '.join(tail), flush=True)
    return {**info, 'status': 'failed', 'error_tail': tail}
  print(f'{case} / {method}: {seconds:.0f} s', flush=True)
  return {**info, 'status': 'done'}


# The networks trained on original data (the style prior trains against none: all held out).
PRETRAINED = ('trained_against', 'holdout_seed', 'holdout_arch')


def _top1(report: dict, data: str, task: str, roles) -> float | None:
  """Mean top-1 of report.json `evaluations` rows with this data, task and one of `roles`."""
  roles = (roles,) if isinstance(roles, str) else tuple(roles)
  rows = [e['top1'] for e in report.get('evaluations', [])
          if e.get('data') == data and e.get('task') == task and e.get('role') in roles
          and e.get('sigma') is None]
  return float(np.mean(rows)) if rows else None


def _best(report: dict, data: str, task: str, metric: str, exclude=()) -> dict | None:
  rows = [a for a in (report.get('attacks') or {}).get('attacks', [])
          if a.get('data') == data and a.get('task') == task and a.get('metric') == metric
          and a.get('attacker') not in exclude]
  if not rows:
    return None
  best = max(rows, key=lambda a: a['value'])
  return {'attacker': best['attacker'], 'value': best['value']}


def networks(report: dict) -> dict:
  """The networks' and the suite's extra rows docs/privacy.md quotes beside `strongest`."""
  out = {}
  for data in ('original', 'anonymized', 'retarget'):
    out[data] = {
        'action_trained_on_original': _top1(report, data, 'action', PRETRAINED),
        'privacy_trained_on_original': _top1(report, data, 'privacy', PRETRAINED),
        'action_retrained': _top1(report, data, 'action', 'retrained'),
        'privacy_retrained': _top1(report, data, 'privacy', 'retrained'),
        'linkage_auc': next(({'value': a['value']} for a in
                             (report.get('attacks') or {}).get('attacks', [])
                             if a.get('data') == data and a.get('attacker') == 'linkage'
                             and a.get('metric') == 'auc'), None),
        'best_privacy_auc': _best(report, data, 'privacy', 'auc', exclude=('linkage',)),
        'best_privacy_balanced_accuracy': _best(report, data, 'privacy', 'balanced_accuracy'),
    }
  banks = ((report.get('utility') or {}).get('train_on_anonymized') or {}).get('retrained_banks')
  out['sgn_train_anonymized_test_original'] = (
      float(np.mean([b['top1'] for b in banks])) if banks else None)
  out['timing'] = report.get('timing')
  out['chance'] = report.get('chance')
  out['roles_present'] = sorted({(e.get('data'), e.get('task'), e.get('role'))
                                 for e in report.get('evaluations', [])})
  return out


def pixel_fidelity(workdir: str, two_d_path: str) -> dict | None:
  """report.json's fidelity block in pixels of the assumed camera: the exported anonymized file
  and the 2D input, both mapped back from 'image' normalisation, on the test split."""
  path = os.path.join(workdir, 'export', 'anonymized.npz')
  if not os.path.exists(path):
    return None
  anon, orig = load_npz(path), load_npz(two_d_path)
  if anon.split is None or anon.x.shape != orig.x.shape or (
      anon.names is not None and orig.names is not None and (anon.names != orig.names).any()):
    return None
  test = anon.split == 1
  half = np.tile(np.asarray([[CAMERA['width'] / 2, CAMERA['height'] / 2]], np.float32),
                 (int(test.sum()), 1))
  pix = lambda x: preprocess.denormalize_2d(x[test], half, half)
  out = fidelity(pix(orig.x), pix(anon.x), orig.lengths[test], orig.get_layout())
  return {k: float(v) for k, v in out.items()}


def _cell(v, digits=3):
  return '-' if v is None else f'{v:.{digits}f}'


def _summary(report_rows: list[dict], net: dict, key: str) -> dict:
  """The quantities docs/privacy_2d.md compares, from one run's points and networks."""
  by = {r['data']: r for r in report_rows if r['case'] == key}
  anon = by.get('anonymized') or {}
  auc = {d: (net[d]['best_privacy_auc'] or {}).get('value') for d in ('original', 'anonymized')}
  return {
      'privacy_original': (by.get('original') or {}).get('privacy'),
      'privacy_retarget': (by.get('retarget') or {}).get('privacy'),
      'privacy_anonymized': anon.get('privacy'),
      'privacy_attacker_anonymized': anon.get('privacy_attacker'),
      'privacy_metric': anon.get('privacy_metric'), 'chance_privacy': anon.get('chance_privacy'),
      'auc_original': auc['original'], 'auc_anonymized': auc['anonymized'],
      'action_original': (by.get('original') or {}).get('action'),
      'action_anonymized': anon.get('action'),
      'sgn_action_original': net['original']['action_trained_on_original'],
      'sgn_action_anonymized': net['anonymized']['action_trained_on_original'],
      'sgn_privacy_original': net['original']['privacy_trained_on_original'],
      'sgn_privacy_anonymized': net['anonymized']['privacy_trained_on_original'],
      'sgn_action_retrained': net['anonymized']['action_retrained'],
      'sgn_privacy_retrained': net['anonymized']['privacy_retrained'],
      'sgn_train_anonymized_test_original': net.get('sgn_train_anonymized_test_original'),
      'linkage_original': (net['original']['linkage_auc'] or {}).get('value'),
      'linkage_anonymized': (net['anonymized']['linkage_auc'] or {}).get('value'),
      'train_on_anonymized': anon.get('train_on_anonymized'),
      'diversity': anon.get('diversity'), 'rmse': anon.get('rmse'), 'mpjpe': anon.get('mpjpe'),
      'bone_std': anon.get('bone_std'), 'bone_std_original': anon.get('bone_std_original'),
      'jitter_ratio': anon.get('jitter_ratio'),
  }


COMPARED = [('privacy_original', 'privacy, strongest retrained: original'),
            ('privacy_retarget', '... retargeting only'),
            ('privacy_anonymized', '... style prior'),
            ('privacy_attacker_anonymized', '... its attacker'),
            ('auc_original', 'best privacy ROC AUC (gender): original'),
            ('auc_anonymized', '... style prior'),
            ('action_original', 'action, strongest retrained: original'),
            ('action_anonymized', '... style prior'),
            ('sgn_action_original', 'held-out SGN action (trained on original): original'),
            ('sgn_action_anonymized', '... on style prior'),
            ('sgn_privacy_original', 'SGN privacy (trained on original): original'),
            ('sgn_privacy_anonymized', '... on style prior'),
            ('sgn_action_retrained', 'SGN retrained on style prior: action'),
            ('sgn_privacy_retrained', 'SGN retrained on style prior: privacy'),
            ('train_on_anonymized', 'train on style prior, test on original: best suite attacker'),
            ('sgn_train_anonymized_test_original', '... SGN'),
            ('linkage_original', 'linkage ROC AUC: original'),
            ('linkage_anonymized', '... style prior'),
            ('diversity', 'within-action diversity'),
            ('rmse', 'RMSE (data units)'), ('mpjpe', 'MPJPE (data units)'),
            ('bone_std_original', 'bone std over time: original (data units)'),
            ('bone_std', '... style prior'), ('jitter_ratio', 'jitter ratio')]


def comparison(summaries: dict) -> str:
  """One table per case: 2D beside the same-day 3D run (when there is one)."""
  lines = []
  for case in dict.fromkeys(c for dim in summaries.values() for c in dim):
    dims = [d for d in ('2d', '3d') if case in summaries.get(d, {})]
    lines += [f'#### {case}', '', '| quantity | ' + ' | '.join(d.upper() for d in dims) + ' |',
              '|---|' + '---|' * len(dims)]
    for key, label in COMPARED:
      cells = [summaries[d][case].get(key) for d in dims]
      if all(c is None for c in cells):
        continue
      text = [c if isinstance(c, str) else _cell(c, 4 if key.startswith('bone') else 3)
              for c in cells]
      lines.append(f'| {label} | ' + ' | '.join(text) + ' |')
    lines.append('')
  return '\n'.join(lines)


def tables(rows: list[dict], nets: dict, runs: dict, checks: dict, summaries: dict) -> str:
  lines = ['## 2D beside the same-day 3D run', '', comparison(summaries),
           '## 2D: studies/privacy.py tables', '', study_privacy.tables(rows),
           '### Networks and extra suite rows (2D)', '',
           '| case | data | held-out SGN action (trained on original) | SGN privacy (trained on '
           'original) | SGN action retrained | SGN privacy retrained | linkage AUC | best privacy '
           'ROC AUC (attacker) |', '|---|---|---|---|---|---|---|---|']
  for case, net in nets.items():
    for data in ('original', 'retarget', 'anonymized'):
      n = net[data]
      auc = n['best_privacy_auc']
      lines.append(f"| {case} | {data} | {_cell(n['action_trained_on_original'])} | "
                   f"{_cell(n['privacy_trained_on_original'])} | {_cell(n['action_retrained'])} | "
                   f"{_cell(n['privacy_retrained'])} | "
                   f"{_cell((n['linkage_auc'] or {}).get('value'))} | "
                   + (f"{auc['value']:.3f} ({auc['attacker']})" if auc else '-') + ' |')
  lines += ['', 'SGN retrained on anonymized training data, tested on original test data (action): '
            + ', '.join(f"{case} {_cell(net.get('sgn_train_anonymized_test_original'))}"
                        for case, net in nets.items()) + '.']
  lines += ['', '### Fidelity in pixels of the assumed 640 x 480 camera (test split)', '',
            '| case | RMSE px | MPJPE px | bone std px (original) | jitter ratio |',
            '|---|---|---|---|---|']
  for case, net in nets.items():
    px = net.get('fidelity_px')
    if px:
      lines.append(f"| {case} | {px['rmse']:.1f} | {px['mpjpe']:.1f} | "
                   f"{px['bone_std_changed']:.2g} ({px['bone_std_original']:.1f}) | "
                   f"{px['jitter_ratio']:.2f} |")
  lines += ['', '### Runs', '', '| run | status | wall s | timing (report.json, s) |',
            '|---|---|---|---|']
  for dim, part in runs.items():
    for case, run in part.items():
      timing = run.get('timing') or {}
      timing = ', '.join(f'{k} {v:.0f}' for k, v in timing.items() if isinstance(v, (int, float)))
      lines.append(f"| {dim} {case} | {run['status']}" + (f" (exit {run.get('rc')})"
                                                          if run['status'] == 'failed' else '')
                   + f" | {run.get('seconds', '-')} | {timing or '-'} |")
  lines += ['', '### Projection checks', '', '```', json.dumps(checks, indent=1), '```', '']
  return '\n'.join(lines)


def main(argv=None) -> int:
  parser = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
  parser.add_argument('--data_dir', default=os.path.join(ROOT, '..', 'shared', 'data'))
  parser.add_argument('--out', default=os.path.join(ROOT, 'runs', 'two_d'))
  parser.add_argument('--cases', default=DEFAULT_CASES)
  parser.add_argument('--methods', default='recommended')
  parser.add_argument('--compare_3d', action='store_true',
                      help='also run each case on the 3D file itself (OUT/3d_same_day), so the '
                      '2D numbers sit beside 3D ones from the same code and day')
  parser.add_argument('--extra', action='append', default=[],
                      help='one more --config.* override for every run (repeatable)')
  args = parser.parse_args(argv)
  out = os.path.abspath(args.out)
  inside = os.path.relpath(out, ROOT)
  if not inside.startswith('..') and not (inside == 'runs' or inside.startswith('runs' + os.sep)):
    parser.error(f'--out={args.out} is inside the repository but not under runs/ (git-ignored); '
                 'the projected files hold real people\'s motion and must not be committed')
  cases = []
  for case in args.cases.split(','):
    src = os.path.realpath(os.path.join(args.data_dir, study_privacy.CASES[case][0]))
    if os.path.exists(src):
      cases.append(case)
    else:
      print(f'{case}: {src} not found, skipped (see ../shared/data/README.md)')
  if not cases:
    print('no data found; nothing to do', file=sys.stderr)
    return 0
  data_out = os.path.join(out, 'data')
  os.makedirs(data_out, exist_ok=True)
  results_path = os.path.join(out, 'two_d.json')
  previous = {}
  if os.path.exists(results_path):
    with open(results_path) as f:
      previous = json.load(f)
  dims = ['2d', '3d'] if args.compare_3d else ['2d']
  checks, rows = {}, []
  runs = {d: {} for d in dims}
  nets = {}
  summaries = {d: {} for d in dims}
  for case in cases:
    file_name = study_privacy.CASES[case][0]
    src = os.path.join(args.data_dir, file_name)
    if file_name not in checks:
      t0 = time.time()
      checks[file_name] = to_2d(src, os.path.join(data_out, file_name))
      print(f'{file_name}: 2D file {os.path.join(data_out, file_name)} ({time.time() - t0:.0f} s);'
            f' {json.dumps(checks[file_name])}', flush=True)
    for method in args.methods.split(','):
      key = case if method == 'recommended' else f'{case}/{method}'
      for dim in dims:
        data_dir, run_out = ((data_out, out) if dim == '2d' else
                             (args.data_dir, os.path.join(out, '3d_same_day')))
        run = run_case(case, method, data_dir, run_out, args.extra)
        if run['status'] == 'resumed':           # keep the wall time of the run that made it
          before = previous.get('runs') or {}
          before = before.get(dim) or (before if dim == '2d' and key in before else {})
          run = {**(before.get(key) or {}), **run, 'status': 'resumed'}
        runs[dim][key] = run
        if run['status'] == 'failed':
          continue
        with open(os.path.join(run['workdir'], 'report.json')) as f:
          report = json.load(f)
        run['timing'] = report.get('timing')
        points = study_privacy.points(key, method, report)
        net = networks(report)
        if dim == '2d':
          rows += points
          net['fidelity_px'] = pixel_fidelity(run['workdir'], os.path.join(data_out, file_name))
          nets[key] = net
        summaries[dim][key] = _summary(points, net, key)
  result = {'camera': CAMERA, 'checks': checks, 'runs': runs, 'points': rows, 'networks': nets,
            'summaries': summaries,
            'command': 'python studies/two_d.py ' + ' '.join(argv or sys.argv[1:])}
  with open(results_path, 'w') as f:
    json.dump(result, f, indent=2)
  text = tables(rows, nets, runs, checks, summaries)
  with open(os.path.join(out, 'two_d_tables.md'), 'w') as f:
    f.write(text)
  print(text)
  return 1 if any(r['status'] == 'failed' for part in runs.values() for r in part.values()) else 0


if __name__ == '__main__':
  sys.exit(main())
