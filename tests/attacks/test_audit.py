"""The audit command: end to end on a tiny file, and every bad input as one line, exit 1."""

import dataclasses
import json
import os
import subprocess
import sys

import numpy as np
import pytest

from skeleton_anon import audit
from skeleton_anon.data.dataset import save_npz

CONTRACT = {'data', 'privacy_target', 'split', 'chance', 'attacks', 'strongest', 'timing'}


@pytest.fixture(scope='module')
def files(synthetic, tmp_path_factory):
  """original.npz, changed.npz (a noisy copy, same names) and variants with bad labels."""
  root = tmp_path_factory.mktemp('audit')
  paths = {}

  def save(name, ds):
    paths[name] = str(root / f'{name}.npz')
    save_npz(ds, paths[name])

  save('original', synthetic)
  rng = np.random.default_rng(0)
  mask = synthetic.x != 0
  noisy = np.where(mask, synthetic.x + 0.01 * rng.normal(size=synthetic.x.shape), 0)
  save('changed', synthetic.with_x(noisy.astype(np.float32)))
  save('no_gender', dataclasses.replace(synthetic, gender=None))
  save('one_gender', dataclasses.replace(synthetic, gender=np.zeros_like(synthetic.gender)))
  save('no_test', dataclasses.replace(synthetic, split=np.zeros(synthetic.num_samples, np.int8)))
  renamed = dataclasses.replace(synthetic, names=np.asarray([f'other{i}' for i in
                                                             range(synthetic.num_samples)]))
  save('renamed', renamed)
  paths['root'] = str(root)
  return paths


def test_audit_end_to_end_with_reference(files):
  out = os.path.join(files['root'], 'out')
  result = audit.audit(files['changed'], 'subject', out, reference=files['original'],
                       attackers='body_nn,motion_linear,linkage', log=lambda line: None)
  with open(os.path.join(out, 'audit.json')) as f:
    saved = json.load(f)
  assert CONTRACT | {'fidelity'} <= set(saved) and saved['strongest'] == result['strongest']
  assert set(saved['split']) >= {'rule', 'num_train', 'num_test'}
  assert set(saved['chance']) >= {'action', 'privacy'}
  for row in saved['attacks']:
    assert set(row) >= {'task', 'attacker', 'family', 'metric', 'value', 'ci'}
    assert row['task'] in ('privacy', 'action') and len(row['ci']) == 2
  assert {r['metric'] for r in saved['attacks'] if r['attacker'] == 'linkage'} == {'auc', 'eer'}
  assert set(saved['strongest']['privacy']) >= {'attacker', 'metric', 'value'}
  fid = saved['fidelity']
  assert 0.005 < fid['rmse'] < 0.015 and fid['mpjpe'] > fid['rmse'] and fid['jitter_ratio'] > 1
  assert fid['num_paired'] == 72 and fid['bone_length_abs'] > 0
  # Utility: trained on the noisy copy or on the original, tested on the original test split.
  best = saved['utility']['train_on_anonymized']['best']
  assert saved['utility']['train_on_anonymized']['test_data'] == 'original'
  assert best['original'] > 0.5 and abs(best['anonymized'] - best['original']) < 0.2
  for name in ('audit.md', 'plots/attackers.png', 'plots/cmc.png'):
    assert os.path.getsize(os.path.join(out, name)) > 0
  with open(os.path.join(out, 'audit.md')) as f:
    text = f.read()
  assert text.startswith(f'# Audit of `{files["changed"]}`\n\n- **Strongest attacker')
  assert 'tested on the original' in text


def _cli(*args):
  env = dict(os.environ, PYTHONPATH=os.getcwd())
  return subprocess.run([sys.executable, '-m', 'skeleton_anon.audit', *args],
                        capture_output=True, text=True, env=env, timeout=120)


@pytest.mark.parametrize('data,target,extra,message', [
    ('no_test', 'subject', [], "puts all 72 samples in train"),
    ('one_gender', 'gender', [], 'single gender'),
    ('no_gender', 'gender', [], "needs a 'gender' array"),
    ('changed', 'subject', ['--reference={renamed}'], 'sample names are not in'),
    ('missing', 'subject', [], 'file does not exist'),
    ('text', 'subject', [], "unsupported input format '.txt'"),
    ('broken', 'subject', [], 'not a readable .npz file'),
    ('changed', 'subject', ['--out={root}'], 'output already exists; pass --overwrite'),
])
def test_bad_input_is_one_line_and_exit_1(files, data, target, extra, message):
  root = files['root']
  special = {'missing': os.path.join(root, 'missing.npz'), 'text': os.path.join(root, 'x.txt'),
             'broken': os.path.join(root, 'broken.npz')}
  with open(special['text'], 'w') as f:
    f.write('x')
  with open(special['broken'], 'wb') as f:
    f.write(b'PK\x03\x04 not really a zip')
  path = special.get(data, files.get(data))
  args = [f'--data={path}', f'--privacy_target={target}', f'--out={root}/never']
  args += [a.format(**files) for a in extra]
  res = _cli(*args)
  assert res.returncode == 1, res.stderr
  (line,) = res.stderr.strip().splitlines()
  assert line.startswith('error: ') and message in line and 'Traceback' not in res.stderr
  assert not os.path.exists(f'{root}/never')


def test_unknown_attacker_is_one_line(files, capsys):
  from skeleton_anon.errors import ConfigError
  with pytest.raises(ConfigError, match="unknown attacker"):
    audit.audit(files['original'], 'subject', os.path.join(files['root'], 'o2'),
                attackers='body_nn,xyz')
