"""MS-G3D (Liu et al., CVPR 2020) and the paper's gender classifier (MS-G3D without G3D).

Registered classifiers (`build_classifier(name, num_classes=K, layout=L, num_persons=M, **knobs)`):
  'msg3d'        three STGC blocks; each sums an MS-GCN -> MS-TCN -> MS-TCN pathway and a
                 multi-window G3D pathway, applies relu, then one more MS-TCN.
                 60 classes, 2 persons, ntu25: 3,194,595 parameters (as the original).
  'msg3d_nog3d'  the same without the G3D pathways (Moon et al.'s gender classifier).
                 2 classes, 1 person, ntu25: 1,415,855 parameters.

Input x [N, M, T, V, C]; `data_bn` over (M, V, C), persons folded into the batch, global average
pooling over T and V, mean over persons, Dense. No dropout (the original has none). Padded frames
and absent persons are zeros and go through the network as zeros, as in the original.

Knobs (defaults = the paper's sizes):
  base_channels: 96; the three blocks use base, 2*base, 4*base channels (a multiple of
    len(tcn_dilations) + 2, the MS-TCN branch count).
  num_gcn_scales: 13 (k-hop scales of MS-GCN). num_g3d_scales: 6 (scales of the window graph).
  windows: (3, 5) G3D window sizes. window_dilations: (1, 1).
  tcn_dilations: (1, 2, 3, 4) MS-TCN branch dilations. tcn_kernel_size: 3.
  num_stages: 3 STGC blocks (block i has base * 2**i channels, stride 2 from the second on);
    fewer blocks make tiny test models that compile fast.
  use_g3d: True for 'msg3d', False for 'msg3d_nog3d'.
"""

from __future__ import annotations

import dataclasses
import flax.linen as nn
import jax

from skeleton_anon.data.layouts import Layout
from skeleton_anon.errors import ConfigError
from skeleton_anon.models.layers import InputBatchNorm, PoolingHead
from skeleton_anon.models.msg3d_blocks import (MultiScaleGraphConv, MultiScaleTemporalConv,
                                               MultiWindowG3D)
from skeleton_anon.models.registry import check_channels, register_classifier


class MSG3D(nn.Module):
  """MS-G3D classifier: x [N, M, T, V, C] -> logits [N, num_classes]."""
  num_classes: int
  num_persons: int
  bones: tuple[tuple[int, int], ...]   # the layout's (child, parent) pairs (static, hashable)
  num_joints: int
  base_channels: int = 96
  num_gcn_scales: int = 13
  num_g3d_scales: int = 6
  windows: tuple[int, ...] = (3, 5)
  window_dilations: tuple[int, ...] = (1, 1)
  tcn_dilations: tuple[int, ...] = (1, 2, 3, 4)
  tcn_kernel_size: int = 3
  num_stages: int = 3
  use_g3d: bool = True

  @nn.compact
  def __call__(self, x: jax.Array, train: bool = False) -> jax.Array:
    h = InputBatchNorm(name='data_bn')(x, train)                     # [N*M, T, V, C]
    in_width = self.base_channels  # the first MS-GCN widens 3 -> base at once
    for stage in range(self.num_stages):
      width = self.base_channels * 2 ** stage
      stride = 1 if stage == 0 else 2
      tcn = dict(kernel_size=self.tcn_kernel_size, dilations=tuple(self.tcn_dilations))
      # The MS-GCN keeps the previous block's width; the first MS-TCN widens.
      spatial = MultiScaleGraphConv(in_width, self.bones, self.num_joints, self.num_gcn_scales,
                                    name=f'sgcn{stage + 1}_gcn')(h, train)
      spatial = MultiScaleTemporalConv(width, stride=stride, name=f'sgcn{stage + 1}_tcn1',
                                       **tcn)(spatial, train)
      spatial = MultiScaleTemporalConv(width, final_activation=False,
                                       name=f'sgcn{stage + 1}_tcn2', **tcn)(spatial, train)
      if self.use_g3d:
        g3d = MultiWindowG3D(width, self.bones, self.num_joints, self.num_g3d_scales,
                             windows=tuple(self.windows),
                             window_dilations=tuple(self.window_dilations), stride=stride,
                             widen_first=stage == 0, name=f'gcn3d{stage + 1}')
        spatial = spatial + g3d(h, train)
      h = nn.relu(spatial)
      h = MultiScaleTemporalConv(width, name=f'tcn{stage + 1}', **tcn)(h, train)
      in_width = width
    return PoolingHead(self.num_classes, self.num_persons, name='head')(h, train)


def _build(name: str, *, num_classes: int, layout: Layout, num_persons: int, use_g3d: bool,
           **knobs) -> MSG3D:
  known = {f.name for f in dataclasses.fields(MSG3D)} - {
      'parent', 'name', 'num_classes', 'num_persons', 'bones', 'num_joints', 'use_g3d'}
  unknown = sorted(set(knobs) - known)
  if unknown:
    raise ConfigError(f'classifier {name!r}: unknown knobs {unknown}; known: {sorted(known)}')
  for key in ('windows', 'window_dilations', 'tcn_dilations'):
    if key in knobs:  # configs may give lists; tuples keep the module hashable
      knobs[key] = tuple(int(k) for k in knobs[key])
  branches = len(knobs.get('tcn_dilations', MSG3D.tcn_dilations)) + 2
  base = knobs.get('base_channels', MSG3D.base_channels)
  check_channels(name, base, multiple_of=branches, why='the MS-TCN branch count')
  windows = tuple(knobs.get('windows', MSG3D.windows))
  knobs.setdefault('window_dilations', (1,) * len(windows))
  if len(windows) != len(knobs['window_dilations']):
    raise ConfigError(f'classifier {name!r}: windows and window_dilations differ in length')
  return MSG3D(num_classes=num_classes, num_persons=num_persons,
               bones=tuple((int(a), int(b)) for a, b in layout.bones),
               num_joints=layout.num_joints, use_g3d=use_g3d, **knobs)


@register_classifier('msg3d')
def build_msg3d(*, num_classes: int, layout: Layout, num_persons: int, **knobs) -> MSG3D:
  """Full MS-G3D (knobs in the module docstring)."""
  return _build('msg3d', num_classes=num_classes, layout=layout, num_persons=num_persons,
                use_g3d=True, **knobs)


@register_classifier('msg3d_nog3d')
def build_msg3d_nog3d(*, num_classes: int, layout: Layout, num_persons: int,
                      **knobs) -> MSG3D:
  """MS-G3D without its G3D pathways: the paper's gender classifier."""
  return _build('msg3d_nog3d', num_classes=num_classes, layout=layout,
                num_persons=num_persons, use_g3d=False, **knobs)
