"""Checks of the benchmark tooling itself (run explicitly: pytest benchmarks/test_bench_tools.py).

Kept outside tests/ (the package's suite) because they check the benchmarks, not the package.
"""

import json
import os

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from benchmarks import model_bench, naive_data, ntu_files, profile_step, report, run
from skeleton_anon.data import ntu, preprocess


@pytest.fixture(scope='module')
def skeleton_dir(tmp_path_factory):
  folder = tmp_path_factory.mktemp('skeletons')
  paths, frames = ntu_files.write_ntu_files(str(folder), 8, seed=3, min_frames=20, max_frames=40,
                                            crlf_fraction=0.5, two_person_fraction=0.5)
  return folder, paths, frames


def test_generated_files_are_deterministic_and_parse(skeleton_dir, tmp_path):
  folder, paths, frames = skeleton_dir
  again, frames_again = ntu_files.write_ntu_files(str(tmp_path), 8, seed=3, min_frames=20,
                                                  max_frames=40, crlf_fraction=0.5,
                                                  two_person_fraction=0.5)
  assert frames == frames_again
  for a, b in zip(paths, again):
    with open(a, 'rb') as fa, open(b, 'rb') as fb:
      assert fa.read() == fb.read()
  endings = [b'\r\n' in open(p, 'rb').read() for p in paths]
  assert any(endings) and not all(endings)  # both LF and CRLF files
  parsed = [ntu.read_skeleton(p) for p in paths]
  assert sum(x.shape[1] for x in parsed) == frames
  assert max(x.shape[0] for x in parsed) >= 2  # a two-person sample is among them


def test_naive_parser_matches_the_package_parser(skeleton_dir):
  _, paths, _ = skeleton_dir
  for path in paths:
    np.testing.assert_array_equal(naive_data.parse_skeleton_naive(path), ntu.read_skeleton(path))


def test_naive_pre_normalization_matches_the_package(skeleton_dir):
  folder, _, _ = skeleton_dir
  ds = ntu.read_ntu(str(folder), max_frames=48, progress=False)
  x, lengths = np.array(ds.x), np.array(ds.lengths)
  ours, _ = preprocess.pre_normalize(x, lengths, 'ntu25', 'agcn')
  np.testing.assert_allclose(naive_data.pre_normalize_naive(x), ours, atol=1e-5)
  # Normalised: person 0's centre joint at the origin, and (the last rotation) the first frame's
  # right->left shoulder bone along +x.
  first = ours[0, 0, 0]
  np.testing.assert_allclose(first[1], 0.0, atol=1e-6)
  bone = first[8] - first[4]
  np.testing.assert_allclose(bone / np.linalg.norm(bone), [1, 0, 0], atol=1e-5)


def test_profile_counts_dot_flops_from_hlo():
  fn = jax.jit(lambda a, b: jnp.tanh(a @ b))
  compiled = fn.lower(jnp.ones((64, 32)), jnp.ones((32, 16))).compile()
  instructions, _ = profile_step.parse_hlo(compiled.as_text())
  assert sum(ins.flops for ins in instructions.values()) == 2 * 64 * 32 * 16


def test_report_renders_ratios():
  results = [
      {'name': 'min_step', 'implementation': 'jax', 'batch': 8, 'frames': 64, 'devices': 1,
       'samples_per_s': 2.0, 'speedup_vs_reference': 4.0, 'compile_s': 10.0,
       'peak_rss_mib': 100.0, 'gflop_per_s': 50.0, 'gflop_per_step': 400.0,
       'fraction_of_matmul': 0.25},
      {'name': 'reference_min_step', 'implementation': 'reference_torch', 'batch': 8,
       'frames': 64, 'devices': 1, 'samples_per_s': 0.5, 'peak_rss_mib': 400.0},
  ]
  text = report.render(results)
  assert '| min_step | 8 | 64 | 2 | 0.5 | 4 |' in text
  assert '0.25' in text


def test_reference_script_is_not_importing_the_package():
  # The reference side runs under a separate torch interpreter without skeleton_anon installed.
  with open(os.path.join(os.path.dirname(__file__), 'reference_torch.py')) as f:
    imports = [line for line in f if line.lstrip().startswith(('import ', 'from '))]
  assert imports and not any('skeleton_anon' in line or 'benchmarks' in line for line in imports)


