"""report.json / report.md, the plots, the sweep command and the skeleton pictures."""

import json
import os

import numpy as np
import pytest
from PIL import Image

from skeleton_anon.data.layouts import get_layout
from skeleton_anon.errors import OutputExistsError
from skeleton_anon.evaluate import plots, render, report as report_lib, sweep


def _report(privacy_drop=0.5, ensemble=None):
  rows = []
  for data, sigma, act, prv in [('original', None, 0.9, 0.8),
                                ('anonymized', None, 0.85, 0.8 - privacy_drop),
                                ('retarget', None, 0.8, 0.5),
                                ('noise', 0.01, 0.88, 0.75), ('noise', 0.1, 0.3, 0.2)]:
    roles = ['trained_against', 'holdout_seed', 'holdout_arch']
    if data == 'anonymized':
      roles.append('retrained')
    if data in ('noise', 'retarget'):
      roles = roles[1:]
    for role in roles:
      rows.append(report_lib.evaluation_row(data=data, sigma=sigma, task='action', model='stgcn',
                                            seed=3, role=role, top1=act, top5=0.99))
      rows.append(report_lib.evaluation_row(data=data, sigma=sigma, task='privacy',
                                            model='stgcn', seed=4, role=role, top1=prv,
                                            top5=None))
  return report_lib.build_report(
      dataset={'path': 'd.npz', 'num_train': 1000, 'num_test': 500, 'privacy_target': 'gender'},
      chance={'action': 0.1, 'privacy': 0.6}, evaluations=rows,
      recon_rmse={'anonymized': 0.03, 'retarget': 0.02,
                  'noise': [{'sigma': 0.01, 'rmse': 0.01}, {'sigma': 0.1, 'rmse': 0.1}]},
      timing={'evaluate': 1.5},
      agreement={'action': {'models': ['a', 'b'], 'matrix': [[1.0, 0.9], [0.9, 1.0]]}},
      run={'ensemble': ensemble} if ensemble else None)


def test_evaluation_row_rejects_bad_vocabulary():
  with pytest.raises(ValueError, match='role'):
    report_lib.evaluation_row(data='original', task='action', model='m', seed=0,
                              role='white_box', top1=0.5, top5=None)
  with pytest.raises(ValueError, match='sigma'):
    report_lib.evaluation_row(data='noise', task='action', model='m', seed=0,
                              role='holdout_seed', top1=0.5, top5=None)
  with pytest.raises(ValueError, match='data'):
    report_lib.evaluation_row(data='blurred', task='action', model='m', seed=0,
                              role='holdout_seed', top1=0.5, top5=None)


def test_report_json_and_markdown(tmp_path):
  report = _report()
  report['evaluations'][0]['top1'] = float('nan')        # undefined score -> null, valid JSON
  report_lib.write_report(report, tmp_path)
  with open(tmp_path / 'report.json') as f:
    loaded = json.load(f)
  assert list(loaded)[:5] == ['dataset', 'chance', 'evaluations', 'recon_rmse', 'timing']
  assert loaded['evaluations'][0]['top1'] is None
  assert {e['data'] for e in loaded['evaluations']} == {'original', 'anonymized', 'noise',
                                                        'retarget'}
  assert {e['role'] for e in loaded['evaluations'] if e['data'] == 'anonymized'} == set(
      report_lib.ROLES)
  summary = report_lib.summarize(_report())
  assert summary['anonymized']['privacy'] == pytest.approx(0.3)
  assert summary['anonymized_retrained']['privacy'] == pytest.approx(0.3)
  assert summary['noise'][1] == {'sigma': 0.1, 'action': pytest.approx(0.3),
                                 'privacy': pytest.approx(0.2)}
  md = (tmp_path / 'report.md').read_text()
  for heading in ('## Headline', '## Leakage of the original data',
                  '## After anonymization, by role', '## Baselines',
                  '## Agreement between action classifiers'):
    assert heading in md
  assert '| anonymized | 85.0 | 30.0 | 0.0300 |' in md
  assert '| noise sigma=0.1 | 30.0 | 20.0 | 0.1000 |' in md
  assert 'chance (majority class) | 10.0 | 60.0' in md
  # No temporary files left behind by the atomic writes.
  assert sorted(os.listdir(tmp_path)) == ['report.json', 'report.md']


