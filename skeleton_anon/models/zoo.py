"""Imports every model module so that each registers itself."""
# Model modules are added here as they are written, e.g.:
# from skeleton_anon.models import anonymizers, msg3d, shiftgcn, agcn, stgcn, ctrgcn  # noqa
from skeleton_anon.models import anonymizers  # noqa: F401
from skeleton_anon.models import temporal_anonymizer  # noqa: F401
from skeleton_anon.models import msg3d  # noqa: F401
from skeleton_anon.models import agcn, ctrgcn, shiftgcn, stgcn  # noqa: F401
from skeleton_anon.models import sequence  # noqa: F401  (SGN-style, the non-graph attacker)