# A one-block ST-GCN (it has dropout and BatchNorm): compiles in seconds, unlike the paper's sizes.
TINY_STGCN = {'base_channels': 8, 'blocks_per_stage': [1]}


def test_model_fwd_bwd_returns_loss_grads_and_batch_stats():
  fn, args, advance, params = model_bench.subject('stgcn', 'fwd_bwd', batch=2, frames=8,
                                                  knobs=TINY_STGCN)
  loss, grads, updates = fn(*args)
  assert np.isfinite(float(loss)) and advance(None, args) is args
  assert jax.tree.structure(grads) == jax.tree.structure(args[0]['params'])
  assert sum(int(np.size(g)) for g in jax.tree.leaves(grads)) == params
  assert any(float(jnp.abs(g).max()) > 0 for g in jax.tree.leaves(grads))
  assert jax.tree.structure(updates['batch_stats']) == jax.tree.structure(
      args[0]['batch_stats'])


def test_model_forward_runs_in_its_own_process_and_reports():
  result = run.ours(None, 300, script='model_bench.py', model='stgcn', mode='forward', batch=2,
                    frames=8, warmup=1, repeats=2, knobs=json.dumps(TINY_STGCN))
  assert not result.get('error'), result
  assert result['name'] == 'model_forward' and result['model'] == 'stgcn'
  assert result['batch'] == 2 and result['frames'] == 8 and len(result['step_s_all']) == 2
  assert result['params'] > 0 and result['devices'] >= 1 and result['peak_rss_mib'] > 0
  assert result['samples_per_s'] > 0 and result['compile_s'] > 0
  assert result['gflop_per_step'] > 0 and result['gflop_per_s'] > 0


def test_run_plans_time_every_model_and_report_renders_them():
  assert run.parse_args(['--json', 'x.json']).models is None        # the plan's choice
  assert run.make_plan(quick=False)['models'] == list(model_bench.MODELS)
  assert run.make_plan(quick=True)['models'] == ['msg3d']
  assert run.make_plan(quick=False)['model_frames'] == 300
  assert run.make_plan(quick=True)['model_frames'] < 300
  common = {'model': 'msg3d', 'batch': 8, 'frames': 300, 'num_classes': 60, 'num_persons': 2,
            'params': 3194595}
  results = [
      dict(common, name='model_forward', samples_per_s=1.5, gflop_per_step=500.0,
           gflop_per_s=90.0, compile_s=12.0, peak_rss_mib=2000.0),
      dict(common, name='model_fwd_bwd', samples_per_s=0.25, gflop_per_step=1500.0,
           gflop_per_s=45.0, compile_s=40.0, peak_rss_mib=11000.4),
  ]
  text = report.render(results)
  assert ('| msg3d | 60 | 2 | 3194595 | 8 | 300 | 1.5 | 0.25 | 500 / 1.5e+03 | 90 / 45 | '
          '12 / 40 | 2000 / 11000 |') in text
  assert 'model_forward (batch' not in text  # not repeated in the generic FLOP table


def test_scale_file_is_streamed_valid_and_mappable(tmp_path):
  """benchmarks/scale.py's synthetic NTU-shaped file: written member by member, it loads,
  validates and maps like a `prepare`d file, with tiled copies and a subject-held-out split."""
  from benchmarks import scale
  from skeleton_anon.data.dataset import load_npz
  path = str(tmp_path / 'ntu.npz')
  facts = scale.write_ntu_sized(path, 50, num_frames=20,
                                base=dict(num_subjects=4, num_actions=5, repetitions=1,
                                          num_views=1))
  ds = load_npz(path, mmap=True)
  assert isinstance(ds.x, np.memmap) and ds.x.shape == (50, 2, 20, 25, 3)
  assert facts['train'] + facts['test'] == 50 and ds.meta['normalize'] == 'agcn'
  train_subjects = set(ds.subject[ds.split == 0] + 1)
  assert train_subjects <= set(scale.XSUB_TRAIN)
  assert not train_subjects & set(ds.subject[ds.split == 1] + 1)
  assert len(set(ds.names.tolist())) == 50 and ds.setup.max() == 3        # 20 base x 3 copies
  assert not np.array_equal(ds.x[0], ds.x[20]) and np.allclose(ds.x[0], ds.x[20], atol=0.02)
