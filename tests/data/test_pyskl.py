"""pyskl / mmaction2 pickles both ways: 2D and 3D reading, scores, bad input, and the export that
pyskl's own PoseDataset and pipelines read unchanged."""

import os
import pickle

import ml_collections
import numpy as np
import pytest

from skeleton_anon.data import formats, load_npz, pyskl, setup
from skeleton_anon.data.safe_pickle import safe_load
from skeleton_anon.errors import ConfigError, DataError
from skeleton_anon.evaluate import export
from skeleton_anon.prepare import PrepareOptions, prepare

NAMES = ['S001C001P001R001A001', 'S001C002P001R001A002', 'S002C001P002R001A001',
         'S002C002P002R002A002', 'S003C001P003R001A001', 'S003C003P003R002A002']


def _ann2d(name, label, m=2, t=6, seed=0, img_shape=(480, 640)):
  """A pyskl HRNet-style 2D annotation: COCO-17 pixels (float16, as pyskl ships them)."""
  rng = np.random.default_rng(seed)
  h, w = img_shape
  kp = np.stack([rng.uniform(0, w, size=(m, t, 17)), rng.uniform(0, h, size=(m, t, 17))], -1)
  score = rng.uniform(0.3, 1.0, size=(m, t, 17))
  return {'frame_dir': name, 'label': label, 'img_shape': img_shape, 'original_shape': img_shape,
          'total_frames': t, 'keypoint': kp.astype(np.float16),
          'keypoint_score': score.astype(np.float16)}


def _pickle(path, anns, split=None):
  with open(path, 'wb') as f:
    pickle.dump({'split': split or {}, 'annotations': anns}, f)
  return str(path)


def _dataset_2d(tmp_path, t=6):
  anns = [_ann2d(n, i % 2, m=1 + i % 2, t=t - i % 3, seed=i) for i, n in enumerate(NAMES)]
  split = {'xsub_train': NAMES[0::2], 'xsub_val': NAMES[1::2], 'other': NAMES[:1]}
  return _pickle(tmp_path / 'mini_hrnet.pkl', anns, split), anns, split


def test_read_2d_pickle_with_scores_image_size_and_split(tmp_path):
  path, anns, _ = _dataset_2d(tmp_path)
  ds = pyskl.read_pyskl(path, split='xsub', max_frames=8)
  assert ds.layout == 'coco17' and ds.x.shape == (6, 2, 8, 17, 2)
  assert ds.score.shape == (6, 2, 8, 17) and ds.score.dtype == np.float32
  np.testing.assert_array_equal(ds.img_shape, [[480, 640]] * 6)
  np.testing.assert_array_equal(ds.split, [0, 1, 0, 1, 0, 1])
  np.testing.assert_array_equal(ds.subject, [0, 0, 1, 1, 2, 2])
  np.testing.assert_array_equal(ds.lengths, [6, 5, 4, 6, 5, 4])
  np.testing.assert_allclose(ds.x[1, :, :5], anns[1]['keypoint'].astype(np.float32)[
      np.argsort(-_motion(anns[1]['keypoint']), kind='stable')])
  assert ds.meta['source'] == 'pyskl' and ds.meta['path'] == path


def _motion(kp):
  kp = kp.astype(np.float64)
  return np.array([kp[p].reshape(-1, kp.shape[-1]).std(0).sum() for p in range(len(kp))])


def test_scores_are_reordered_exactly_like_their_persons(tmp_path):
  ann = _ann2d(NAMES[0], 0, m=3, t=5, seed=4)
  kp = ann['keypoint'].astype(np.float32)
  kp[0] = kp[0] * 0.01 + 300             # person 0 barely moves, person 2 moves most
  kp[2] = (kp[2] - 320) * 3 + 320
  ann['keypoint'] = kp
  ann['keypoint_score'] = np.float32([[[0.1]], [[0.5]], [[0.9]]]) * np.ones((3, 5, 17))
  ds = pyskl.read_pyskl(_pickle(tmp_path / 'a.pkl', [ann]), max_persons=2, max_frames=5)
  order = np.argsort(-_motion(kp), kind='stable')[:2]
  assert order.tolist() == [2, 1]
  np.testing.assert_array_equal(ds.x[0], kp[order])
  np.testing.assert_allclose(ds.score[0, :, 0, 0], [0.9, 0.5])


