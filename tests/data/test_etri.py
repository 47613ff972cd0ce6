"""ETRI-activity3D CSV folders written here in the real column layout."""

import re

import numpy as np
import pytest

from skeleton_anon.data import etri
from skeleton_anon.errors import DataError

KEYS = ['3dX', '3dY', '3dZ', 'depthX', 'depthY', 'orientationX', 'orientationY', 'orientationZ',
        'orientationW', 'trackingState']


def etri_csv(rows):
  """rows: (frame, body_id, xyz [25, 3]) -> CSV text with ETRI's header."""
  header = ['frameNum', 'bodyindexID'] + [f'joint{j}_{k}' for j in range(1, 26) for k in KEYS]
  lines = [','.join(header)]
  for frame, body, xyz in rows:
    values = [str(frame), str(body)]
    for x, y, z in xyz:
      values += [f'{x:.6g}', f'{y:.6g}', f'{z:.6g}', '250', '180', '0.1', '0.2', '0.3', '0.9', '2']
    lines.append(','.join(values))
  return '\r\n'.join(lines) + '\r\n'


def one_body(rng, frames=4, body=3):
  return [(f, body, rng.normal(size=(25, 3))) for f in range(1, frames + 1)]


@pytest.fixture
def folder(tmp_path):
  rng = np.random.default_rng(0)
  sub = tmp_path / 'P001-P050'
  sub.mkdir()
  (sub / 'A001_P001_G001_C001.csv').write_text(etri_csv(one_body(rng)))
  (sub / 'A002_P002_G001_C003.csv').write_text(etri_csv(one_body(rng, frames=3)))
  (sub / 'A045_P001_G001_C001.csv').write_text(etri_csv(one_body(rng)))
  two = one_body(rng, 3, body=1) + one_body(rng, 3, body=2)
  (sub / 'A003_P002_G001_C002.csv').write_text(etri_csv(two))
  (tmp_path / 'gender_age.txt').write_text('ID\tGender\tAge\nP001\tF\t71\nP002\tmale\t68\n')
  return tmp_path


def test_reads_folder_drops_two_person_and_multi_body(folder):
  ds = etri.read_etri(folder, max_frames=5, progress=False)
  assert list(ds.names) == ['A001_P001_G001_C001', 'A002_P002_G001_C003']
  np.testing.assert_array_equal(ds.action, [0, 1])
  np.testing.assert_array_equal(ds.subject, [0, 1])
  np.testing.assert_array_equal(ds.gender, [0, 1])
  np.testing.assert_array_equal(ds.camera, [1, 3])
  np.testing.assert_array_equal(ds.lengths, [4, 3])
  assert ds.x.shape == (2, 1, 5, 25, 3)
  reasons = {s.name: s.reason for s in ds.meta['skipped']}
  assert 'two-person action A045' in reasons['A045_P001_G001_C001']
  assert '2 bodies' in reasons['A003_P002_G001_C002']


def test_coordinates_are_the_files_values(tmp_path):
  rng = np.random.default_rng(1)
  rows = one_body(rng, frames=2)
  (tmp_path / 'A001_P001_G001_C001.csv').write_text(etri_csv(rows))
  bodies, ids = etri.read_csv(tmp_path / 'A001_P001_G001_C001.csv')
  assert ids == ['3']
  expected = np.float32([[[float(f'{v:.6g}') for v in j] for j in xyz] for _, _, xyz in rows])
  np.testing.assert_array_equal(bodies[0], expected)


def test_keep_multi_person(folder):
  ds = etri.read_etri(folder, max_frames=5, max_persons=2, keep_multi_person=True,
                      progress=False)
  assert ds.num_samples == 4 and ds.x[list(ds.names).index('A003_P002_G001_C002'), 1].any()


@pytest.mark.parametrize('text,expected', [
    ('ID\tGender\tAge\n1\tM\t70\n2\tF\t65\n', {1: 1, 2: 0}),
    ('Gender\tAge\nm\t70\nf\t65\n', {1: 1, 2: 0}),
    ('P003\t1\t70\nP004\t0\t66\n', {3: 1, 4: 0}),
    ('female 70\nunknown 65\n', {1: 0, 2: -1}),
])
def test_gender_file_formats(tmp_path, text, expected):
  path = tmp_path / 'gender_age.txt'
  path.write_text(text)
  assert etri.read_gender_file(path) == expected


@pytest.mark.parametrize('mutate,message', [
    (lambda t: t.replace('joint7_3dY', 'joint7_Y'), "line 1: header lacks column.*joint7_3dY"),
    (lambda t: t.replace(',2\r\n', '\r\n', 1), 'line 2: 251 values, the header has 252'),
    (lambda t: t.replace('\r\n1,3,', '\r\n1,3,abc', 1), 'line 2: joint1_3dX is not a number'),
    (lambda t: re.sub(r'\r\n2,3,[^,]*', '\r\n2,3,nan', t, count=1), 'line 3: NaN or inf'),
    (lambda t: t.split('\r\n')[0] + '\r\n', 'no data rows'),
    (lambda t: t + t.split('\r\n')[1] + '\r\n', 'frame 1 body 3 appears twice'),
])
def test_bad_csv(tmp_path, mutate, message):
  text = etri_csv(one_body(np.random.default_rng(2)))
  path = tmp_path / 'A001_P001_G001_C001.csv'
  path.write_text(mutate(text))
  with pytest.raises(DataError, match=message) as info:
    etri.read_csv(path)
  assert str(path) in str(info.value)


def test_all_zero_and_bad_names(tmp_path):
  (tmp_path / 'A001_P001_G001_C001.csv').write_text(
      etri_csv([(1, 0, np.zeros((25, 3))), (2, 0, np.zeros((25, 3)))]))
  with pytest.raises(DataError, match='all coordinates are zero'):
    etri.read_etri(tmp_path, progress=False)
  (tmp_path / 'notes.csv').write_text('a,b\n')
  with pytest.raises(DataError, match='notes.csv: name does not follow ETRI'):
    etri.read_etri(tmp_path, progress=False)
