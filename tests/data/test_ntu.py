"""NTU `.skeleton` parsing on small real-format files written here."""

import numpy as np
import pytest

from skeleton_anon.data import collect, ntu, ntu_fast
from skeleton_anon.errors import DataError

BODY_LINE = '72057594037931101 0 1 1 1 1 0 0.1385135 -0.1031398 2'


def skeleton_text(frames, *, joints=25, newline='\n'):
  """Text of a `.skeleton` file; frames: list of lists of [joints, 3] arrays (one per body)."""
  lines = [str(len(frames))]
  for bodies in frames:
    lines.append(str(len(bodies)))
    for xyz in bodies:
      lines += [BODY_LINE, str(joints)]
      for x, y, z in np.asarray(xyz)[:joints]:
        lines.append(f'{x:.7g} {y:.7g} {z:.7g} 270.1 160.3 948.4 503.8 -0.2 0.03 0.97 -0.07 2')
  return newline.join(lines) + newline


def random_frames(rng, num_frames, bodies_per_frame, scale=1.0):
  return [[rng.normal(size=(25, 3)) * scale for _ in range(bodies_per_frame)]
          for _ in range(num_frames)]


def write(path, text):
  path.write_bytes(text.encode())
  return path


def test_lf_and_crlf_give_the_files_values_exactly(tmp_path):
  rng = np.random.default_rng(0)
  frames = random_frames(rng, 7, 1)
  for newline in ('\n', '\r\n'):
    path = write(tmp_path / 'S001C002P003R002A013.skeleton', skeleton_text(frames, newline=newline))
    bodies = ntu.read_skeleton(path)
    assert bodies.shape == (1, 7, 25, 3) and bodies.dtype == np.float32
    expected = np.float32([[[float(f'{v:.7g}') for v in joint] for joint in f[0]] for f in frames])
    np.testing.assert_array_equal(bodies[0], expected)


def test_zero_body_frames_and_slots(tmp_path):
  rng = np.random.default_rng(1)
  a, b = rng.normal(size=(25, 3)), rng.normal(size=(25, 3))
  frames = [[], [a], [a, b], []]
  bodies = ntu.read_skeleton(write(tmp_path / 'x.skeleton', skeleton_text(frames)))
  assert bodies.shape == (2, 4, 25, 3)
  assert not bodies[:, 0].any() and not bodies[:, 3].any() and not bodies[1, 1].any()
  assert bodies[1, 2].any()


def test_select_persons_keeps_the_most_moving_bodies():
  rng = np.random.default_rng(2)
  bodies = np.zeros((3, 10, 25, 3), np.float32)
  bodies[0] = 1.0 + rng.normal(size=(10, 25, 3)) * 0.01      # nearly still
  bodies[1, :5] = rng.normal(size=(5, 25, 3))                # moves, present half the time
  bodies[2] = rng.normal(size=(10, 25, 3)) * 0.5
  kept = collect.select_persons(bodies, 2)
  np.testing.assert_array_equal(kept[0], bodies[1])
  np.testing.assert_array_equal(kept[1], bodies[2])
  padded = collect.select_persons(bodies[:1], 2)
  assert padded.shape == (2, 10, 25, 3) and not padded[1].any()


def test_parse_sample_name():
  assert ntu.parse_sample_name('S017C003P020R002A060.skeleton') == dict(
      setup=17, camera=3, performer=20, replication=2, action=60)
  assert ntu.parse_sample_name('A012_P034_G001_C005.csv') == dict(
      action=12, performer=34, group=1, camera=5)
  assert ntu.parse_sample_name('clip7_P003_A012') == dict(performer=3, action=12)
  assert ntu.parse_sample_name('walking') == {}


def test_read_folder_two_person_and_missing_list(tmp_path):
  rng = np.random.default_rng(3)
  write(tmp_path / 'S001C001P001R001A050.skeleton', skeleton_text(random_frames(rng, 5, 2)))
  write(tmp_path / 'S001C002P002R002A001.skeleton',
        skeleton_text(random_frames(rng, 4, 1), newline='\r\n'))
  write(tmp_path / 'S001C003P002R002A001.skeleton', skeleton_text([[], []]))
  missing = tmp_path / 'missing.txt'
  missing.write_text('# samples with missing skeletons\nS001C003P002R002A001\n')
  ds = ntu.read_ntu(tmp_path, max_frames=6, missing_list=missing, progress=False)
  assert list(ds.names) == ['S001C001P001R001A050', 'S001C002P002R002A001']
  np.testing.assert_array_equal(ds.action, [49, 0])
  np.testing.assert_array_equal(ds.subject, [0, 1])
  np.testing.assert_array_equal(ds.camera, [1, 2])
  np.testing.assert_array_equal(ds.replication, [1, 2])
  np.testing.assert_array_equal(ds.lengths, [5, 4])
  assert ds.x.shape == (2, 2, 6, 25, 3)
  assert ds.x[0, 1].any() and not ds.x[1, 1].any()
  assert [s.reason for s in ds.meta['skipped']] == ['in the missing-skeletons list']