def test_report_records_the_differential_privacy_of_the_fit(tmp_path):
  plain = _report()
  assert plain['differential_privacy'] == {'private': False}
  report_lib.write_report(plain, tmp_path)
  assert 'privacy rests on the measured attackers' in (tmp_path / 'report.md').read_text()
  guarantee = {'private': True, 'epsilon': 8.0, 'spent_epsilon': 8.0, 'delta': 1e-5,
               'unit': 'person', 'adjacency': 'add or remove one person',
               'accountant': 'exact Gaussian mechanism', 'noise_multiplier': 0.6}
  plain['differential_privacy'] = guarantee
  report_lib.write_report(plain, tmp_path)
  assert json.load(open(tmp_path / 'report.json'))['differential_privacy'] == guarantee
  assert '(8, 1e-05)-DP with one person as the unit' in (tmp_path / 'report.md').read_text()
  # Train on anonymized, test on original: the retrained networks beside the suite's number.
  plain['strongest'] = {'anonymized': {'privacy': {'attacker': 'body_nn', 'metric': 'top1',
                                                   'value': 0.6}}}
  plain['utility'] = {'train_on_anonymized': {'best': {'original': 0.9, 'anonymized': 0.8},
                                              'retrained_banks': [{'model': 'sgn', 'seed': 300,
                                                                   'top1': 0.75}]}}
  report_lib.write_report(plain, tmp_path)
  text = (tmp_path / 'report.md').read_text()
  assert 'tested on the original test data: sgn seed 300 75.0' in text


def test_write_json_refuses_existing_without_overwrite(tmp_path):
  path = tmp_path / 'x.json'
  report_lib.write_json({'a': 1}, path)
  with pytest.raises(OutputExistsError):
    report_lib.write_json({'a': 2}, path, overwrite=False)
  assert json.loads(path.read_text()) == {'a': 1}


def _open_png(path):
  with Image.open(path) as image:
    assert image.format == 'PNG'
    return image.size


def test_plots_and_sweep_cli(tmp_path):
  w, h = _open_png(plots.plot_tradeoff(_report(), tmp_path / 'tradeoff.png'))
  assert w > 600 and h > 300
  history = [{'epoch': e, 'train/action_acc': 0.5 + 0.1 * e, 'val/privacy_acc': 0.9 - 0.1 * e,
              'train/recon_rmse': 0.01 * e, 'loss': 1.0 / e} for e in range(1, 4)]
  assert _open_png(plots.plot_training_curves(history, tmp_path / 'curves.png'))[0] > 600
  with pytest.raises(ValueError):
    plots.plot_training_curves([], tmp_path / 'none.png')
  runs = []
  for k in (1, 2, 3):
    run = tmp_path / f'run{k}'
    run.mkdir()
    report_lib.write_report(_report(privacy_drop=0.1 * k, ensemble={'action': k, 'privacy': k}),
                            run)
    runs.append(str(run))
  reports, labels = sweep.gather(runs)
  assert labels == ['1a1p', '2a2p', '3a3p']
  out = tmp_path / 'sweep.png'
  assert sweep.main(['--runs', *runs, '--out', str(out)]) == 0
  assert _open_png(out)[0] > 300
  assert sweep.main(['--runs', str(tmp_path / 'missing'), '--out', str(out)]) == 1


def test_render_strip_and_gif(tmp_path, make_skeletons):
  layout = get_layout('ntu25')
  x, lengths, _ = make_skeletons(n=2, m=2, t=12)
  anonymized = x * 1.1
  paths = render.render_samples(x, anonymized, lengths, layout, tmp_path, [0, 1],
                                names=np.array(['S001A002', 'S003/../A004']))
  assert len(paths) == 4 and all(os.path.dirname(p) == str(tmp_path) for p in paths)
  strip = [p for p in paths if p.endswith('.png')][0]
  w, h = _open_png(strip)
  assert w > h > 100                      # five frames in a row, two rows
  gif = [p for p in paths if p.endswith('.gif')][0]
  with Image.open(gif) as image:
    assert image.format == 'GIF' and image.size == (400, 200)
    assert image.n_frames == len(render.frame_indices(int(lengths[0]), 60)) == 12
    image.seek(3)
    # Something other than the white background was drawn in both halves.
    pixels = np.asarray(image.convert('RGB'))
    assert (pixels[:, :200] != 255).any() and (pixels[:, 200:] != 255).any()


def test_projection_axes_finds_vertical():
  layout = get_layout('ntu25')
  x = np.zeros((1, 4, 25, 3), np.float32)
  # A body 1.7 tall along -y (upside-down camera), 0.4 wide along z, thin along x.
  x[0, :, :, 1] = -np.linspace(0, 1.7, 25)
  x[0, :, :, 2] = np.linspace(0, 0.4, 25)[::-1]
  x[0, :, :, 0] = 0.01
  h, v, sign = render.projection_axes(x, 4, layout)
  assert (h, v) == (2, 1)
  assert sign == -1.0                     # spine_mid (joint 1) lies below spine_base in y
