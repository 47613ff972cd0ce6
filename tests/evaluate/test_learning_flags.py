"""Judges that did not learn are flagged and left out (issue 20), and intervals are by people."""

import os
import sys

import ml_collections
import numpy as np

sys.path.insert(0, os.path.join(os.path.dirname(__file__), '..', 'train'))

from helpers import random_arrays, tiny_bank  # noqa: E402
from skeleton_anon.evaluate import metrics, plots, report as report_lib, scoring  # noqa: E402
from skeleton_anon.pipeline.attack_evaluation import judge_neural_attackers  # noqa: E402
from skeleton_anon.train import parallel, pretrain  # noqa: E402


def _learnable(n, seed):
  arrays = random_arrays(n=n, seed=seed, num_actions=3)
  arrays['x'][:, 0, :, 0, 0] += 3.0 * arrays['action'][:, None]
  return arrays


def _suite_row(task, value, chance, attacker='motion_nn', data='original'):
  return {'data': data, 'task': task, 'attacker': attacker, 'family': attacker,
          'metric': 'top1', 'value': value, 'ci': [value, value], 'chance': chance}


def test_untrained_classifier_is_flagged_and_kept_out_of_the_headline(tmp_path):
  train, test = _learnable(96, 0), _learnable(60, 1)
  mesh = parallel.make_mesh()
  predict = lambda bank, x, lengths: pretrain.predict_logits(bank.model, bank.variables, x,
                                                             lengths, mesh=mesh)
  trained = tiny_bank(3, [0], train['x'])
  cfg = ml_collections.ConfigDict(dict(epochs=15, batch_size=16, lr=0.1, weight_decay=0.0))
  result = pretrain.train_bank_variables(
      trained.model, trained.variables, {'x': train['x'], 'lengths': train['lengths'],
                                         'label': train['action']}, cfg,
      mesh=mesh, checkpoint_dir=str(tmp_path / 'c'), seed=0, name='trained')
  trained.variables, trained.role = result.states['bank'].variables, 'holdout_seed'
  untrained = tiny_bank(3, [1], train['x'])            # deliberately never trained
  untrained.role = 'holdout_arch'
  banks = {'action_holdout_seed': trained, 'action_holdout_arch_tiny': untrained}
  labels = {'action': test['action']}
  people = np.arange(60) % 6
  rows = []
  for data, x in (('original', test['x']), ('anonymized', np.zeros_like(test['x']))):
    rows += scoring.score_banks(banks, predict, x, test['lengths'], labels, data=data,
                                groups=people)[0]
  top1 = {r['bank']: r['top1'] for r in rows if r['data'] == 'original'}
  assert top1['action_holdout_seed'] > 0.9              # the trained judge learned
  chance = float(np.mean(test['action'] == np.bincount(test['action']).argmax()))
  report = report_lib.build_report(
      dataset={'path': 'x.npz', 'num_train': 96, 'num_test': 60, 'privacy_target': 'subject'},
      chance={'action': chance, 'privacy': 0.5}, evaluations=rows,
      recon_rmse={'anonymized': 1.0, 'noise': []}, timing={},
      attacks={'attacks': [_suite_row('action', 1.0, chance)], 'strongest': {}, 'chance': {}})
  flagged = report['learning']['flagged']
  assert [(f['bank'], f['seed']) for f in flagged] == [('action_holdout_arch_tiny', 1)]
  assert all(r['learned'] is False for r in rows if r['bank'] == 'action_holdout_arch_tiny')
  summary = report_lib.summarize(report)
  # The headline is the learned judge alone, on both versions of the data.
  assert summary['original']['action'] == top1['action_holdout_seed']
  assert summary['left_out'][0]['bank'] == 'action_holdout_arch_tiny'
  text = report_lib.render_markdown(report)
  assert 'Left out, did not learn:** `action_holdout_arch_tiny`' in text
  # Every row carries an interval by people.
  for r in rows:
    assert len(r['ci']) == 2 and r['ci'][0] - 1e-9 <= r['top1'] <= r['ci'][1] + 1e-9, r


