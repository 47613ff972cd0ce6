"""Training engine: pure jit-able steps over a device mesh, classifier banks, Orbax checkpoints.
The staged run that uses it lives one layer up, in skeleton_anon.pipeline.

Modules: losses, steps (pure steps), state (NetState, optimisers), parallel (mesh, shardings,
global batches), data_iter, checkpoint, loop (the shared training loop), pretrain (banks),
anonymization.
"""
