"""Hand-made privacy transforms on real skeletons, scored by the project's attack suite
(docs/privacy_transforms.md).

    python studies/transforms.py [--data_dir=../shared/data] [--out=runs/transforms]
        [--only=msrc12/subject,kgbd/subject,kgbd/gender] [--seed=0]

Every transform is applied to the training AND the test side, and every attacker of the suite
(`attacks.suite.run_suite`, attackers 'fast') is refitted on the transformed training side and
scored on the transformed test side: an attacker that knows what was done to the data.

Transforms (all share the front end `canon`; bones at the training split's median lengths):
  original   the file's skeletons (the all-zero sensor-dropout frames inside two MSRC-12 samples
             are filled from the nearest valid frame, in every row, so that they do not count
             as motion).
  canon      canonicalise + retarget: centre on the time-mean hip centre, rotate the time-mean
             spine (hip centre -> shoulder centre) to +y, yaw the time-mean hip vector to +x,
             every bone to the training median length (data.transforms.retarget).
  blend_a    encode each canonical sequence as bone unit directions + root trajectory at TF
             frames; output = a * own + (1 - a) * partner (directions renormalised), partner a
             uniformly random TRAINING sequence of the predicted action by another person than
             the predicted one, resampled back to the input's own length.  a = 0.5, 0.2.
  swap       blend with a = 0: the output is the partner exemplar itself ("action-conditioned
             exemplar swap"), resampled to the input's length.
  swap_fixed the swap at a fixed TF-frame length for every output (msrc12 only): the
             difference to `swap` is what the kept duration leaks.
  invert_0.2 the inversion attack on blend_0.2: an attacker who knows a and the exemplar bank
             (the training encodings; a shipped model contains them) re-encodes each released
             sequence, finds the partner by one nearest-neighbour search and solves the blend
             for the own sequence; the suite is then refitted on the recovered sequences.
The predicted action is a class-balanced logistic regression (models.linear) on the
standardised body+motion features (data.features) of the canonical training sequences; the
predicted person (only used to exclude oneself from the partner draw) likewise. KGBD has one
action, so its partner is any training walk of another (predicted) person.

Reported per (audit, transform): the suite's rows and strongest attacker per task; for MSRC-12
"train on transformed, test on original" action top-1 (the suite's six feature attackers fitted
on the transformed training side, scored on the original test side, camera space and
canonicalised); within-action diversity ratio (evaluate.utility); fidelity against the original
test sequences (evaluate.fidelity: RMSE, MPJPE, bone std over time, jitter ratio) and MPJPE
against the canonicalised original. Writes OUT/transforms.json and OUT/transforms_tables.md.

The data files are real people's recordings: read from --data_dir, never copied; a missing file
skips its audits and says so. About 7 minutes on 2 shared CPU cores.
"""

from __future__ import annotations

import argparse
import functools
import os
import sys
import time

import numpy as np

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)

from skeleton_anon.attacks import suite  # noqa: E402
from skeleton_anon.attacks.data import AttackData  # noqa: E402
from skeleton_anon.models.linear import (LogisticRegression, Standardizer,  # noqa: E402
                                          nearest_neighbour_scores)
from skeleton_anon.data import features as features_lib, splits, transforms  # noqa: E402
from skeleton_anon.data.dataset import load_npz  # noqa: E402
from skeleton_anon.evaluate.fidelity import fidelity  # noqa: E402
from skeleton_anon.evaluate.report import write_json  # noqa: E402
from skeleton_anon.evaluate.utility import within_action_diversity  # noqa: E402

# Joints of the Kinect v1 orders (../shared/data/README.md): hip centre, shoulder centre, left
# hip, right hip; and the encoding length TF (MSRC-12 gestures <= 100 frames, KGBD walks <= 300).
JOINTS = {'msrc12.npz': dict(centre=0, top=2, hip_l=12, hip_r=16, tf=64),
          'kgbd_dev.npz': dict(centre=11, top=1, hip_l=13, hip_r=12, tf=150)}

