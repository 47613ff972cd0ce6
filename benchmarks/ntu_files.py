"""Seeded generator of realistic NTU RGB+D `.skeleton` text files for parsing benchmarks.

The files follow the real Kinect v2 export layout (see REFERENCE_NOTES.md, "Data formats"): a frame
count, then per frame a body count, per body a 10-value info line, a joint count and 25 lines of 12
values. Values are printed with 7 significant digits like the originals, so the text volume per frame
(and hence the parsing cost) matches real data. The mix of samples mirrors NTU60: mostly one actor,
some two-actor samples, a few spurious extra bodies, empty leading frames, and some CRLF files.
"""

from __future__ import annotations

import os

import numpy as np

NUM_JOINTS = 25

# A rough standing Kinect v2 pose in metres (x right, y up), SpineBase at the origin. The generator
# only needs plausible magnitudes and bone structure, not anatomical accuracy.
_REST_POSE = np.array([
    [0.00, 0.00, 0.00], [0.00, 0.30, 0.00], [0.00, 0.55, 0.00], [0.00, 0.68, 0.00],
    [-0.18, 0.50, 0.00], [-0.22, 0.25, 0.00], [-0.24, 0.02, 0.00], [-0.24, -0.05, 0.00],
    [0.18, 0.50, 0.00], [0.22, 0.25, 0.00], [0.24, 0.02, 0.00], [0.24, -0.05, 0.00],
    [-0.09, -0.02, 0.00], [-0.10, -0.42, 0.00], [-0.10, -0.80, 0.00], [-0.10, -0.86, 0.08],
    [0.09, -0.02, 0.00], [0.10, -0.42, 0.00], [0.10, -0.80, 0.00], [0.10, -0.86, 0.08],
    [0.00, 0.48, 0.00], [-0.24, -0.12, 0.00], [-0.21, -0.06, 0.03], [0.24, -0.12, 0.00],
    [0.21, -0.06, 0.03],
], dtype=np.float64)

# Kinect v2 depth (512x424) and colour (1920x1080) camera intrinsics, approximately.
_DEPTH_F, _DEPTH_C = 365.0, (256.0, 212.0)
_COLOR_F, _COLOR_C = 1060.0, (960.0, 540.0)


def _body_track(rng: np.random.Generator, num_frames: int) -> np.ndarray:
  """One actor's joints over time, [T, 25, 3] in camera space (metres)."""
  scale = rng.uniform(0.85, 1.15)
  position = np.array([rng.uniform(-0.8, 0.8), rng.uniform(-0.3, 0.2), rng.uniform(2.3, 3.8)])
  t = np.arange(num_frames)[:, None]
  # Each joint oscillates with its own phase: arm and leg joints move more than the trunk.
  amplitude = np.full((NUM_JOINTS, 3), 0.01)
  amplitude[[5, 6, 7, 9, 10, 11, 21, 22, 23, 24]] = rng.uniform(0.05, 0.25, size=(10, 3))
  amplitude[[13, 14, 15, 17, 18, 19]] = rng.uniform(0.01, 0.08, size=(6, 3))
  freq = rng.uniform(0.02, 0.12)
  phase = rng.uniform(0, 2 * np.pi, size=(NUM_JOINTS, 3))
  motion = amplitude[None] * np.sin(2 * np.pi * freq * t[:, :, None] + phase[None])
  drift = np.cumsum(rng.normal(0, 0.002, size=(num_frames, 1, 3)), axis=0)
  noise = rng.normal(0, 0.004, size=(num_frames, NUM_JOINTS, 3))
  return _REST_POSE[None] * scale + motion + drift + noise + position[None, None]


def _joint_lines(joints: np.ndarray, rng: np.random.Generator) -> list[str]:
  """The 25 twelve-value joint lines of one body in one frame."""
  x, y, z = joints[:, 0], joints[:, 1], joints[:, 2]
  depth_x = _DEPTH_F * x / z + _DEPTH_C[0]
  depth_y = -_DEPTH_F * y / z + _DEPTH_C[1]
  color_x = _COLOR_F * x / z + _COLOR_C[0]
  color_y = -_COLOR_F * y / z + _COLOR_C[1]
  quat = rng.normal(size=(NUM_JOINTS, 4))
  quat /= np.linalg.norm(quat, axis=1, keepdims=True)
  tracking = np.where(rng.random(NUM_JOINTS) < 0.93, 2, 1)
  lines = []
  for j in range(NUM_JOINTS):
    values = (x[j], y[j], z[j], depth_x[j], depth_y[j], color_x[j], color_y[j], *quat[j])
    lines.append(' '.join(f'{v:.7g}' for v in values) + f' {tracking[j]}')
  return lines


