"""The three scripts of examples/ run on tiny synthetic data and do what they say, so they cannot
rot; they import only the public API (skeleton_anon.API)."""

import ast
import importlib.util
import os

import numpy as np
import pytest

EXAMPLES = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), 'examples')
SCRIPTS = sorted(name for name in os.listdir(EXAMPLES) if name.endswith('.py'))


def _load(name):
  spec = importlib.util.spec_from_file_location(f'example_{name[:-3]}',
                                                os.path.join(EXAMPLES, name))
  module = importlib.util.module_from_spec(spec)
  spec.loader.exec_module(module)
  return module


@pytest.mark.parametrize('name', SCRIPTS)
def test_example_uses_only_the_public_api(name):
  import skeleton_anon
  tree = ast.parse(open(os.path.join(EXAMPLES, name)).read())
  for node in ast.walk(tree):
    if isinstance(node, ast.ImportFrom):
      assert not (node.module or '').startswith('skeleton_anon'), \
          f'{name}: from {node.module} import ... (use `import skeleton_anon as sa`)'
    if isinstance(node, ast.Import):
      for alias in node.names:
        assert alias.name == 'skeleton_anon' or not alias.name.startswith('skeleton_anon.'), \
            f'{name}: import {alias.name}'
    if isinstance(node, ast.Attribute) and isinstance(node.value, ast.Name) and \
        node.value.id == 'sa':
      assert node.attr in skeleton_anon.API, f'{name}: sa.{node.attr} is not public'


def test_audit_example_finds_the_synthetic_people(capsys):
  result = _load('audit_file.py').main([])
  best = result['strongest']['privacy']
  assert best['value'] > 2 * best['chance']      # synthetic bodies differ: it must leak
  assert 'privacy:' in capsys.readouterr().out


def test_classifier_example_learns_in_its_own_loop():
  accuracy = _load('classifier_in_your_loop.py').main(['--steps=60', '--batch_size=16'])
  assert accuracy > 0.5                           # chance 0.25


def test_anonymizer_example_raises_the_privacy_entropy():
  out = _load('anonymizer_own_loop.py').main(['--steps=15', '--pretrain_steps=30'])
  first, last = out['history'][0], out['history'][-1]
  assert last['privacy_entropy'] > first['privacy_entropy']
  assert np.isfinite(last['loss'])
  x, x_anon = np.asarray(out['batch']['x']), np.asarray(out['x_anon'])
  assert x_anon.shape == x.shape and not np.allclose(x_anon, x)