# (name, file, privacy target, split rule, test fraction, transforms)
AUDITS = (
    ('msrc12/subject', 'msrc12.npz', 'subject', 'file', 0.2,
     ('original', 'canon', 'blend_0.5', 'blend_0.2', 'swap', 'swap_fixed', 'invert_0.2')),
    ('kgbd/subject', 'kgbd_dev.npz', 'subject', 'last_per_subject', 0.2,
     ('original', 'canon', 'blend_0.5', 'blend_0.2', 'swap', 'invert_0.2')),
    ('kgbd/gender', 'kgbd_dev.npz', 'gender', 'by_subject', 1 / 3,
     ('original', 'canon', 'blend_0.5', 'blend_0.2', 'swap', 'invert_0.2')),
)
FEATURE_ATTACKERS = tuple(n for n in suite.FAST if n != 'linkage')
# The inference-time classifiers: weaker regularisation than the suite's attackers' default
# (MSRC-12 action test top-1 0.988 instead of 0.975 at l2 = 1e-2, 100 iterations).
CLASSIFIER_L2 = 1e-4
CLASSIFIER_ITER = 300


def log(msg):
  print(f'[{time.strftime("%H:%M:%S")}] {msg}', file=sys.stderr, flush=True)


# ----------------------------------------------------------------------------------------------
# Front end: dropout fill, canonical frame, retargeting, encoding as directions + root.

def fill_dropouts(x, lengths):
  """Copy of x [N, 1, T, V, 3] with all-zero valid frames replaced by the nearest valid one."""
  x = np.array(x, np.float32)
  zero = ~np.any(x[:, 0] != 0, axis=(2, 3))                                 # [N, T]
  inside = np.arange(x.shape[2])[None] < lengths[:, None]
  for n in np.flatnonzero((zero & inside).any(axis=1)):
    good = np.flatnonzero(~zero[n] & inside[n])
    for t in np.flatnonzero(zero[n] & inside[n]):
      x[n, :, t] = x[n, :, good[np.argmin(np.abs(good - t))]]
  return x


def canonical_frame(x, lengths, j):
  """x centred on the time-mean hip centre, spine to +y, hip vector to +x (per sample)."""
  mask = transforms.valid_mask(x, lengths)[:, 0]                            # [N, T]
  w = mask[..., None].astype(np.float64) / mask.sum(1)[:, None, None]
  p = x[:, 0].astype(np.float64)                                            # [N, T, V, 3]
  mean_of = lambda joint: (p[:, :, joint] * w).sum(1)                       # [N, 3]
  p = p - mean_of(j['centre'])[:, None, None]
  u = mean_of(j['top']) - mean_of(j['centre'])
  u /= np.linalg.norm(u, axis=1, keepdims=True)
  y = np.array([0.0, 1.0, 0.0])
  v = np.cross(u, y)
  s = np.linalg.norm(v, axis=1)
  c = u @ y
  k = v / np.maximum(s, 1e-12)[:, None]
  K = np.zeros((len(x), 3, 3))
  K[:, 0, 1], K[:, 0, 2], K[:, 1, 2] = -k[:, 2], k[:, 1], -k[:, 0]
  K = K - K.transpose(0, 2, 1)
  rot = np.eye(3)[None] + s[:, None, None] * K + (1 - c)[:, None, None] * (K @ K)   # Rodrigues
  p = np.einsum('nij,ntvj->ntvi', rot, p)
  h = mean_of(j['hip_l']) - mean_of(j['hip_r'])
  a = np.arctan2(h[:, 2], h[:, 0])
  ca, sa, zero, one = np.cos(a), np.sin(a), np.zeros(len(x)), np.ones(len(x))
  yaw = np.stack([np.stack([ca, zero, sa], 1), np.stack([zero, one, zero], 1),
                  np.stack([-sa, zero, ca], 1)], 1)                         # [N, 3, 3]
  p = np.einsum('nij,ntvj->ntvi', yaw, p)
  p = np.where(mask[..., None, None], p, 0.0)
  return p[:, None].astype(np.float32)