def test_read_3d_pickle_and_a_layout_named_on_the_command_line(tmp_path):
  rng = np.random.default_rng(0)
  anns = [{'frame_dir': n, 'label': 0, 'total_frames': 4,
           'keypoint': rng.normal(size=(1, 4, 17, 3)).astype(np.float32)} for n in NAMES[:2]]
  path = _pickle(tmp_path / 'h36m.pkl', anns)
  with pytest.raises(DataError, match='17 joints match no registered layout.*coco17, h36m17'):
    pyskl.read_pyskl(path)
  ds = pyskl.read_pyskl(path, layout='h36m17', max_frames=None)
  assert ds.layout == 'h36m17' and ds.x.shape == (2, 2, 4, 17, 3) and ds.score is None
  with pytest.raises(DataError, match="layout 'ntu25' has 25 joints, the keypoints have 17"):
    pyskl.read_pyskl(path, layout='ntu25')


@pytest.mark.parametrize('mutate,message', [
    (lambda a: a.update(keypoint_score=a['keypoint_score'][:, :-1]),
     r'keypoint \[2, 6, 17, 2\] and keypoint_score \[2, 5, 17\] have different shapes'),
    (lambda a: a['keypoint_score'].__setitem__((0, 0, 0), 1.5),
     r'keypoint_score = 1.5 is outside \[0, 1\]'),
    (lambda a: a['keypoint_score'].__setitem__((0, 0, 0), -0.25),
     r'keypoint_score = -0.25 is outside \[0, 1\]'),
    (lambda a: a.pop('keypoint_score'), 'has no keypoint_score, the first annotation has one'),
    (lambda a: a.update(keypoint=a['keypoint'][:, :, :16]), '16 joints, the first annotation'),
    (lambda a: a.update(img_shape=(0, 640)), r'img_shape \(0, 640\) is not a positive'),
])
def test_bad_2d_annotations_name_the_file_and_the_sample(tmp_path, mutate, message):
  anns = [_ann2d(NAMES[0], 0), _ann2d(NAMES[1], 1, seed=1)]
  anns[1]['keypoint_score'] = anns[1]['keypoint_score'].astype(np.float32)
  mutate(anns[1])
  path = _pickle(tmp_path / 'bad.pkl', anns)
  with pytest.raises(DataError, match=message) as info:
    pyskl.read_pyskl(path)
  text = str(info.value)
  assert text.startswith(path) and f'sample 1 ({NAMES[1]})' in text and '\n' not in text


def test_scores_slightly_above_one_can_be_clipped(tmp_path):
  anns = [_ann2d(NAMES[0], 0)]
  anns[0]['keypoint_score'] = anns[0]['keypoint_score'].astype(np.float32) * 1.05
  path = _pickle(tmp_path / 'hrnet.pkl', anns)
  with pytest.raises(DataError, match='--clip_scores'):
    pyskl.read_pyskl(path)
  assert pyskl.read_pyskl(path, clip_scores=True).score.max() == 1.0


def test_name_pattern_for_frame_dirs_that_are_not_ntu_names(tmp_path):
  anns = [_ann2d(n, i, seed=i) for i, n in enumerate(['clip_s07_x', 'clip_s09_y'])]
  path = _pickle(tmp_path / 'custom.pkl', anns)
  with pytest.raises(DataError, match=r'no performer id \(P###\)'):
    pyskl.read_pyskl(path)
  ds = pyskl.read_pyskl(path, name_pattern=formats.NamePattern(r'_s(?P<subject>\d+)_'))
  np.testing.assert_array_equal(ds.subject, [6, 8])
  np.testing.assert_array_equal(ds.action, [0, 1])            # the label, not the name
  with pytest.raises(DataError, match="matches none of the 2 names .e.g. 'clip_s07_x'"):
    pyskl.read_pyskl(path, name_pattern=formats.NamePattern(r'P(?P<subject>\d+)'))
  with pytest.raises(ConfigError, match=r'has no \(\?P<subject>...\) group'):
    formats.NamePattern(r'_s(\d+)_')


