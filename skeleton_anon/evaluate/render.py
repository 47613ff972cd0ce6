"""Skeleton pictures: original above anonymized, bones from the layout (the paper's Figure 6).

`render_strip` writes a PNG of a few evenly spaced frames (matplotlib); `render_gif` an animated
GIF of the whole sequence, original and anonymized side by side (drawn directly with Pillow, which
is fast enough for hundreds of frames). Both project 3D joints onto the body's own front plane:
the vertical axis is the one along which a body is tallest frame by frame, so raw camera
coordinates (y up) and 2s-AGCN-normalised ones (z up) both come out upright. 2D keypoints are
drawn in image space (x right, y down), as the video showed them.
"""

from __future__ import annotations

import os
from typing import Sequence

import matplotlib

matplotlib.use('Agg')
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
from PIL import Image, ImageDraw  # noqa: E402

from skeleton_anon.data.dataset import atomic_write  # noqa: E402
from skeleton_anon.data.layouts import Layout  # noqa: E402

_PERSON_COLOURS = ('#1f77b4', '#d62728', '#2ca02c', '#9467bd')


def projection_axes(x: np.ndarray, length: int, layout: Layout) -> tuple[int, int, float]:
  """(horizontal axis, vertical axis, vertical sign) for drawing one sample [M, T, V, C].

  2D keypoints (C=2) are image coordinates, y down: drawn as the image shows them.
  """
  if x.shape[-1] == 2:
    return 0, 1, -1.0
  frames = x[:, :length]
  present = (frames != 0).any(axis=(2, 3))                               # [M, T]
  bodies = frames[present]                                                # [K, V, 3]
  if bodies.size == 0:
    return 0, 1, 1.0
  extent = (bodies.max(axis=1) - bodies.min(axis=1)).mean(axis=0)         # [3]
  vertical = int(np.argmax(extent))
  horizontal = int(max((a for a in range(3) if a != vertical), key=lambda a: extent[a]))
  sign = 1.0
  if layout.norm_zaxis is not None:
    bottom, top = layout.norm_zaxis
    if np.mean(bodies[:, top, vertical] - bodies[:, bottom, vertical]) < 0:
      sign = -1.0
  return horizontal, vertical, sign


def _project(x: np.ndarray, axes: tuple[int, int, float]) -> np.ndarray:
  h, v, sign = axes
  return np.stack([x[..., h], sign * x[..., v]], axis=-1)


def frame_indices(length: int, count: int) -> np.ndarray:
  """`count` evenly spaced frames of a sequence of `length` frames."""
  return np.unique(np.linspace(0, max(length - 1, 0), num=min(count, length)).round()
                   .astype(int))