def encode(x, lengths, layout, tf):
  """[N, 1, tf, V, 3]: unit bone directions and the root's position (data.transforms)."""
  return transforms.direction_encoding(x, lengths, layout, tf)


def decode(packed, out_lengths, num_frames, layout, blen):
  """Skeletons [N, 1, num_frames, V, 3] from encodings, each resampled to out_lengths[n]."""
  return transforms.direction_decoding(packed, out_lengths, num_frames, layout, blen)


# ----------------------------------------------------------------------------------------------
# Inference-time classifiers and the partner draw.

def fit_predict(feats, labels, train):
  """Class-balanced logistic regression (the suite's linear attacker) fitted on the training
  rows of standardised features; predictions for every row."""
  scaler = Standardizer.fit(feats[train])
  model = LogisticRegression.fit(scaler(feats[train]), labels[train], int(labels.max()) + 1,
                                 l2=CLASSIFIER_L2, max_iter=CLASSIFIER_ITER)
  return model.scores(scaler(feats)).argmax(1)


def draw_partners(a_hat, s_hat, bank_idx, bank_action, bank_subject, rng):
  """For each sample, a uniformly random bank index of action a_hat by a person != s_hat."""
  partner = np.empty(len(a_hat), np.int64)
  keys = np.stack([a_hat, s_hat], 1)
  for a, s in np.unique(keys, axis=0):
    rows = np.flatnonzero((a_hat == a) & (s_hat == s))
    cand = bank_idx[(bank_action == a) & (bank_subject != s)]
    if not len(cand):                       # no other person did this action: any other person
      cand = bank_idx[bank_subject != s]
    partner[rows] = rng.choice(cand, len(rows))
  return partner


def invert_blend(released, lengths, layout, tf, bank, alpha):
  """The bank-aware attacker: (recovered encodings, recovered partner bank row) per sample."""
  enc = encode(released, lengths, layout, tf)
  xo = enc.reshape(len(enc), -1).astype(np.float64)
  b = bank.reshape(len(bank), -1).astype(np.float64)
  q = xo - alpha * b.mean(0)
  bs = (1 - alpha) * b
  dist = -2 * q @ bs.T + (bs * bs).sum(1)[None]
  j = dist.argmin(1)
  dj = bank[j]
  root = layout.root
  d_o, d_j = enc.copy(), dj.copy()
  d_o[..., root, :] = 0
  d_j[..., root, :] = 0
  dot = (d_o * d_j).sum(-1, keepdims=True)
  # c * d_o = alpha * d + (1 - alpha) * d_j with |d| = 1, solved for c >= 0.
  c = (1 - alpha) * dot + np.sqrt(np.maximum(((1 - alpha) * dot) ** 2 - (1 - alpha) ** 2
                                             + alpha ** 2, 0))
  rec = (c * d_o - (1 - alpha) * d_j) / alpha
  rec[..., root, :] = (enc[..., root, :] - (1 - alpha) * dj[..., root, :]) / alpha
  return rec.astype(np.float32), j


# ----------------------------------------------------------------------------------------------
# Scoring.

def feature_rows(train_x, train_len, train_y, tests, layout, seed):
  """The suite's six feature attackers of the action task, fitted on (train_x, train_y) and
  scored on each test side {label: (x, lengths, y)}: {label: {attacker: row}}."""
  compute = functools.partial(features_lib.sequence_features, layout=layout,
                              family='body+motion')
  body = features_lib.feature_dim(layout, 'body')
  cols = {'body': slice(0, body), 'motion': slice(body, None), 'body+motion': slice(None)}
  ftr = compute(train_x, train_len)
  fte = {k: compute(x, n) for k, (x, n, _) in tests.items()}
  k = int(train_y.max()) + 1
  out = {label: {} for label in tests}
  for name in FEATURE_ATTACKERS:
    family, method = name.rsplit('_', 1)
    scaler = Standardizer.fit(ftr[:, cols[family]])
    a = scaler(ftr[:, cols[family]])
    model = None if method == 'nn' else LogisticRegression.fit(a, train_y, k)
    for label, (_, _, y) in tests.items():
      b = scaler(fte[label][:, cols[family]])
      scores = (nearest_neighbour_scores(a, train_y, b, k) if model is None
                else model.scores(b))
      out[label][name] = suite.classification_rows('action', name, scores, train_y, y,
                                                   target='subject', seed=seed)[0]
  return out


