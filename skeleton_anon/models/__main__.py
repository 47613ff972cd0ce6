"""Prints a model's per-module parameter summary; the last line is `params: <count>`.

  python -m skeleton_anon.models NAME --num_classes=K --persons=M --layout=L [--frames=T]

NAME is a registered classifier (msg3d, msg3d_nog3d, ...) or anonymizer (residual_mlp,
autoencoder). --layout is a registered layout name (ntu25, kinect_v1_20, coco17, h36m17,
openpose25, mediapipe33, smpl24) or the path of a dataset .npz, whose layout and bones are used
(and, unless given, its persons and frames). Shapes come from jax.eval_shape, so even full-size
models are summarised without running them. Counts include only trainable parameters ('params'),
like PyTorch's parameter counts; BatchNorm statistics are listed separately.
"""

from __future__ import annotations

import os
import sys
import zipfile

import numpy as np
from absl import app, flags

from skeleton_anon.errors import ConfigError, DataError, SkeletonAnonError


def _define_flags() -> None:
  """Defined only when run as a program, so importing `summarize` adds no global flags."""
  flags.DEFINE_integer('num_classes', 60, 'classifier outputs (ignored for anonymizers)')
  flags.DEFINE_integer('persons', None, 'persons per sample M (default: from the --layout '
                       'file, else 2)')
  flags.DEFINE_string('layout', 'ntu25', 'registered layout name or dataset .npz path')
  flags.DEFINE_integer('frames', None, 'frames T of the summarised input (default: from the '
                       '--layout file, else 300)')


def _npz_layout(path: str):
  """(Layout, persons, frames) of a dataset file, reading only its small keys and x's header."""
  from skeleton_anon.data.layouts import get_layout
  if not zipfile.is_zipfile(path):  # np.load would try to read anything else as a pickle
    raise DataError(path, 'not a readable .npz file (not a zip archive)')
  try:
    with np.load(path, allow_pickle=False) as f:
      for key in ('x', 'layout'):
        if key not in f.files:
          raise DataError(path, f'missing required key {key!r}; present: {sorted(f.files)}',
                          key=key)
      name = str(f['layout'])
      edges = f['edges'] if 'edges' in f.files else None
    with zipfile.ZipFile(path) as z, z.open('x.npy') as member:
      version = np.lib.format.read_magic(member)
      read_header = (np.lib.format.read_array_header_1_0 if version == (1, 0)
                     else np.lib.format.read_array_header_2_0)
      shape, _, _ = read_header(member)
  except (zipfile.BadZipFile, OSError, EOFError) as e:
    raise DataError(path, f'not a readable .npz file ({e})') from None
  except ValueError as e:
    raise DataError(path, f'unreadable array ({e})') from None
  if len(shape) != 5:
    raise DataError(path, f'x must be [N, M, T, V, C], got shape {list(shape)}', key='x')
  layout = get_layout(name, edges=edges, num_joints=shape[3], path=path)
  return layout, int(shape[1]), int(shape[2])


def resolve_layout(arg: str):
  """(Layout, persons or None, frames or None) from a layout name or a dataset file path."""
  from skeleton_anon.data.layouts import get_layout
  if arg.endswith('.npz') or os.path.isfile(arg):
    if not os.path.isfile(arg):
      raise DataError(arg, 'file does not exist')
    return _npz_layout(arg)
  return get_layout(arg), None, None


def summarize(name: str, *, num_classes: int, persons: int, layout, frames: int) -> list[str]:
  """Summary lines of model `name`: one per top-level submodule, the last `params: <count>`."""
  import jax
  import jax.numpy as jnp
  from skeleton_anon.models import registry

  registry._ensure_loaded()
  v = layout.num_joints
  x = jax.ShapeDtypeStruct((1, persons, frames, v, 3), jnp.float32)
  key = jax.random.key(0)
  if name in registry.CLASSIFIERS:
    module = registry.build_classifier(name, num_classes=num_classes, layout=layout,
                                       num_persons=persons)
    variables = jax.eval_shape(module.init, key, x)
    header = f'{name}: classifier, {num_classes} classes'
  elif name in registry.ANONYMIZERS:
    module = registry.build_anonymizer(name, num_persons=persons, num_joints=v, layout=layout)
    lengths = jax.ShapeDtypeStruct((1,), jnp.int32)
    variables = jax.eval_shape(module.init, key, x, lengths)
    header = f'{name}: anonymizer'
  else:
    raise ConfigError(f'unknown model {name!r}; classifiers: {sorted(registry.CLASSIFIERS)}; '
                      f'anonymizers: {sorted(registry.ANONYMIZERS)}')
  params = variables.get('params', {})
  lines = [f'{header}, layout {layout.name} ({v} joints), input [N, {persons}, {frames}, {v}, 3]']
  width = max([len(k) for k in params] + [6])
  for child, subtree in params.items():
    lines.append(f'  {child:<{width}}  {registry.count_params(subtree):>12,}')
  if 'batch_stats' in variables:
    lines.append(f'batch_stats (not counted): {registry.count_params(variables["batch_stats"])}')
  lines.append(f'params: {registry.count_params(params)}')
  return lines


def main(argv):
  if len(argv) != 2:
    raise app.UsageError('usage: python -m skeleton_anon.models NAME --num_classes=K '
                         '--persons=M --layout=L [--frames=T]')
  opts = flags.FLAGS
  try:
    layout, file_persons, file_frames = resolve_layout(opts.layout)
    persons = opts.persons or file_persons or 2
    frames = opts.frames or file_frames or 300
    if persons < 1 or frames < 1 or opts.num_classes < 1:
      raise ConfigError('--persons, --frames and --num_classes must be positive')
    lines = summarize(argv[1], num_classes=opts.num_classes, persons=persons, layout=layout,
                      frames=frames)
  except SkeletonAnonError as e:
    print(f'error: {e}', file=sys.stderr)
    sys.exit(1)
  print('\n'.join(lines))


if __name__ == '__main__':
  _define_flags()
  app.run(main)
