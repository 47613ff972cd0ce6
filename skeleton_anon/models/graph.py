"""Graphs built from a joint layout: adjacency, spatial partitions, k-hop neighbour sets.

All functions return numpy float32 arrays (static constants for the models), computed from the
layout's bone list so every model runs on any skeleton.
"""

from __future__ import annotations

import numpy as np

from skeleton_anon.data.layouts import Layout


def adjacency(layout: Layout, *, self_loops: bool = False) -> np.ndarray:
  """Symmetric 0/1 adjacency [V, V] of the bones."""
  v = layout.num_joints
  a = np.zeros((v, v), np.float32)
  for i, j in layout.bones:
    a[i, j] = a[j, i] = 1.0
  if self_loops:
    a += np.eye(v, dtype=np.float32)
  return a


def normalize_digraph(a: np.ndarray) -> np.ndarray:
  """A @ D^-1 with D the column degree (ST-GCN / 2s-AGCN convention); zero columns stay zero."""
  deg = a.sum(axis=0)
  inv = np.where(deg > 0, 1.0 / np.maximum(deg, 1e-12), 0.0).astype(np.float32)
  return (a * inv[None, :]).astype(np.float32)


def normalize_symmetric(a: np.ndarray) -> np.ndarray:
  """D^-1/2 A D^-1/2 (MS-G3D convention)."""
  deg = a.sum(axis=1)
  inv = np.where(deg > 0, 1.0 / np.sqrt(np.maximum(deg, 1e-12)), 0.0).astype(np.float32)
  return (inv[:, None] * a * inv[None, :]).astype(np.float32)


def spatial_partition(layout: Layout) -> np.ndarray:
  """[3, V, V]: identity, inward (towards the root), outward; each normalised (2s-AGCN 'spatial')."""
  v = layout.num_joints
  inward = np.zeros((v, v), np.float32)
  parents = layout.parents
  for j in range(v):
    if parents[j] != j:
      inward[j, parents[j]] = 1.0   # edge j -> parent(j)
  outward = inward.T.copy()
  return np.stack([np.eye(v, dtype=np.float32), normalize_digraph(inward),
                   normalize_digraph(outward)])


def hop_distance(layout: Layout) -> np.ndarray:
  """[V, V] shortest path lengths along bones (inf when unreachable)."""
  v = layout.num_joints
  a = adjacency(layout) > 0
  dist = np.full((v, v), np.inf, np.float32)
  reach = np.eye(v, dtype=bool)
  dist[reach] = 0
  frontier = np.eye(v, dtype=bool)
  for d in range(1, v):
    frontier = (frontier.astype(np.int32) @ a.astype(np.int32) > 0) & ~reach
    if not frontier.any():
      break
    dist[frontier] = d
    reach |= frontier
  return dist