def test_parallel_workers_and_skip(tmp_path):
  rng = np.random.default_rng(4)
  for i in range(4):
    write(tmp_path / f'S001C001P00{i + 1}R001A001.skeleton', skeleton_text(random_frames(rng, 3, 1)))
  text = skeleton_text(random_frames(rng, 3, 1))
  write(tmp_path / 'S001C001P009R001A001.skeleton', text[:len(text) // 2])
  ds = ntu.read_ntu(tmp_path, workers=2, on_error='skip', progress=False, max_frames=3)
  assert ds.num_samples == 4
  (skip,) = ds.meta['skipped']
  assert skip.name == 'S001C001P009R001A001' and 'truncated' in skip.reason
  serial = ntu.read_ntu(tmp_path, workers=1, on_error='skip', progress=False, max_frames=3)
  np.testing.assert_array_equal(ds.x, serial.x)
  with pytest.raises(DataError, match='P009.*truncated'):
    ntu.read_ntu(tmp_path, workers=2, progress=False, max_frames=3)


def test_long_files_are_cropped_and_memmap_buffer(tmp_path):
  rng = np.random.default_rng(5)
  write(tmp_path / 'S001C001P001R001A001.skeleton', skeleton_text(random_frames(rng, 9, 1)))
  ds = ntu.read_ntu(tmp_path, max_frames=4, progress=False,
                    buffer={'directory': str(tmp_path), 'threshold': 0})
  assert isinstance(ds.x, np.memmap) and ds.meta['cropped'] == 1
  assert ds.lengths[0] == 4
  collect.release(ds)
  assert not list(tmp_path.glob('.skeleton_anon_buffer.*'))


def _good_frames():
  return random_frames(np.random.default_rng(6), 3, 1)


@pytest.mark.parametrize('mutate,message', [
    (lambda t: t[:len(t) * 2 // 3], 'truncated'),
    (lambda t: t.replace('3\n1\n', '5\n1\n', 1), 'truncated'),
    (lambda t: '\n'.join(t.split('\n')[:-4]) + '\n', 'truncated: frame 2 body 0 has 22 of 25'),
    (lambda t: t.replace('\n25\n', '\n24\n', 1), '24 joints, expected 25'),
    (lambda t: t.replace('270.1', 'abc', 1), None),  # non-xyz columns are not read
    (lambda t: t.replace(t.split('\n')[4].split()[1], 'x1y', 1), 'line 5: .*non-numeric'),
    (lambda t: t.replace(t.split('\n')[4].split()[0], 'nan', 1), 'line 5: .*NaN or inf'),
    (lambda t: t.replace(t.split('\n')[5].split()[2], 'inf', 1), 'line 6: .*NaN or inf'),
    (lambda t: t.replace(' 2\n', '\n', 1), 'line 3: .*body line has 9 values, expected 10'),
    (lambda t: t.replace(' -0.07 2\n', ' -0.07\n', 1), 'line 5: .*11 values, expected 12'),
    (lambda t: '0\n', 'zero frames'),
    (lambda t: '2\n0\n0\n', 'no body in any of the 2 frames'),
    (lambda t: 'three\n', 'line 1: expected the frame count'),
    (lambda t: '', 'empty'),
    (lambda t: t.replace('\n25\n', '\n25.0\n', 1), "joint count .*integer.*'25.0'"),
    (lambda t: t.replace(t.split('\n')[4].split()[2], '1e400', 1), 'line 5: .*NaN or inf'),
    (lambda t: t.replace(t.split('\n')[6].split()[0], '-4e38', 1), 'line 7: .*NaN or inf'),
    (lambda t: t.replace('\n', '\n\n', 3), 'line 2: expected the body count'),
    (lambda t: t + '1\n', 'lines follow'),
])
def test_bad_files_name_the_file_and_the_problem(tmp_path, mutate, message):
  text = mutate(skeleton_text(_good_frames()))
  path = write(tmp_path / 'S001C001P001R001A001.skeleton', text)
  if message is None:
    assert ntu.read_skeleton(path).shape == (1, 3, 25, 3)
    return
  with pytest.raises(DataError, match=message) as info:
    ntu.read_skeleton(path)
  assert str(path) in str(info.value) and '\n' not in str(info.value)


def test_all_zero_sequence_is_refused(tmp_path):
  zeros = [[np.zeros((25, 3))] for _ in range(3)]
  path = write(tmp_path / 'S001C001P001R001A001.skeleton', skeleton_text(zeros))
  with pytest.raises(DataError, match='all coordinates are zero'):
    ntu.load_sample(path)


def test_bad_name_and_missing_input(tmp_path):
  write(tmp_path / 'walk.skeleton', skeleton_text(_good_frames()))
  with pytest.raises(DataError, match='walk.skeleton: name does not follow NTU'):
    ntu.read_ntu(tmp_path, progress=False)
  with pytest.raises(DataError, match='input does not exist'):
    ntu.read_ntu(tmp_path / 'nope', progress=False)


def _exact_and_public(path):
  """read_skeleton's result and the exact line-by-line reader's, on the same file."""
  return ntu.read_skeleton(path), ntu._read_exact(path.read_bytes(), path, 25)


@pytest.mark.parametrize('edit', [
    lambda t: t,
    lambda t: t.replace('\n', '\r\n'),
    lambda t: t.rstrip('\n'),
    lambda t: t + '\n\r\n\n',
    lambda t: t.replace(' ', '\t', 5),
    lambda t: t.replace(' ', '  ', 5),
    lambda t: t.replace('\n', ' \n', 5),
    lambda t: t.replace('\n0.', '\n 0.', 1),
    lambda t: t.replace('\n1\n', '\n+1\n', 1),
    lambda t: t.replace('\n25\n', '\n025\n', 1),
    lambda t: t.replace('\n', '\r\n').replace('\r', '', 1),
    lambda t: t.replace(' ', '\r', 1),
])
def test_fast_reader_agrees_with_the_exact_one_on_any_formatting(tmp_path, edit):
  rng = np.random.default_rng(7)
  text = edit(skeleton_text(random_frames(rng, 4, 2, scale=3.0)))
  path = write(tmp_path / 'S001C001P001R001A001.skeleton', text)
  fast, exact = _exact_and_public(path)
  assert fast.shape == exact.shape == (2, 4, 25, 3)
  np.testing.assert_array_equal(fast.view(np.uint32), exact.view(np.uint32))


def test_fast_reader_handles_canonical_files_itself(tmp_path):
  for newline in ('\n', '\r\n'):
    text = skeleton_text(random_frames(np.random.default_rng(8), 3, 1), newline=newline)
    bodies = ntu_fast.read_fast(text.encode(), 25)   # raises _NotCanonical if it declined
    assert bodies.shape == (1, 3, 25, 3)
  with pytest.raises(ntu_fast.NotCanonical):
    ntu_fast.read_fast(text.replace(' ', '  ', 1).encode(), 25)


def test_coordinates_in_any_number_syntax_match_python_float(tmp_path):
  odd = ['-0', '-0.0', '1.5e-05', '-1.192093E-07', '+0.25', '.5', '5.', '12345678901234567',
         '0.30000000000000004', '99999999999999', '-0.000000000000001', '007.50', '1_0']
  lines = [f'{x} {y} {z} 1 2 3 4 5 6 7 8 2'
           for x, y, z in zip(odd, odd[1:] + odd[:1], odd[2:] + odd[:2])]
  lines += ['0.1 0.2 0.3 1 2 3 4 5 6 7 8 2'] * (25 - len(lines))
  text = '\n'.join(['1', '1', BODY_LINE, '25'] + lines) + '\n'
  path = write(tmp_path / 'x.skeleton', text)
  fast, exact = _exact_and_public(path)
  expected = np.float32([[float(v) for v in line.split()[:3]] for line in lines])
  np.testing.assert_array_equal(fast[0, 0].view(np.uint32), expected.view(np.uint32))
  np.testing.assert_array_equal(exact[0, 0].view(np.uint32), expected.view(np.uint32))


def test_vectorised_decimals_equal_numpy_parsing_bit_for_bit():
  rng = np.random.default_rng(9)
  values = rng.normal(size=3000) * rng.choice([1e-4, 1.0, 1e3], size=3000)
  tokens = [(fmt % v).encode() for fmt in ('%.7g', '%.10f', '%.15g', '%.17g') for v in values]
  tokens += [b'0', b'-0', b'1', b'-12', b'3.0', b'1e5', b'-7E-07', b'9' * 14, b'9' * 15,
             b'1.' + b'0' * 13 + b'1']
  data = b'\n' * 16 + b' '.join(tokens)
  lengths = np.array([len(t) for t in tokens])
  start = 16 + np.concatenate(([0], np.cumsum(lengths + 1)[:-1]))
  got = ntu_fast._decimals(data, start, start + lengths)
  expected = np.array(tokens, dtype=np.float64)
  np.testing.assert_array_equal(got.view(np.uint64), expected.view(np.uint64))
  with pytest.raises(ntu_fast.NotCanonical):
    ntu_fast._decimals(data + b' 1x', np.array([len(data) + 1]), np.array([len(data) + 3]))


def test_gender_file_gives_per_performer_gender(tmp_path):
  rng = np.random.default_rng(4)
  for name in ('S001C001P001R001A001', 'S001C001P002R001A001', 'S001C001P003R001A002'):
    write(tmp_path / f'{name}.skeleton', skeleton_text(random_frames(rng, 3, 1)))
  genders = tmp_path / 'genders.csv'
  genders.write_text('P001,M\nP002,F\n')          # P003 is not listed
  ds = ntu.read_ntu(tmp_path, max_frames=4, gender_file=genders, progress=False)
  np.testing.assert_array_equal(ds.gender, [1, 0, -1])
  assert any('performers [3]' in note for note in ds.meta['notes'])
  with pytest.raises(DataError, match='gender file does not exist'):
    ntu.read_ntu(tmp_path, gender_file=tmp_path / 'absent.csv', progress=False)
