"""A tiny Linen classifier and anonymizer with the registry contracts, for fast engine tests."""

import flax.linen as nn
import jax.numpy as jnp

from skeleton_anon.data.transforms import valid_mask


class TinyClassifier(nn.Module):
  """Mean over time of per-frame features -> BatchNorm -> dropout -> logits."""
  num_classes: int
  width: int = 8

  @nn.compact
  def __call__(self, x, train: bool = False):
    n, m, t, v, c = x.shape
    h = nn.Dense(self.width)(x.reshape(n, m, t, v * c))
    h = jnp.mean(nn.relu(h), axis=(1, 2))
    h = nn.BatchNorm(use_running_average=not train, momentum=0.9)(h)
    h = nn.Dropout(0.1, deterministic=not train)(h)
    return nn.Dense(self.num_classes)(h)


class TinyAnonymizer(nn.Module):
  """x + a small per-frame residual; padded frames and absent persons stay zero."""

  @nn.compact
  def __call__(self, x, lengths):
    n, m, t, v, c = x.shape
    flat = x.reshape(n, m, t, v * c)
    delta = nn.Dense(v * c, kernel_init=nn.initializers.normal(0.01))(flat).reshape(x.shape)
    return (x + delta) * valid_mask(x, lengths).astype(x.dtype)[..., None, None]