def best_of(rows, metric):
  """The row with the highest value of `metric` among rows (a list, or a dict of rows)."""
  rows = rows.values() if isinstance(rows, dict) else rows
  rows = [r for r in rows if r['metric'] == metric and r['value'] is not None]
  best = max(rows, key=lambda r: r['value'])
  return {k: best[k] for k in ('attacker', 'metric', 'value', 'ci')}


def run_audit(name, path, target, rule, test_fraction, names, seed):
  t_audit = time.time()
  ds = load_npz(path)
  j = JOINTS[os.path.basename(path)]
  tf = j['tf']
  layout = ds.get_layout()
  split = splits.make_split(ds, rule, seed=seed, test_fraction=test_fraction,
                            privacy_target=target)
  train, test = split == 0, split == 1
  lengths = ds.lengths
  privacy = ds.privacy_labels(target)
  action = ds.action
  multi_action = len(np.unique(action[train])) >= 2
  orig = fill_dropouts(ds.x, lengths)
  canon_raw = canonical_frame(orig, lengths, j)
  blen = transforms.median_bone_lengths(canon_raw[train], lengths[train], layout)
  canon = transforms.retarget(canon_raw, lengths, layout, blen)
  # Camera space, bones at the same lengths: a test side for "train on transformed, test on
  # original" whose bone features are as constant as the transformed training side's.
  orig_ret = transforms.retarget(orig, lengths, layout, blen)
  enc = encode(canon, lengths, layout, tf)
  feats = features_lib.sequence_features(canon, lengths, layout, 'body+motion')
  info = {'rule': rule, 'num_train': int(train.sum()), 'num_test': int(test.sum()),
          'across_people': not np.intersect1d(ds.subject[train], ds.subject[test]).size,
          'encoding_frames': tf}
  # Inference-time predictions (the anonymiser sees no labels of the sequence it changes).
  if multi_action:
    a_hat = fit_predict(feats, action, train)
    info['action_classifier_test_top1'] = float((a_hat[test] == action[test]).mean())
  else:
    a_hat = np.zeros(len(action), action.dtype)
  s_hat = fit_predict(feats, ds.subject, train)
  if not info['across_people']:
    info['identity_classifier_test_top1'] = float((s_hat[test] == ds.subject[test]).mean())
  s_hat[train] = ds.subject[train]              # a training sequence's own person is known
  bank_idx = np.flatnonzero(train)
  log(f'{name}: front end ready in {time.time() - t_audit:.0f} s ({info})')

  def side(x, mask, out_len=None):
    return AttackData(x=x[mask], lengths=(lengths if out_len is None else out_len)[mask],
                      privacy=privacy[mask], action=action[mask], subject=ds.subject[mask])

  results = {'split': info, 'transforms': {}}
  partners = {}
  for tname in names:
    t0 = time.time()
    out_len = lengths
    extra = {}
    if tname == 'original':
      x = orig
    elif tname == 'canon':
      x = canon
    elif tname.startswith(('blend_', 'swap')):
      alpha = float(tname.split('_')[1]) if tname.startswith('blend_') else 0.0
      rng = np.random.default_rng(seed)          # same draw for every alpha
      p = draw_partners(a_hat, s_hat, bank_idx, action[bank_idx], ds.subject[bank_idx], rng)
      partners[alpha] = p
      mixed = alpha * enc + (1 - alpha) * enc[p]
      if tname == 'swap_fixed':
        out_len = np.full(len(lengths), tf, lengths.dtype)
        x = decode(mixed, out_len, tf, layout, blen)
      else:
        x = decode(mixed, lengths, ds.x.shape[2], layout, blen)
    elif tname.startswith('invert_'):
      alpha = float(tname.split('_')[1])
      rng = np.random.default_rng(seed)
      p = draw_partners(a_hat, s_hat, bank_idx, action[bank_idx], ds.subject[bank_idx], rng)
      released = decode(alpha * enc + (1 - alpha) * enc[p], lengths, ds.x.shape[2], layout, blen)
      rec, jstar = invert_blend(released, lengths, layout, tf, enc[bank_idx], alpha)
      extra['partner_recovered'] = float((bank_idx[jstar] == p).mean())
      extra['partner_recovered_test'] = float((bank_idx[jstar] == p)[test].mean())
      x = decode(rec, lengths, ds.x.shape[2], layout, blen)
      extra['recovered_mpjpe_vs_canon_test'] = fidelity(canon[test], x[test], lengths[test],
                                                        layout)['mpjpe']
    else:
      raise ValueError(tname)
    res = suite.run_suite(side(x, train, out_len), side(x, test, out_len), privacy_target=target,
                          layout=layout, attackers='fast', seed=seed, log=lambda line: None)
    row = {'strongest': res['strongest'], 'chance': res['chance'], 'attacks': res['attacks'],
           **extra}
    if target == 'gender':                     # (linkage's AUC is person linkage, not gender)
      row['best_auc'] = best_of([r for r in res['attacks'] if r['attacker'] != 'linkage'],
                                'auc')
    linkage = [r for r in res['attacks'] if r['attacker'] == 'linkage' and r['metric'] == 'auc']
    row['linkage_auc'] = linkage[0] if linkage else None
    if multi_action and tname != 'original':
      tto = feature_rows(x[train], out_len[train], action[train],
                         {'original': (orig[test], lengths[test], action[test]),
                          'original_retargeted': (orig_ret[test], lengths[test], action[test]),
                          'canonical': (canon[test], lengths[test], action[test])},
                         layout, seed)
      row['train_transformed_test_original'] = {k: best_of(v, 'top1') for k, v in tto.items()}
      row['train_transformed_test_original_rows'] = tto
    if tname != 'swap_fixed':                  # (one action, KGBD: diversity of all walks)
      row['diversity_ratio'] = within_action_diversity(
          orig[test], x[test], lengths[test], action[test], layout, blen, seed=seed)['ratio']
      row['fidelity'] = fidelity(orig[test], x[test], lengths[test], layout)
      row['mpjpe_vs_canon'] = fidelity(canon[test], x[test], lengths[test], layout)['mpjpe']
    row['seconds'] = round(time.time() - t0, 1)
    results['transforms'][tname] = row
    s = res['strongest']
    log(f'{name} {tname}: privacy {s["privacy"]["attacker"]} {s["privacy"]["value"]:.3f}'
        + (f', action {s["action"]["value"]:.3f}' if s.get('action') else '')
        + (f', partner recovered {extra["partner_recovered"]:.3f}' if extra else '')
        + f' ({row["seconds"]} s)')
  results['seconds'] = round(time.time() - t_audit, 1)
  return results


