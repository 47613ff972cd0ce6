"""skeleton_anon: measure and remove private information from 3D skeleton action data.

A JAX/Flax reimplementation of "Anonymization for Skeleton Action Recognition"
(Moon et al., arXiv 2111.15129), with honest held-out privacy evaluation.
"""

__version__ = '0.1.0'
