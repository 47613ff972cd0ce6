"""Checks of the benchmark tooling itself (run explicitly: pytest benchmarks/test_bench_tools.py).

Kept outside tests/ (the package's suite) because they check the benchmarks, not the package.
"""

import os

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from benchmarks import naive_data, ntu_files, profile_step, report
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
