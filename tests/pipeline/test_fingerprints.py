"""A continued workdir reruns exactly the stages whose inputs changed, and what follows them
(end to end on a real workdir: tests/train/test_configs_pipeline.py, more epochs)."""

import os

import pytest


def _config(**anonymize):
  return {'seed': 0, 'data': {'path': ''}, 'classifiers': {'action': 'sgn'}, 'pretrain': {},
          'anonymizer': {'arch': 'temporal'}, 'anonymize': {'epochs': 3, 'alpha': 1.0,
                                                            **anonymize},
          'evaluate': {'attacks': 'fast'}, 'export': {'enabled': True}}


def _workdir(tmp_path, config):
  """A finished workdir: every marker (fingerprinted by `config`, or, with config None, as a
  workdir from before fingerprints wrote them) and a checkpoint folder of every owner."""
  from skeleton_anon.pipeline import fingerprints
  from skeleton_anon.pipeline.workdir import StageMarkers
  markers = StageMarkers(str(tmp_path))
  prints = fingerprints.fingerprints(config or _config(), [])
  for stage in ('pretrain', 'bank_action', 'anonymize', 'evaluate', 'export'):
    if config is not None and stage in prints:
      markers.stamps[stage] = {'fingerprint': prints[stage],
                               'settings': fingerprints.stage_settings(config, stage)}
    markers.mark(stage)
  for name in ('action', 'anonymize', 'retrained_privacy_sgn_0123'):
    os.makedirs(tmp_path / 'checkpoints' / name)
  return markers


@pytest.mark.parametrize('legacy', [False, True])
def test_stale_stages_lose_markers_and_checkpoints_unless_only_epochs_grew(tmp_path, legacy):
  from skeleton_anon.pipeline import fingerprints
  old = _config()
  markers = _workdir(tmp_path, None if legacy else old)
  previous = old if legacy else None           # a legacy marker is judged by the stored config

  def stale_after(new):
    return fingerprints.invalidate_stale(markers, str(tmp_path / 'checkpoints'), new,
                                         fingerprints.fingerprints(new, []), previous=previous)

  assert stale_after(old) == []
  # More epochs: anonymize and what follows rerun, the anonymizer's checkpoint is kept.
  assert stale_after(_config(epochs=5)) == ['anonymize', 'evaluate', 'export']
  assert sorted(markers.names()) == ['bank_action', 'pretrain']
  assert sorted(os.listdir(tmp_path / 'checkpoints')) == ['action', 'anonymize']
  # Another weight: the anonymizer's checkpoint goes too; pretrain's stays.
  markers = _workdir(tmp_path / 'b', None if legacy else old)
  assert fingerprints.invalidate_stale(
      markers, str(tmp_path / 'b' / 'checkpoints'), _config(alpha=2.0),
      fingerprints.fingerprints(_config(alpha=2.0), []), previous=previous) == [
          'anonymize', 'evaluate', 'export']
  assert sorted(os.listdir(tmp_path / 'b' / 'checkpoints')) == ['action']


def test_how_often_a_stage_saves_or_logs_does_not_make_it_stale(tmp_path):
  from skeleton_anon.pipeline import fingerprints
  old = _config(checkpoint_every=100, log_every=50)
  markers = _workdir(tmp_path, old)
  new = _config(checkpoint_every=10, log_every=1)
  assert fingerprints.fingerprints(new, []) == fingerprints.fingerprints(old, [])
  assert fingerprints.invalidate_stale(markers, str(tmp_path / 'checkpoints'), new,
                                       fingerprints.fingerprints(new, [])) == []
  # ... while what a stage computes still does.
  assert fingerprints.fingerprints(_config(lr=0.1), []) != fingerprints.fingerprints(old, [])
