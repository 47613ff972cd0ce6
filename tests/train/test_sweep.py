"""The Table 5 and ensemble-size sweep configs, and the sweep runner (points, sharing, plot)."""

import json

import jax
import ml_collections
import numpy as np
import pytest

from skeleton_anon import sweep
from skeleton_anon.errors import ConfigError
from skeleton_anon import pipeline
from test_configs_table4 import load_config, tiny

TABLE5 = [(0.0067, 0.0067), (0.0333, 0.0333), (0.1000, 0.0067), (0.1667, 0.0067),
          (0.2333, 0.0067), (0.3000, 0.0067)]


def test_table5_sweep_has_one_adversarial_k2_run_per_row():
  points = sweep.sweep_points(load_config('table5_sweep'))
  assert [(p.config.anonymize.alpha, p.config.anonymize.beta) for p in points] == TABLE5
  for p in points:
    a = p.config.anonymize
    assert (a.algorithm, a.k, a.lr, a.privacy_lr, a.momentum) == ('adversarial', 2, 0.0018,
                                                                  0.0030, 0.9)
    assert 'sweep' not in p.config
  assert len({p.name for p in points}) == 6
  # Every run trains the same classifiers, so all of them come from the first run.
  shared = sweep.shareable_stages(points[0].config, points[3].config)
  assert {'action', 'privacy'} <= set(shared)
  assert set(shared) == set(sweep._pretrain_checkpoints(points[3].config))


def test_ensemble_size_sweep_uses_table4_rows_and_shares_no_trained_against_bank():
  points = sweep.sweep_points(load_config('ensemble_size_sweep'))
  assert [p.name for p in points] == ['1a1p', '2a2p', '3a3p']
  assert [len(p.config.classifiers.privacy.seeds) for p in points] == [1, 2, 3]
  assert [(p.config.anonymize.lr, p.config.anonymize.batch_size) for p in points] == [
      (0.00075, 10), (0.0006, 8), (0.0006, 12)]
  assert [p.config.evaluate.holdout_seeds.privacy for p in points] == [[103]] * 3
  shared = sweep.shareable_stages(points[0].config, points[2].config)
  assert 'action' not in shared and 'privacy' not in shared
  # A point never takes anything from a run on other data.
  same_rows = sweep.sweep_points(load_config('table5_sweep'))
  other_data = same_rows[1].config
  other_data.data.max_frames = 50
  assert sweep.shareable_stages(same_rows[0].config, other_data) == []


def _only_points(points):
  def change(section):
    section.names = []
    section.points = points
  return change


@pytest.mark.parametrize('change, message', [
    (_only_points([[0.1, 0.1], [0.1]]), 'point 1 has 1 values for 2 parameters'),
    (lambda s: setattr(s, 'parameters', ['anonymize.alfa', 'anonymize.beta']),
     "no key 'alfa'"),
    (_only_points([['high', 0.1]]), "'anonymize.alpha'"),
    (lambda s: setattr(s, 'names', ['a', 'a', 'b', 'c', 'd', 'e']), 'unique'),
    (lambda s: setattr(s, 'names', ['a']), 'sweep.names has 1 entries for 6 points'),
])
def test_bad_sweep_sections_are_one_line_config_errors(change, message):
  c = load_config('table5_sweep')
  change(c.sweep)
  with pytest.raises(ConfigError, match=message) as info:
    sweep.sweep_points(c)
  assert '\n' not in str(info.value)


def test_plain_config_is_refused_by_the_sweep_runner():
  with pytest.raises(ConfigError, match='no `sweep` section'):
    sweep.sweep_points(load_config('etri_res_adv'))


def _tiny_sweep() -> ml_collections.ConfigDict:
  """Table 5's first two points on tiny data, with a short evaluation."""
  c = tiny(load_config('table5_sweep'), 'etri')
  for task in ('action', 'privacy'):
    c.pretrain[task].epochs = 1
    c.pretrain[task].batch_size = 32
    c.evaluate.retrained[task] = []
  c.evaluate.holdout_seeds = ml_collections.ConfigDict(dict(action=[3], privacy=[103]))
  c.evaluate.noise_sigmas = [0.05]
  c.evaluate.render_samples = []
  c.export.enabled = False
  c.sweep.points = c.sweep.points[:2]
  c.sweep.names = c.sweep.names[:2]
  return c


def test_sweep_runs_each_point_reuses_identical_banks_and_plots(tmp_path):
  runs = []

  def run_fn(config, workdir, mesh=None):
    runs.append(pipeline.run(config, workdir, mesh=mesh))
    return runs[-1]

  summary = sweep.run_sweep(_tiny_sweep(), str(tmp_path), run_fn=run_fn)
  first, second = runs
  names = [p['name'] for p in summary['points']]
  assert names == ['alpha0.0067_beta0.0067', 'alpha0.0333_beta0.0333']
  reused = summary['points'][1]['reused_pretrained']
  assert reused and 'action' in reused and 'privacy' in reused
  assert (second.config.anonymize.alpha, second.config.anonymize.beta) == (0.0333, 0.0333)
  # The second run's classifiers are the first run's, bit for bit, without training them again.
  for name in ('action', 'privacy', 'action_holdout_seed', 'privacy_holdout_seed'):
    jax.tree.map(lambda a, b: np.testing.assert_array_equal(np.asarray(a), np.asarray(b)),
                 first.banks[name].variables, second.banks[name].variables)
  for point in names:
    assert (tmp_path / point / 'report.json').exists()
  with open(tmp_path / 'sweep.png', 'rb') as f:
    assert f.read(8) == b'\x89PNG\r\n\x1a\n'
  stored = json.loads((tmp_path / 'sweep.json').read_text())
  assert stored['plot'] == str(tmp_path / 'sweep.png')
  assert stored['points'][1]['overrides'] == {'anonymize.alpha': 0.0333, 'anonymize.beta': 0.0333}
  for run in runs:
    if run.io.writer is not None:
      run.io.writer.close()