def test_prepare_2d_pickle_records_image_normalisation_scores_and_image_size(tmp_path):
  path, anns, _ = _dataset_2d(tmp_path)
  out = tmp_path / 'mini.npz'
  ds, summary = prepare(PrepareOptions(source='pyskl', input=path, output=str(out),
                                       pyskl_split='xsub', max_frames=8, progress=False))
  assert 'normalize: image' in summary and '2D keypoints, with scores' in summary
  back = load_npz(out)
  assert back.meta['normalize'] == 'image' and back.layout == 'coco17'
  assert back.score.shape == (6, 2, 8, 17)
  np.testing.assert_array_equal(back.img_shape, [[480, 640]] * 6)
  # pyskl's formula on one keypoint of sample 0 (one person, so no reordering).
  kx, ky = anns[0]['keypoint'][0, 2, 5].astype(np.float32)
  np.testing.assert_allclose(back.x[0, 0, 2, 5], [(kx - 320) / 320, (ky - 240) / 240],
                             atol=1e-6)
  with pytest.raises(ConfigError, match="'agcn' rotates 3D skeletons"):
    prepare(PrepareOptions(source='pyskl', input=path, output=str(tmp_path / 'b.npz'),
                           normalize='agcn', progress=False))
  ds, _ = prepare(PrepareOptions(source='pyskl', input=path, output=str(tmp_path / 'c.npz'),
                                 normalize='skeleton', max_frames=8, progress=False))
  assert load_npz(tmp_path / 'c.npz').meta['normalize'] == 'skeleton'


# ---- export back to pyskl --------------------------------------------------------------------

def _pyskl_loader(path, split):
  """What pyskl does with an annotation file, step by step (PoseDataset.load_pkl_annotations,
  then PoseDecode, PreNormalize2D in mode 'fix' and FormatGCNInput), with its assertions."""
  data = safe_load(path)
  assert set(data) >= {'split', 'annotations'}
  annotations = data['annotations']
  identifier = 'filename' if 'filename' in annotations[0] else 'frame_dir'
  keep = set(data['split'][split])
  annotations = [a for a in annotations if a[identifier] in keep]
  out = []
  for a in annotations:
    frame_inds = np.arange(a['total_frames'])                   # PoseDecode without sampling
    kp = a['keypoint'][:, frame_inds].astype(np.float32)
    score = a['keypoint_score'][:, frame_inds].astype(np.float32)
    h, w = a['img_shape']
    kp = np.concatenate([kp, score[..., None]], -1)             # PreNormalize2D
    kp[..., 0] = (kp[..., 0] - w / 2) / (w / 2)
    kp[..., 1] = (kp[..., 1] - h / 2) / (h / 2)
    m, t, v, c = kp.shape                                        # FormatGCNInput(num_person=2)
    assert c == 3 and v == 17 and t == a['total_frames'] and m <= 2
    out.append(a)
  return out


def _check_annotation_fields(a, original, persons_max=2):
  assert isinstance(a['frame_dir'], str) and a['frame_dir'] == original['frame_dir']
  assert a['label'] == original['label']
  assert isinstance(a['total_frames'], int)
  assert a['img_shape'] == original['img_shape'] and a['original_shape'] == original['img_shape']
  kp, score = a['keypoint'], a['keypoint_score']
  assert kp.dtype == np.float32 and score.dtype == np.float32
  assert kp.ndim == 4 and kp.shape[3] == 2 and kp.shape[2] == 17
  assert 1 <= kp.shape[0] <= persons_max and kp.shape[1] == a['total_frames']
  assert score.shape == kp.shape[:3]
  assert set(a) == set(original)


def test_pipeline_export_writes_a_pyskl_pickle_pyskl_reads(tmp_path):
  path, anns, split = _dataset_2d(tmp_path)
  cfg = ml_collections.ConfigDict(dict(
      path=path, label_path='', privacy_target='subject', split_rule='random', test_fraction=0.5,
      split_seed=0, max_frames=0, prepare_hint='', pyskl_split='', pyskl_normalize='auto',
      synthetic_normalize='agcn'))
  data = setup.prepare_data(cfg)
  assert data.train.meta['normalize'] == 'image' and data.layout.name == 'coco17'
  assert np.abs(data.train.x).max() <= 1.0
  # The "anonymizer" of this test flips every keypoint about the image centre.
  train = data.train.with_x(-data.train.x)
  test = data.test.with_x(-data.test.x)
  outputs = export.export_anonymized(train, test, tmp_path / 'export', input_files=[path])
  assert set(outputs) == {'anonymized.npz', 'anonymized_pyskl.pkl', 'manifest.json'}
  generic = load_npz(outputs['anonymized.npz'])
  assert generic.num_samples == 6 and generic.score is not None
  written = safe_load(outputs['anonymized_pyskl.pkl'])
  assert list(written) == ['split', 'annotations']
  assert written['split'] == split                   # every sample exported: lists unchanged
  assert [a['frame_dir'] for a in written['annotations']] == NAMES
  for a, original in zip(written['annotations'], anns):
    _check_annotation_fields(a, original)
    t = original['total_frames']
    assert a['total_frames'] == t
    # Pixels again: the flip about the centre, for every scored joint; scores unchanged.
    h, w = original['img_shape']
    kp = original['keypoint'].astype(np.float32)
    order = np.argsort(-_motion(original['keypoint']), kind='stable')[:2]
    expect = np.stack([w - kp[order, ..., 0], h - kp[order, ..., 1]], -1)
    np.testing.assert_allclose(a['keypoint'], expect, atol=0.05)
    np.testing.assert_allclose(a['keypoint_score'],
                               original['keypoint_score'].astype(np.float32)[order])
  for name in ('xsub_train', 'xsub_val', 'other'):
    assert len(_pyskl_loader(outputs['anonymized_pyskl.pkl'], name)) == len(split[name])


