"""The package reads top-down: data -> models -> train / evaluate -> attacks -> pipeline -> CLIs.

Every import in a module (including imports inside functions) may only reach its own layer or a
layer below it. A violation names the module and the import, so a cycle cannot creep back in.
"""

import ast
import pathlib

import pytest

PACKAGE = pathlib.Path(__file__).resolve().parents[1] / 'skeleton_anon'

# Layer rank; a module may import modules of equal or lower rank. train and evaluate are siblings:
# neither may import the other. errors, pathio (workdir paths) and multihost (process 0 reads for
# every process) sit below everything.
RANKS = {'errors': 0, 'pathio': 0, 'multihost': 0, 'data': 1, 'models': 2, 'train': 3,
         'evaluate': 3, 'attacks': 4, 'pipeline': 5}
SIBLINGS_APART = {('train', 'evaluate'), ('evaluate', 'train')}
CLI_RANK = 6


def _layer(module_parts: list[str]) -> str:
  return module_parts[0] if module_parts[0] in RANKS else '<cli>'


def _rank(layer: str) -> int:
  return RANKS.get(layer, CLI_RANK)


def _imports(path: pathlib.Path):
  tree = ast.parse(path.read_text())
  for node in ast.walk(tree):
    if isinstance(node, ast.Import):
      for alias in node.names:
        yield alias.name
    elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
      yield node.module
      for alias in node.names:
        yield f'{node.module}.{alias.name}'


def _violations():
  found = []
  for path in sorted(PACKAGE.rglob('*.py')):
    parts = list(path.relative_to(PACKAGE).with_suffix('').parts)
    own = _layer(parts)
    for name in _imports(path):
      if not name.startswith('skeleton_anon.'):
        continue
      target_parts = name.split('.')[1:]
      if not target_parts:
        continue
      target = _layer(target_parts)
      if (own, target) in SIBLINGS_APART or _rank(target) > _rank(own):
        found.append(f'{"/".join(parts)}.py ({own}) imports {name} ({target})')
  return found


def test_no_module_imports_a_layer_above_it():
  assert _violations() == []


@pytest.mark.parametrize('module', ['skeleton_anon.pipeline', 'skeleton_anon.evaluate.report',
                                    'skeleton_anon.data.transforms'])
def test_layers_import_on_their_own(module):
  import importlib
  assert importlib.import_module(module) is not None