def _body_info_line(body_id: int, rng: np.random.Generator) -> str:
  lean = rng.normal(0, 0.1, size=2)
  hand_states = rng.integers(0, 4, size=2)
  return (f'{body_id} 0 1 {hand_states[0]} 1 {hand_states[1]} 0 '
          f'{lean[0]:.7g} {lean[1]:.7g} 2')


def skeleton_text(rng: np.random.Generator, num_frames: int, num_actors: int,
                  spurious_body: bool, empty_lead: int) -> str:
  """The full text of one `.skeleton` file (LF line endings)."""
  tracks = [_body_track(rng, num_frames) for _ in range(num_actors)]
  body_ids = [int(rng.integers(72057594037927936, 72057594037999999)) for _ in range(num_actors + 1)]
  # A spurious body (a chair, a passer-by) flickers in for a stretch of frames.
  ghost_start = int(rng.integers(0, max(1, num_frames // 2)))
  ghost_stop = ghost_start + int(rng.integers(5, 30))
  ghost = _body_track(rng, num_frames) if spurious_body else None
  lines = [str(num_frames)]
  for t in range(num_frames):
    if t < empty_lead:
      lines.append('0')
      continue
    bodies = [(body_ids[m], tracks[m][t]) for m in range(num_actors)]
    if ghost is not None and ghost_start <= t < ghost_stop:
      bodies.append((body_ids[-1], ghost[t]))
    lines.append(str(len(bodies)))
    for body_id, joints in bodies:
      lines.append(_body_info_line(body_id, rng))
      lines.append(str(NUM_JOINTS))
      lines.extend(_joint_lines(joints, rng))
  return '\n'.join(lines) + '\n'


# Distinct (camera, replication, setup, performer) combinations: names stay unique below this count.
MAX_FILES = 3 * 2 * 17 * 40


def sample_name(index: int, rng: np.random.Generator, two_person: bool) -> str:
  """A unique NTU-style name SsssCcccPpppRrrrAaaa; two-person actions are A050-A060."""
  camera = 1 + index % 3
  replication = 1 + (index // 3) % 2
  setup = 1 + (index // 6) % 17
  performer = 1 + (index // 102) % 40
  action = int(rng.integers(50, 61)) if two_person else int(rng.integers(1, 50))
  return f'S{setup:03d}C{camera:03d}P{performer:03d}R{replication:03d}A{action:03d}'


def write_ntu_files(out_dir: str, num_files: int, seed: int = 0, min_frames: int = 60,
                    max_frames: int = 160, crlf_fraction: float = 0.15,
                    two_person_fraction: float = 0.2, spurious_fraction: float = 0.05
                    ) -> tuple[list[str], int]:
  """Writes `num_files` realistic `.skeleton` files into `out_dir`.

  Args:
    out_dir: an existing or new folder.
    num_files: how many files to write.
    seed: the files are a deterministic function of the arguments.
    min_frames, max_frames: frame counts are drawn uniformly in this range (NTU60: mostly 50-150).
    crlf_fraction: share of files written with Windows line endings.
    two_person_fraction: share of two-actor samples.
    spurious_fraction: share of files with an extra, short-lived body.

  Returns:
    The sorted file paths and the total number of frames over all files.
  """
  if num_files > MAX_FILES:
    raise ValueError(f'at most {MAX_FILES} files keep unique NTU names, asked for {num_files}')
  os.makedirs(out_dir, exist_ok=True)
  rng = np.random.default_rng(seed)
  paths, total_frames = [], 0
  for index in range(num_files):
    two_person = rng.random() < two_person_fraction
    num_frames = int(rng.integers(min_frames, max_frames + 1))
    empty_lead = int(rng.integers(1, 4)) if rng.random() < 0.1 else 0
    text = skeleton_text(rng, num_frames, 2 if two_person else 1,
                         spurious_body=rng.random() < spurious_fraction, empty_lead=empty_lead)
    newline = '\r\n' if rng.random() < crlf_fraction else '\n'
    path = os.path.join(out_dir, sample_name(index, rng, two_person) + '.skeleton')
    # open() translates each '\n' of the text into the chosen line ending.
    with open(path, 'w', newline=newline) as f:
      f.write(text)
    paths.append(path)
    total_frames += num_frames
  return sorted(paths), total_frames
