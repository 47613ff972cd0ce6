"""The restricted unpickler: data in, code refused (and never run)."""

import os
import pickle

import numpy as np
import pytest

from skeleton_anon.data.safe_pickle import safe_load, safe_loads
from skeleton_anon.errors import DataError


class _Payload:
  """Unpickling this with plain pickle would create `marker`."""

  def __init__(self, marker):
    self.marker = marker

  def __reduce__(self):
    return (os.system, (f'touch {self.marker}',))


@pytest.mark.parametrize('protocol', [2, 4, 5])
def test_plain_data_and_numpy_round_trip(protocol):
  value = {'names': ['S001C001P001R001A001', b'raw'], 'labels': (1, 2.5, None, True),
           'set': {1, 2}, 'frozen': frozenset({'a'}), 'complex': 1 + 2j,
           'array': np.arange(6, dtype=np.float32).reshape(2, 3),
           'strings': np.array(['a', 'bb']), 'scalar': np.int64(7), 'dtype': np.dtype('<f8')}
  loaded = safe_loads(pickle.dumps(value, protocol=protocol))
  assert loaded['names'] == value['names'] and loaded['labels'] == value['labels']
  assert loaded['set'] == {1, 2} and loaded['complex'] == 1 + 2j
  np.testing.assert_array_equal(loaded['array'], value['array'])
  assert loaded['array'].dtype == np.float32
  np.testing.assert_array_equal(loaded['strings'], value['strings'])
  assert loaded['scalar'] == 7 and loaded['dtype'] == np.dtype('<f8')


def test_malicious_pickle_is_refused_and_never_runs(tmp_path):
  marker = tmp_path / 'pwned'
  path = tmp_path / 'labels.pkl'
  path.write_bytes(pickle.dumps((['a'], [_Payload(marker)])))
  with pytest.raises(DataError, match=r'labels.pkl: refused to unpickle posix\.system') as info:
    safe_load(path)
  assert 'run code' in str(info.value)
  assert not marker.exists()


def test_other_globals_are_refused(tmp_path):
  for obj in (_Payload, np.ma.masked_array([1, 2]), OSError('x')):
    with pytest.raises(DataError, match='refused to unpickle'):
      safe_loads(pickle.dumps(obj))


def test_garbage_and_missing_files(tmp_path):
  path = tmp_path / 'bad.pkl'
  path.write_bytes(b'not a pickle at all')
  with pytest.raises(DataError, match='bad.pkl: not a readable pickle'):
    safe_load(path)
  with pytest.raises(DataError, match='does not exist'):
    safe_load(tmp_path / 'missing.pkl')
