"""Workdir paths that work anywhere: local folders and URLs (gs://BUCKET/run) through etils.epath.

`as_path` is the one way a workdir path is made: a local path becomes absolute, a URL stays as it
is (os.path.abspath would turn gs://b/run into the local folder ./gs:/b/run). Orbax takes the
resulting epath.Path directly. `atomic_write` writes a temporary name in the same directory and
renames it onto the target, on any filesystem epath reaches. `local_dir` and `local_file` are
for code that only writes or reads local files (matplotlib, the exporter): for a URL they stage
through a local temporary folder, for a local path they are the path itself.

The lowest layer of the package: it imports nothing of skeleton_anon.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import tempfile
import uuid
from typing import Callable, Iterator

from etils import epath


def is_url(path) -> bool:
  """Whether `path` names a location behind a scheme (gs://, s3://, ...), not a local file."""
  return '://' in os.fspath(path)


def as_path(path) -> epath.Path:
  """epath.Path of a local path (made absolute) or a URL (kept as it is)."""
  if isinstance(path, epath.Path) and is_url(path):
    return path
  text = os.fspath(path)
  return epath.Path(text if is_url(text) else os.path.abspath(text))


def atomic_write(path, write: Callable, *, binary: bool = False) -> None:
  """write(file) into a temporary name next to `path`, then renamed onto it (replacing it).

  Readers never see a half-written file; on a failure the temporary file is removed.
  """
  path = as_path(path)
  path.parent.mkdir(parents=True, exist_ok=True)
  tmp = path.parent / f'.{path.name}.{uuid.uuid4().hex[:12]}.tmp'
  try:
    with tmp.open('wb' if binary else 'w') as f:
      write(f)
    tmp.replace(path)
  except BaseException:
    try:
      if tmp.exists():
        tmp.unlink()
    except OSError:
      pass
    raise


def write_json(path, data, **dump_kwargs) -> None:
  """`data` as JSON at `path`, atomically (dump_kwargs go to json.dump)."""
  atomic_write(path, lambda f: json.dump(data, f, **dump_kwargs))


def read_json(path):
  with as_path(path).open('r') as f:
    return json.load(f)


def copy_tree(src, dst) -> None:
  """Copies the files under `src` to `dst`, keeping the layout; each file atomically and in
  blocks (never read whole)."""
  src, dst = as_path(src), as_path(dst)
  for child in src.iterdir():   # not walk(): fsspec's drops the scheme from the folders it yields
    if child.is_dir():
      copy_tree(child, dst / child.name)
      continue
    with child.open('rb') as f:      # streamed: an export can be larger than memory
      atomic_write(dst / child.name, lambda out, f=f: shutil.copyfileobj(f, out, 1 << 24),
                   binary=True)


@contextlib.contextmanager
def local_dir(path) -> Iterator[str]:
  """A local folder to write into for `path`: the folder itself when local; for a URL a local
  temporary folder whose files are copied to `path` when the block ends without an error."""
  if not is_url(path):
    os.makedirs(os.fspath(path), exist_ok=True)
    yield os.fspath(path)
    return
  staging = tempfile.mkdtemp(prefix='skeleton_anon_')
  try:
    yield staging
    copy_tree(staging, path)
  finally:
    shutil.rmtree(staging, ignore_errors=True)


@contextlib.contextmanager
def local_file(path) -> Iterator[str]:
  """A local file to read `path` from: the file itself when local; for a URL a downloaded copy."""
  if not is_url(path):
    yield os.fspath(path)
    return
  source = as_path(path)
  staging = tempfile.mkdtemp(prefix='skeleton_anon_')
  try:
    local = os.path.join(staging, source.name)
    with source.open('rb') as f, open(local, 'wb') as out:
      shutil.copyfileobj(f, out)
    yield local
  finally:
    shutil.rmtree(staging, ignore_errors=True)