# ----------------------------------------------------------------------------------------------
# Tables.

def _v(x, nd=3):
  return '-' if x is None else f'{x:.{nd}f}'


def _ci(r):
  if r is None:
    return '-'
  return f'{r["value"]:.3f} [{r["ci"][0]:.3f}, {r["ci"][1]:.3f}]'


def tables(results):
  lines = []
  for name, res in results.items():
    target = name.split('/')[1]
    sp = res['split']
    first = next(iter(res['transforms'].values()))
    lines += [f'### {name}', '',
              f'Split: {sp["rule"]} ({sp["num_train"]} train / {sp["num_test"]} test, '
              f'{"across people" if sp["across_people"] else "closed set"}); '
              f'privacy chance {first["chance"]["privacy"]:.3f}'
              + (' (balanced accuracy chance 0.5)' if target == 'gender' else '')
              + (f'; action chance {first["chance"]["action"]:.3f}'
                 if first['strongest'].get('action') else '')
              + (f'; inference action classifier test top-1 '
                 f'{sp["action_classifier_test_top1"]:.3f}'
                 if 'action_classifier_test_top1' in sp else '') + '.', '']
    fid_head = ('diversity ratio | RMSE vs original (m) | MPJPE vs original (m) | MPJPE vs '
                'canonical original (m) | bone std over time (m; original) | jitter ratio | s |')
    if target == 'subject' and name.startswith('msrc12'):
      head = ('| transform | strongest identity attacker: top-1 [95% CI] | linkage AUC | '
              'strongest action attacker: top-1 | train transformed, test original: camera '
              'space, retargeted / raw / canonicalised | ' + fid_head)
    elif target == 'subject':
      head = ('| transform | strongest identity attacker: top-1 [95% CI] | linkage AUC | '
              + fid_head)
    else:
      head = ('| transform | strongest gender attacker: balanced accuracy [95% CI] | highest '
              'gender ROC AUC of any attacker [95% CI] | linkage AUC | ' + fid_head)
    lines += [head, '|' + '---|' * (head.count('|') - 1)]
    for tname, r in res['transforms'].items():
      s = r['strongest']
      p = s['privacy']
      label = tname + (f' (partner found for {r["partner_recovered_test"]:.3f} of test '
                       f'sequences)' if 'partner_recovered_test' in r else '')
      fid = r.get('fidelity', {})
      fid_cells = [_v(r.get('diversity_ratio')), _v(fid.get('rmse'), 4),
                   _v(fid.get('mpjpe'), 4), _v(r.get('mpjpe_vs_canon'), 4),
                   (f'{fid["bone_std_changed"]:.4f} ({fid["bone_std_original"]:.4f})'
                    if fid else '-'), _v(fid.get('jitter_ratio'))]
      link = _v(r['linkage_auc']['value']) if r.get('linkage_auc') else '-'
      if target == 'subject' and name.startswith('msrc12'):
        tto = r.get('train_transformed_test_original', {})
        tto_cell = ' / '.join(f'{tto[k]["value"]:.3f}' for k in
                              ('original_retargeted', 'original', 'canonical')) if tto else '-'
        cells = [f'`{p["attacker"]}` {_ci(p)}', link,
                 f'`{s["action"]["attacker"]}` {s["action"]["value"]:.3f}', tto_cell] + fid_cells
      elif target == 'subject':
        cells = [f'`{p["attacker"]}` {_ci(p)}', link] + fid_cells
      else:
        b = r['best_auc']
        cells = [f'`{p["attacker"]}` {_ci(p)}', f'`{b["attacker"]}` {_ci(b)}', link] + fid_cells
      lines.append(f'| {label} | ' + ' | '.join(cells) + f' | {r["seconds"]} |')
    lines.append('')
  return '\n'.join(lines)


