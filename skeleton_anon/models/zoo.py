"""Imports every model module so that each registers itself."""
# Model modules are added here as they are written, e.g.:
# from skeleton_anon.models import anonymizers, msg3d, shiftgcn, agcn, stgcn, ctrgcn  # noqa
