"""Memory maps of the arrays inside an uncompressed `.npz`, so a 10 GB dataset costs no RAM.

`np.load(path, mmap_mode='r')` maps a `.npy` file but silently reads every member of an `.npz`
into memory. An uncompressed npz (what `np.savez` and `prepare` write) stores each member's
`.npy` bytes verbatim inside the zip, so the array data sits at a fixed offset of the file and
`np.memmap` can map it directly: only the pages a computation touches are read, and they are
file-backed (the kernel drops them under pressure instead of swapping). Compressed members
(`np.savez_compressed`) cannot be mapped and are reported as such.
"""

from __future__ import annotations

import os
import struct
import zipfile

import numpy as np

# The fixed part of a zip local file header; its last two fields are the name and extra lengths.
_LOCAL_HEADER = struct.Struct('<4sHHHHHIIIHH')
_LOCAL_MAGIC = b'PK\x03\x04'


class NotMappable(Exception):
  """A member that cannot be memory-mapped; the message says why (one line)."""


def member_name(key: str) -> str:
  return key + '.npy'


def map_member(path, info: zipfile.ZipInfo) -> np.ndarray:
  """A read-only memory map of one stored (uncompressed) `.npy` member of the zip at `path`."""
  if info.compress_type != zipfile.ZIP_STORED:
    raise NotMappable(f'member {info.filename!r} is compressed (np.savez_compressed); only an '
                      'uncompressed npz (np.savez, what `prepare` writes) can be memory-mapped')
  with open(path, 'rb') as f:
    f.seek(info.header_offset)
    header = f.read(_LOCAL_HEADER.size)
    fields = _LOCAL_HEADER.unpack(header)
    if fields[0] != _LOCAL_MAGIC:
      raise NotMappable(f'member {info.filename!r}: damaged zip local header')
    name_length, extra_length = fields[-2], fields[-1]
    f.seek(info.header_offset + _LOCAL_HEADER.size + name_length + extra_length)
    version = np.lib.format.read_magic(f)
    if version == (1, 0):
      shape, fortran, dtype = np.lib.format.read_array_header_1_0(f)
    elif version == (2, 0):
      shape, fortran, dtype = np.lib.format.read_array_header_2_0(f)
    else:
      raise NotMappable(f'member {info.filename!r}: .npy format version {version} is not mapped')
    offset = f.tell()
  if dtype.hasobject:
    raise NotMappable(f'member {info.filename!r} holds Python objects')
  size = int(np.prod(shape)) * dtype.itemsize
  if offset + size > os.path.getsize(path):
    raise NotMappable(f'member {info.filename!r} is truncated')
  if size == 0:
    return np.zeros(shape, dtype)
  return np.memmap(path, dtype=dtype, mode='r', offset=offset, shape=shape,
                   order='F' if fortran else 'C')


def map_npz_member(path, key: str) -> np.ndarray:
  """`key`'s array of the npz at `path` as a read-only memory map; NotMappable says why not."""
  path = os.fspath(path)
  with zipfile.ZipFile(path) as z:
    try:
      info = z.getinfo(member_name(key))
    except KeyError:
      raise NotMappable(f'no member {key!r}') from None
  return map_member(path, info)
