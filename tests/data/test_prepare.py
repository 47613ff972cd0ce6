"""`python -m skeleton_anon.prepare`: conversion end to end, and errors as one line."""

import os
import pickle
import re
import subprocess
import sys

import numpy as np
import pytest

from skeleton_anon.data import load_npz
from skeleton_anon.errors import ConfigError, DataError, OutputExistsError
from skeleton_anon.prepare import PrepareOptions, prepare

JOINT_TAIL = '270.1 160.3 948.4 503.8 -0.2 0.03 0.97 -0.07 2'


def _skeleton(frames, newline='\n'):
  lines = [str(len(frames))]
  for bodies in frames:
    lines.append(str(len(bodies)))
    for xyz in bodies:
      lines += ['72057594037931101 0 1 1 1 1 0 0.1 -0.1 2', '25']
      lines += [f'{x:.7g} {y:.7g} {z:.7g} {JOINT_TAIL}' for x, y, z in xyz]
  return newline.join(lines) + newline


@pytest.fixture
def ntu_folder(tmp_path):
  """Four NTU files: LF, CRLF, a two-person sample, and a truncated one."""
  rng = np.random.default_rng(0)
  folder = tmp_path / 'skeletons'
  folder.mkdir()
  frames = {}
  def body(t):
    return [rng.normal(size=(25, 3)) + [0, 0, 3] for _ in range(t)]
  frames['S001C001P001R001A001'] = [[b] for b in body(6)]
  frames['S001C002P002R002A002'] = [[b] for b in body(5)]
  frames['S001C003P003R001A050'] = [[a, b] for a, b in zip(body(4), body(4))]
  for name, f in frames.items():
    newline = '\r\n' if name.startswith('S001C002') else '\n'
    (folder / f'{name}.skeleton').write_bytes(_skeleton(f, newline).encode())
  text = _skeleton([[b] for b in body(5)])
  (folder / 'S001C001P004R001A003.skeleton').write_text(text[:len(text) // 2])
  return folder, frames


def _expected(frames):
  """What the file says for body 0: each value as printed, read back as float32."""
  return np.float32([[[float(f'{v:.7g}') for v in joint] for joint in bodies[0]]
                     for bodies in frames])


def test_ntu_folder_with_normalize_none_keeps_the_files_values(ntu_folder, tmp_path):
  folder, frames = ntu_folder
  out = tmp_path / 'ntu.npz'
  opt = PrepareOptions(source='ntu_raw', input=str(folder), output=str(out), normalize='none',
                       max_frames=8, on_error='skip', workers=2, progress=False,
                       split='leakage_safe')
  _, summary = prepare(opt)
  ds = load_npz(out)
  assert ds.meta['normalize'] == 'none'            # recorded in the file: raw sensor values
  assert list(ds.names) == sorted(frames)
  assert ds.x.shape == (3, 2, 8, 25, 3)
  for i, name in enumerate(ds.names):
    t = len(frames[name])
    assert ds.lengths[i] == t
    bodies = [_expected([[f[k]] for f in frames[name]]) for k in range(len(frames[name][0]))]
    kept = ds.x[i, :len(bodies), :t]
    if len(bodies) == 2 and not np.array_equal(kept[0], bodies[0]):
      bodies = bodies[::-1]                        # the more moving body comes first
    np.testing.assert_array_equal(kept, np.stack(bodies))
    assert not ds.x[i, :, t:].any()
  assert ds.x[2, 1].any()                          # the two-person sample keeps both
  np.testing.assert_array_equal(ds.replication, [1, 2, 1])
  assert ds.split is not None
  assert 'samples: 3' in summary and 'skipped: 1' in summary
  assert 'S001C001P004R001A003: truncated' in summary
  with pytest.raises(DataError, match='truncated'):
    prepare(PrepareOptions(source='ntu_raw', input=str(folder), output=str(tmp_path / 'b.npz'),
                           progress=False))
  assert not (tmp_path / 'b.npz').exists()


def test_default_agcn_normalisation_and_memmap(ntu_folder, tmp_path):
  folder, _ = ntu_folder
  out = tmp_path / 'agcn.npz'
  opt = PrepareOptions(source='ntu_raw', input=str(folder), output=str(out), max_frames=8,
                       on_error='skip', progress=False, memmap_threshold=0)
  prepare(opt)
  ds = load_npz(out)
  assert ds.meta['normalize'] == 'agcn'
  # Centred on person 0's spine-mid joint, frame by frame.
  np.testing.assert_allclose(ds.x[:, 0, :, 1], 0, atol=1e-6)
  assert not [p for p in tmp_path.iterdir() if p.name.startswith('.')]


def _msg3d(tmp_path, n, prefix, performer0):
  data = np.random.default_rng(n).normal(size=(n, 3, 6, 25, 2)).astype(np.float32)
  names = [f'S001C001P{performer0 + i:03d}R001A001.skeleton' for i in range(n)]
  np.save(tmp_path / f'{prefix}.npy', data)
  with open(tmp_path / f'{prefix}.pkl', 'wb') as f:
    pickle.dump((names, [i % 3 for i in range(n)]), f)
  return data


def test_msg3d_train_and_test_files(tmp_path):
  train = _msg3d(tmp_path, 3, 'train', 1)
  test = _msg3d(tmp_path, 2, 'val', 1)
  out = tmp_path / 'x.npz'
  prepare(PrepareOptions(
      source='msg3d', input=f'{tmp_path}/train.npy,{tmp_path}/val.npy',
      labels=f'{tmp_path}/train.pkl,{tmp_path}/val.pkl', output=str(out), normalize='none',
      max_frames=6, progress=False))
  ds = load_npz(out)
  assert ds.meta['normalize'] is None              # MS-G3D arrays do not say how they were made
  np.testing.assert_array_equal(ds.split, [0, 0, 0, 1, 1])
  np.testing.assert_array_equal(ds.x[3:], test.transpose(0, 4, 2, 3, 1))
  np.testing.assert_array_equal(ds.x[:3], train.transpose(0, 4, 2, 3, 1))


def test_pyskl_and_npz_sources(tmp_path):
  kp = np.random.default_rng(1).normal(size=(1, 12, 25, 3)).astype(np.float32)
  anns = [{'frame_dir': f'S001C001P00{i}R001A001', 'label': i, 'total_frames': 12,
           'keypoint': kp + i} for i in range(1, 4)]
  with open(tmp_path / 'a.pkl', 'wb') as f:
    pickle.dump({'split': {}, 'annotations': anns}, f)
  _, summary = prepare(PrepareOptions(source='pyskl', input=str(tmp_path / 'a.pkl'),
                                      normalize='none', output=str(tmp_path / 'a.npz'),
                                      max_frames=10, progress=False))
  assert 'cropped: 3' in summary
  ds = load_npz(tmp_path / 'a.npz')
  np.testing.assert_array_equal(ds.x[1, 0], kp[0, :10] + 2)
  _, summary = prepare(PrepareOptions(source='npz', input=str(tmp_path / 'a.npz'),
                                      output=str(tmp_path / 'b.npz'), max_frames=16,
                                      normalize='pyskl', split='by_subject', progress=False))
  again = load_npz(tmp_path / 'b.npz')
  assert again.x.shape[2] == 16 and again.split is not None and 'cropped: 0' in summary


def test_synthetic_source(tmp_path):
  out = tmp_path / 's.npz'
  _, summary = prepare(PrepareOptions(
      source='synthetic', output=str(out), num_subjects=3, num_actions=2, repetitions=2,
      max_frames=16, max_persons=1, seed=5, progress=False, split='leakage_safe'))
  ds = load_npz(out)
  assert ds.num_samples == 3 * 2 * 2 * 3 and ds.x.shape[2] == 16
  assert ds.camera is not None and ds.replication is not None and ds.gender is not None
  assert 'subjects: 3' in summary


def _cli(*args):
  env = dict(os.environ, PYTHONPATH=os.getcwd())
  return subprocess.run([sys.executable, '-m', 'skeleton_anon.prepare', *args],
                        capture_output=True, text=True, env=env, timeout=120)


def test_cli_errors_are_one_line(ntu_folder, tmp_path):
  folder, _ = ntu_folder
  out = tmp_path / 'cli.npz'
  res = _cli('--source=ntu_raw', f'--input={tmp_path}/nope', f'--output={out}')
  assert res.returncode == 1
  assert res.stderr.strip() == f'error: {tmp_path}/nope: input does not exist'
  res = _cli('--source=ntu_raw', f'--input={folder}', f'--output={out}', '--normalize=none',
             '--max_frames=8', '--workers=1', '--noprogress')
  assert res.returncode == 1 and 'Traceback' not in res.stderr
  (line,) = res.stderr.strip().splitlines()
  assert re.fullmatch(f'error: {folder}/S001C001P004R001A003.skeleton: truncated: frame 2 body 0 '
                      r'has \d+ of 25 joint lines', line)
  res = _cli('--source=ntu_raw', f'--input={folder}', f'--output={out}', '--on_error=skip',
             '--max_frames=8', '--noprogress')
  assert res.returncode == 0, res.stderr
  assert 'samples: 3' in res.stdout and out.exists()
  res = _cli('--source=ntu_raw', f'--input={folder}', f'--output={out}')
  assert res.returncode == 1
  assert res.stderr.strip() == f'error: {out}: output already exists; pass --overwrite to replace it'


@pytest.mark.parametrize('change,message', [
    (lambda a: a.pop('subject'), "missing required key 'subject'"),
    (lambda a: a.update(x=a['x'].astype(np.float64)), "key 'x': x must be float32"),
    (lambda a: a.update(action=np.int32([0, -1])), "key 'action': sample 1: action = -1"),
    (lambda a: a.update(lengths=np.int32([2])), r'lengths must have shape \[2\]'),
    (lambda a: a.update(layout=np.asarray('foo')), "unknown layout 'foo'"),
])
def test_bad_npz_input_is_one_clear_error(tmp_path, change, message):
  arrays = dict(x=np.ones((2, 1, 2, 25, 3), np.float32), lengths=np.int32([2, 2]),
                action=np.int32([0, 1]), subject=np.int32([0, 1]), layout=np.asarray('ntu25'))
  change(arrays)
  np.savez(tmp_path / 'in.npz', **arrays)
  with pytest.raises(DataError, match=message) as info:
    prepare(PrepareOptions(source='npz', input=str(tmp_path / 'in.npz'),
                           output=str(tmp_path / 'out.npz'), progress=False))
  assert 'in.npz' in str(info.value) and not (tmp_path / 'out.npz').exists()


def test_option_errors(tmp_path):
  with pytest.raises(ConfigError, match='needs --labels'):
    prepare(PrepareOptions(source='msg3d', input=str(tmp_path), output=str(tmp_path / 'o.npz')))
  with pytest.raises(ConfigError, match='--input is required'):
    prepare(PrepareOptions(source='ntu_raw', output=str(tmp_path / 'o.npz')))
  (tmp_path / 'o.npz').write_bytes(b'old')
  with pytest.raises(OutputExistsError):
    prepare(PrepareOptions(source='synthetic', output=str(tmp_path / 'o.npz')))
  assert (tmp_path / 'o.npz').read_bytes() == b'old'


def test_custom_layout_rotates_by_the_joints_it_names(tmp_path):
  """A custom skeleton with --norm_joints is normalised exactly as the registered layout whose
  joints those are; without them it is only centred; bad joints are one line."""
  import dataclasses
  from skeleton_anon.data import synthetic
  from skeleton_anon.data.dataset import save_npz
  from skeleton_anon.data.layouts import get_layout
  ntu = get_layout('ntu25')
  ds = synthetic.make_synthetic(num_subjects=2, num_actions=1, repetitions=1, num_views=2,
                                num_frames=8, seed=0)
  save_npz(ds, tmp_path / 'ntu.npz')
  save_npz(dataclasses.replace(ds, layout='custom', edges=ntu.edges), tmp_path / 'custom.npz')

  def run(name, out, **kw):
    prepare(PrepareOptions(source='npz', input=str(tmp_path / name), output=str(tmp_path / out),
                           max_frames=8, normalize='agcn', progress=False, **kw))
    return load_npz(tmp_path / out).x

  roles = f'{ntu.norm_center},{ntu.norm_zaxis[0]},{ntu.norm_zaxis[1]},' \
          f'{ntu.norm_xaxis[0]},{ntu.norm_xaxis[1]}'
  np.testing.assert_allclose(run('custom.npz', 'c.npz', norm_joints=roles),
                             run('ntu.npz', 'n.npz'), atol=1e-5)
  centred_only = run('custom.npz', 'plain.npz')
  assert not np.allclose(centred_only, run('ntu.npz', 'n2.npz'), atol=1e-3)
  with pytest.raises(ConfigError, match='--norm_joints must be 5 joint indices'):
    run('custom.npz', 'bad.npz', norm_joints='1,2,3')
  with pytest.raises(ConfigError, match='for custom layouts'):
    run('ntu.npz', 'bad2.npz', norm_joints=roles)
