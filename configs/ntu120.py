"""NTU RGB+D 120: re-identification and gender anonymization on its two protocols, by row name.

  python -m skeleton_anon.main --config=configs/ntu120.py:xset_reid --workdir=runs/ntu120_xset_reid

Rows (ROWS below):
  xset_reid    re-identification, cross-setup: even setups train, odd setups test (NTU120's
               replacement for NTU60's cross-view; the same performers at other camera heights
               and distances). The default row.
  xset_gender  gender, cross-setup.
  xsub_gender  gender, cross-subject: the official 53 training performers train, the other 53
               test (gender of people never seen in training, as ETRI's protocol).
There is no xsub re-identification row: cross-subject holds the test performers out of
training, and a re-identification classifier cannot name people it never saw
(`splits.check_identity_split` refuses such a split).

Input: the 114,480 `.skeleton` files of both NTU120 downloads (s001-s017 and s018-s032) in one
folder, converted once per protocol (XSUB_PREPARE / XSET_PREPARE below, also shown when the file
is missing). NTU ships no gender labels: the gender rows need `--gender_file=GENDERS.csv` (rows
`P###,M|F`); without it the file serves the re-identification row only. pyskl's
`ntu120_3danno.pkl` / `ntu120_hrnet.pkl` (2D COCO-17) work too: `--source=pyskl
--pyskl_split=xset`, or `--config.data.path=ntu120_hrnet.pkl --config.data.pyskl_split=xset`
directly (no gender in those pickles).

Network and training: the paper's NTU row (`table4.py:ntu_res_adv`: residual anonymizer,
adversarial, MS-G3D classifiers with the reference code's NTU pretraining); the gender rows judge
gender with MS-G3D without G3D, as the paper's ETRI gender rows do.
"""

import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import table4  # noqa: E402  pylint: disable=g-import-not-at-top

XSUB_PATH = 'data/ntu120_xsub.npz'
XSET_PATH = 'data/ntu120_xset.npz'


def _prepare(split: str, path: str) -> str:
  return ('python -m skeleton_anon.prepare --source=ntu_raw --input=nturgb+d_skeletons/ '
          '--missing_list=NTU_RGBD120_samples_with_missing_skeletons.txt '
          f'--gender_file=GENDERS.csv --split={split} --output={path}')


XSUB_PREPARE = _prepare('ntu_xsub', XSUB_PATH)
XSET_PREPARE = _prepare('ntu_xset', XSET_PATH)

# name -> (privacy target, split rule, data file, prepare command)
ROWS = {
    'xset_reid': ('subject', 'ntu_xset', XSET_PATH, XSET_PREPARE),
    'xset_gender': ('gender', 'ntu_xset', XSET_PATH, XSET_PREPARE),
    'xsub_gender': ('gender', 'ntu_xsub', XSUB_PATH, XSUB_PREPARE),
}
DEFAULT_ROW = 'xset_reid'


def get_config(row: str | None = None):
  """The config of row `row` (`--config=configs/ntu120.py:ROW`)."""
  row = row or DEFAULT_ROW
  if row == 'xsub_reid':
    raise ValueError('configs/ntu120.py: no xsub_reid row: cross-subject tests performers that '
                     'training never sees, which a re-identification classifier cannot name; '
                     'use xset_reid (same performers, other setups)')
  if row not in ROWS:
    raise ValueError(f'configs/ntu120.py: unknown row {row!r}; rows: {", ".join(ROWS)}')
  target, rule, path, prepare = ROWS[row]
  c = table4.get_config('ntu_res_adv')
  c.data.path = path
  c.data.privacy_target = target
  c.data.split_rule = rule
  c.data.prepare_hint = prepare
  if target == 'gender':
    c.classifiers.privacy.arch = 'msg3d_nog3d'
  return c
