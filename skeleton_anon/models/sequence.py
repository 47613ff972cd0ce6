"""SGN-style classifier (Zhang et al., CVPR 2020): no fixed skeleton graph, for attacker diversity.

The zoo's other classifiers are graph convolutions over the layout's bones, so they share one
inductive bias; an anonymizer tuned against them may leave what a different family reads. This
network never sees the bone list: each joint is embedded from its position, its velocity and a
learned joint identity ("semantics"), joints exchange information through a data-driven
adjacency (softmax of embedding similarities, recomputed every frame, i.e. self-attention),
then the joints are max-pooled per frame and a temporal convolution reads the sequence. Padded
frames (all zero) are left out of the final temporal pooling; absent persons out of the person
average.

Knobs: width 64 (joint embedding), joint_layers 2 (adjacency + mixing rounds), temporal_kernel
3, dropout 0.1. Input [N, M, T, V, C] channels last, as every zoo model.
"""

from __future__ import annotations

import flax.linen as nn
import jax.numpy as jnp

from skeleton_anon.models.registry import register_classifier


class _Embed(nn.Module):
  features: int

  @nn.compact
  def __call__(self, x):
    return nn.Dense(self.features)(nn.relu(nn.Dense(self.features)(x)))


class JointMixing(nn.Module):
  """Data-driven adjacency G = softmax(theta(z) phi(z)^T) over joints, then z + relu(BN(G z W))."""
  features: int

  @nn.compact
  def __call__(self, z, train: bool):
    theta = nn.Dense(self.features, use_bias=False)(z)
    phi = nn.Dense(self.features, use_bias=False)(z)
    adjacency = nn.softmax(jnp.einsum('...vf,...wf->...vw', theta, phi) / jnp.sqrt(
        float(self.features)), axis=-1)
    mixed = nn.Dense(self.features)(jnp.einsum('...vw,...wf->...vf', adjacency, z))
    mixed = nn.BatchNorm(use_running_average=not train, momentum=0.9)(mixed)
    return z + nn.relu(mixed)


class SGN(nn.Module):
  num_classes: int
  num_persons: int
  num_joints: int
  width: int = 64
  joint_layers: int = 2
  temporal_kernel: int = 3
  dropout: float = 0.1

  @nn.compact
  def __call__(self, x, train: bool = False):
    n, m, t, v, c = x.shape
    frames = x.reshape(n * m, t, v, c)
    valid = jnp.any(frames != 0, axis=(2, 3))                              # [NM, T]
    velocity = jnp.concatenate([jnp.zeros_like(frames[:, :1]),
                                frames[:, 1:] - frames[:, :-1]], axis=1)
    velocity = velocity * (valid[:, :, None, None] &
                           jnp.pad(valid[:, :-1], ((0, 0), (1, 0)))[:, :, None, None])
    joint_id = nn.Embed(self.num_joints, self.width)(jnp.arange(v))        # [V, F]
    z = _Embed(self.width)(frames) + _Embed(self.width)(velocity) + joint_id
    for _ in range(self.joint_layers):
      z = JointMixing(self.width)(z, train)
    # Padded frames become exact zeros, as the convolution's own padding: a sequence then reads
    # the same whatever T it was padded to.
    h = jnp.max(z, axis=2) * valid[..., None]                              # [NM, T, F]
    h = nn.Conv(2 * self.width, (self.temporal_kernel,), padding='SAME')(h)
    h = nn.relu(nn.BatchNorm(use_running_average=not train, momentum=0.9)(h))
    h = nn.Dropout(self.dropout, deterministic=not train)(h)
    h = nn.relu(nn.Dense(2 * self.width)(h))
    h = jnp.max(jnp.where(valid[..., None], h, -1e9), axis=1)              # [NM, 2F]
    h = jnp.where(jnp.any(valid, axis=1, keepdims=True), h, 0.0).reshape(n, m, -1)
    present = jnp.any(valid.reshape(n, m, t), axis=2).astype(h.dtype)[..., None]
    h = jnp.sum(h * present, axis=1) / jnp.maximum(jnp.sum(present, axis=1), 1.0)
    return nn.Dense(self.num_classes)(h)


@register_classifier('sgn')
def build_sgn(*, num_classes: int, layout, num_persons: int, width: int = 64,
              joint_layers: int = 2, temporal_kernel: int = 3, dropout: float = 0.1) -> SGN:
  """SGN-style network; the layout gives only the joint count (no bones are used)."""
  return SGN(num_classes=num_classes, num_persons=num_persons, num_joints=layout.num_joints,
             width=width, joint_layers=joint_layers, temporal_kernel=temporal_kernel,
             dropout=dropout)