def test_no_network_learned_the_plot_falls_back_to_the_suite(tmp_path):
  rows = [report_lib.evaluation_row(data=d, task=t, model='sgn', seed=0, role='holdout_seed',
                                    top1=c, top5=None, bank=f'{t}_holdout_seed')
          for d in ('original', 'anonymized') for t, c in (('action', 0.1), ('privacy', 0.1))]
  strongest = {'original': {'action': {'value': 0.95}, 'privacy': {'value': 0.9}},
               'anonymized': {'action': {'value': 0.9}, 'privacy': {'value': 0.12}}}
  suite = [_suite_row('action', 0.95, 0.1), _suite_row('privacy', 0.9, 0.1, 'body_nn')]
  report = report_lib.build_report(
      dataset={'path': 'x.npz', 'num_train': 500, 'num_test': 500, 'privacy_target': 'subject'},
      chance={'action': 0.1, 'privacy': 0.1}, evaluations=rows,
      recon_rmse={'anonymized': 1.0, 'noise': []}, timing={},
      attacks={'attacks': suite, 'strongest': strongest, 'chance': {}})
  summary = report_lib.summarize(report)
  # Chance-level networks are never presented as privacy: the headline has no value at all.
  assert summary['anonymized'] == {'action': None, 'privacy': None}
  assert len(report['learning']['flagged']) == 2
  assert plots.suite_points(report['strongest'])['anonymized'] == {'action': 0.9,
                                                                   'privacy': 0.12}
  assert os.path.exists(plots.plot_tradeoff(report, tmp_path / 'tradeoff.png'))


def test_retrained_attacker_is_judged_by_its_recipe():
  rows = [report_lib.evaluation_row(data='original', task='privacy', model='sgn', seed=100,
                                    role='holdout_seed', top1=0.1, top5=None, bank='privacy'),
          report_lib.evaluation_row(data='anonymized', task='privacy', model='sgn', seed=300,
                                    role='retrained', top1=0.1, top5=None, bank='retrained'),
          report_lib.evaluation_row(data='anonymized', task='privacy', model='stgcn', seed=300,
                                    role='retrained', top1=0.1, top5=None, bank='other')]
  learning = report_lib.judge_learning(rows, {'action': 0.1, 'privacy': 0.1}, 1000,
                                       [_suite_row('privacy', 0.9, 0.1)])
  assert rows[1]['learned'] is False and 'recipe' in learning['flagged'][1]['why']
  assert rows[2]['learned'] is None and learning['unverified'][0]['model'] == 'stgcn'


def test_suite_network_that_did_not_learn_leaves_strongest():
  out = {'attacks': [_suite_row('privacy', 0.9, 0.1, 'body_nn'),
                     _suite_row('privacy', 0.1, 0.1, 'sgn'),
                     _suite_row('privacy', 0.11, 0.1, 'body_nn', data='anonymized'),
                     _suite_row('privacy', 0.2, 0.1, 'sgn', data='anonymized')],
         'strongest': {'original': {}, 'anonymized': {}}}
  out = judge_neural_attackers(out, 'subject', num_test=400)
  assert out['not_learned'] == {'privacy': ['sgn']}
  assert out['strongest']['anonymized']['privacy']['attacker'] == 'body_nn'


def test_cluster_bootstrap_widens_when_one_persons_sequences_are_duplicated():
  rng = np.random.default_rng(0)
  people = np.repeat(np.arange(20), 5)
  # Each person is either always recognised or never: hits are correlated within people.
  person_hit = rng.random(20) < 0.5
  hits = person_hit[people].astype(float)
  # Duplicate one recognised person's sequences 20 times.
  dup = np.flatnonzero(people == np.flatnonzero(person_hit)[0])
  hits_d = np.concatenate([hits] + [hits[dup]] * 20)
  people_d = np.concatenate([people] + [people[dup]] * 20)
  metric = lambda values: (lambda weights: metrics.weighted_mean(values, weights))

  def width(ci):
    return ci[1] - ci[0]
  by_sequence = metrics.bootstrap_ci(metric(hits_d), len(hits_d), seed=0)
  by_people = metrics.bootstrap_ci(metric(hits_d), len(hits_d), seed=0, groups=people_d)
  # Sequences pretend 200 independent samples; people know there are 20.
  assert width(by_people) > 2 * width(by_sequence)
  before = metrics.bootstrap_ci(metric(hits), len(hits), seed=0, groups=people)
  assert width(by_people) >= 0.8 * width(before)
  assert by_people[0] <= metrics.weighted_mean(hits_d) <= by_people[1]