def test_export_with_a_split_crops_frames_persons_and_split_lists(tmp_path):
  path, anns, split = _dataset_2d(tmp_path, t=9)
  anns[1]['keypoint'][1] = 0                     # person 1 of sample 1 is never there
  anns[1]['keypoint_score'][1] = 0
  path = _pickle(tmp_path / 'crop.pkl', anns, split)
  cfg = ml_collections.ConfigDict(dict(
      path=path, label_path='', privacy_target='subject', split_rule='auto', test_fraction=0.2,
      split_seed=0, max_frames=7, prepare_hint='', pyskl_split='xsub', pyskl_normalize='skeleton',
      synthetic_normalize='agcn'))
  data = setup.prepare_data(cfg)
  assert data.split_used == 'file' and data.train.meta['normalize'] == 'skeleton'
  outputs = export.export_anonymized(data.train, data.test, tmp_path / 'export')
  written = safe_load(outputs['anonymized_pyskl.pkl'])
  for a, original in zip(written['annotations'], anns):
    _check_annotation_fields(a, original)
    assert a['total_frames'] == min(7, original['total_frames'])
    order = np.argsort(-_motion(original['keypoint']), kind='stable')[:2]
    kp = original['keypoint'].astype(np.float32)[order][:a['keypoint'].shape[0], :7]
    np.testing.assert_allclose(a['keypoint'], kp, atol=0.05)      # identity round trip
  assert written['annotations'][1]['keypoint'].shape[0] == 1      # the absent person dropped
  assert written['annotations'][3]['keypoint'].shape[0] == 2
  assert written['split'] == split
  assert len(_pyskl_loader(outputs['anonymized_pyskl.pkl'], 'xsub_val')) == 3


def test_write_pyskl_keeps_only_written_samples_in_the_split_lists(tmp_path):
  path, anns, split = _dataset_2d(tmp_path)
  ds = pyskl.read_pyskl(path, max_frames=8).subset(np.array([1, 4]))
  out = tmp_path / 'two.pkl'
  assert pyskl.write_pyskl(ds, path, out) == 2
  written = safe_load(out)
  assert [a['frame_dir'] for a in written['annotations']] == [NAMES[1], NAMES[4]]
  assert written['split'] == {'xsub_train': [NAMES[4]], 'xsub_val': [NAMES[1]], 'other': []}
  with pytest.raises(Exception, match='already exists'):
    pyskl.write_pyskl(ds, path, out)
  renamed = ds.subset(np.array([0]))
  renamed.names = np.array(['S009C001P001R001A001'])
  with pytest.raises(DataError, match='not an annotation of the template pickle'):
    pyskl.write_pyskl(renamed, path, tmp_path / 'three.pkl')


def test_3d_pickle_round_trips_through_prepare_free_export(tmp_path):
  rng = np.random.default_rng(0)
  anns = [{'frame_dir': n, 'label': i % 2, 'total_frames': 5,
           'keypoint': rng.normal(size=(1, 5, 25, 3)).astype(np.float32)}
          for i, n in enumerate(NAMES)]
  path = _pickle(tmp_path / 'ntu_3danno.pkl', anns, {'xsub_train': NAMES[:3],
                                                    'xsub_val': NAMES[3:]})
  ds = pyskl.read_pyskl(path, max_frames=5)
  pyskl.write_pyskl(ds, path, tmp_path / 'back.pkl')
  written = safe_load(tmp_path / 'back.pkl')
  for a, original in zip(written['annotations'], anns):
    assert set(a) == set(original) and a['keypoint'].dtype == np.float32
    np.testing.assert_array_equal(a['keypoint'], original['keypoint'])
  assert 'keypoint_score' not in written['annotations'][0]
  assert os.path.getsize(tmp_path / 'back.pkl') > 0
