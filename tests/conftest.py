"""Forces 8 host CPU devices before jax is imported, so every sharded code path runs in tests."""

import os

os.environ['XLA_FLAGS'] = (os.environ.get('XLA_FLAGS', '') +
                           ' --xla_force_host_platform_device_count=8').strip()
os.environ.setdefault('JAX_PLATFORMS', 'cpu')

import jax  # noqa: E402  (must come after XLA_FLAGS)

assert jax.device_count() == 8, jax.devices()