def _limits(points: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
  """Square bounds around all non-zero 2D points, with a margin."""
  flat = points.reshape(-1, 2)
  flat = flat[(flat != 0).any(axis=1)]
  if flat.size == 0:
    return np.array([-1.0, -1.0]), np.array([1.0, 1.0])
  lo, hi = flat.min(axis=0), flat.max(axis=0)
  centre, half = (lo + hi) / 2, max(float((hi - lo).max()) / 2, 1e-3) * 1.1
  return centre - half, centre + half


def render_strip(original: np.ndarray, anonymized: np.ndarray, length: int, layout: Layout,
                 path, *, num_frames: int = 5, title: str = '') -> str:
  """PNG: a row of frames of the original sample above the same frames anonymized.

  Args:
    original, anonymized: one sample each, [M, T, V, 3].
    length: valid frames of the sample.
    layout: bones to draw.
    path: PNG to write (atomically).
    num_frames: frames per row, evenly spaced over the sequence.
    title: figure title (e.g. sample name and labels).
  """
  axes_choice = projection_axes(original, length, layout)
  frames = frame_indices(length, num_frames)
  rows = [('original', _project(original, axes_choice)),
          ('anonymized', _project(anonymized, axes_choice))]
  lo, hi = _limits(np.concatenate([r[1][:, :length] for r in rows]))
  fig, grid = plt.subplots(2, len(frames), figsize=(2.2 * len(frames), 5), squeeze=False)
  for r, (row_name, points) in enumerate(rows):
    for c, t in enumerate(frames):
      ax = grid[r, c]
      for m in range(points.shape[0]):
        pose = points[m, t]
        if not (pose != 0).any():
          continue
        colour = _PERSON_COLOURS[m % len(_PERSON_COLOURS)]
        for child, parent in layout.bones:
          ax.plot(pose[[child, parent], 0], pose[[child, parent], 1], '-', color=colour, lw=2)
        ax.plot(pose[:, 0], pose[:, 1], 'o', color=colour, ms=2.5)
      ax.set_xlim(lo[0], hi[0])
      ax.set_ylim(lo[1], hi[1])
      ax.set_aspect('equal')
      ax.set_xticks([])
      ax.set_yticks([])
      if r == 0:
        ax.set_title(f'frame {t}', fontsize=9)
      if c == 0:
        ax.set_ylabel(row_name)
  if title:
    fig.suptitle(title)

  def write(tmp):
    fig.savefig(tmp, format='png', dpi=90, bbox_inches='tight')

  try:
    atomic_write(os.fspath(path), write, overwrite=True, suffix='.png')
  finally:
    plt.close(fig)
  return os.fspath(path)


def _draw_pose(draw: ImageDraw.ImageDraw, points: np.ndarray, layout: Layout,
               to_pixels, offset_x: int) -> None:
  for m in range(points.shape[0]):
    pose = points[m]
    if not (pose != 0).any():
      continue
    colour = _PERSON_COLOURS[m % len(_PERSON_COLOURS)]
    px = to_pixels(pose)
    for child, parent in layout.bones:
      draw.line([(px[child, 0] + offset_x, px[child, 1]),
                 (px[parent, 0] + offset_x, px[parent, 1])], fill=colour, width=3)
    for x, y in px:
      draw.ellipse([x + offset_x - 2, y - 2, x + offset_x + 2, y + 2], fill=colour)


def render_gif(original: np.ndarray, anonymized: np.ndarray, length: int, layout: Layout,
               path, *, size: int = 200, max_frames: int = 60, fps: int = 15) -> str:
  """Animated GIF: original (left) and anonymized (right), one GIF frame per sampled frame.

  Args:
    original, anonymized: one sample each, [M, T, V, 3].
    length: valid frames; at most `max_frames` evenly spaced ones are drawn.
    size: height of the image and width of each half, in pixels.
  """
  axes_choice = projection_axes(original, length, layout)
  left, right = _project(original, axes_choice), _project(anonymized, axes_choice)
  lo, hi = _limits(np.concatenate([left[:, :length], right[:, :length]]))
  scale = (size - 20) / float((hi - lo).max())

  def to_pixels(pose):
    # Image y grows downwards; the body's up is +vertical.
    return np.stack([10 + (pose[:, 0] - lo[0]) * scale,
                     size - 10 - (pose[:, 1] - lo[1]) * scale], axis=-1)

  images = []
  for t in frame_indices(length, max_frames):
    image = Image.new('RGB', (2 * size, size), 'white')
    draw = ImageDraw.Draw(image)
    draw.line([(size, 0), (size, size)], fill='#bbbbbb', width=1)
    draw.text((6, 4), f'original  t={t}', fill='black')
    draw.text((size + 6, 4), 'anonymized', fill='black')
    _draw_pose(draw, left[:, t], layout, to_pixels, 0)
    _draw_pose(draw, right[:, t], layout, to_pixels, size)
    images.append(image)

  def write(tmp):
    images[0].save(tmp, format='GIF', save_all=True, append_images=images[1:],
                   duration=int(1000 / fps), loop=0)

  atomic_write(os.fspath(path), write, overwrite=True, suffix='.gif')
  return os.fspath(path)


def render_samples(original: np.ndarray, anonymized: np.ndarray, lengths: np.ndarray,
                   layout: Layout, out_dir, indices: Sequence[int], *,
                   names: Sequence[str] | None = None, captions: Sequence[str] | None = None,
                   gif: bool = True) -> list[str]:
  """Strip PNG (and GIF) for each chosen sample index; returns the written paths."""
  written = []
  for k, i in enumerate(indices):
    stem = f'sample_{i:05d}' if names is None else f'sample_{i:05d}_{names[i]}'
    stem = ''.join(ch if ch.isalnum() or ch in '-_' else '_' for ch in stem)
    caption = captions[k] if captions is not None else stem
    written.append(render_strip(original[i], anonymized[i], int(lengths[i]), layout,
                                os.path.join(out_dir, stem + '.png'), title=caption))
    if gif:
      written.append(render_gif(original[i], anonymized[i], int(lengths[i]), layout,
                                os.path.join(out_dir, stem + '.gif')))
  return written