def main(argv=None):
  parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
  parser.add_argument('--data_dir', default=os.path.join(ROOT, '..', 'shared', 'data'))
  parser.add_argument('--out', default=os.path.join(ROOT, 'runs', 'transforms'))
  parser.add_argument('--only', default='', help='comma list of audit names to run')
  parser.add_argument('--seed', type=int, default=0)
  args = parser.parse_args(argv)
  start = time.time()
  results = {}
  for name, file, target, rule, fraction, names in AUDITS:
    if args.only and name not in args.only.split(','):
      continue
    path = os.path.join(args.data_dir, file)
    if not os.path.exists(path):
      print(f'skipping {name}: {path} not found (see ../shared/data/README.md)', file=sys.stderr)
      continue
    results[name] = run_audit(name, path, target, rule, fraction, names, args.seed)
  if not results:
    print('no data found; nothing to do', file=sys.stderr)
    return 0
  results['_meta'] = {'seconds': round(time.time() - start, 1), 'seed': args.seed,
                      'command': 'python studies/transforms.py'}
  os.makedirs(args.out, exist_ok=True)
  write_json(results, os.path.join(args.out, 'transforms.json'))
  text = tables({k: v for k, v in results.items() if not k.startswith('_')})
  with open(os.path.join(args.out, 'transforms_tables.md'), 'w') as f:
    f.write(text)
  print(text)
  log(f'total {time.time() - start:.0f} s')
  return 0


if __name__ == '__main__':
  sys.exit(main())
