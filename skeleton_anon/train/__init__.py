"""Training engine: pure jit-able steps over a device mesh, classifier banks, Orbax checkpoints and
the staged pipeline (`pipeline.run(config, workdir)`, its `Run` context).

Modules: losses, steps (pure steps), state (NetState, optimisers), parallel (mesh, shardings,
global batches), data_iter, checkpoint, loop (the shared training loop), pretrain (banks),
anonymization, data_setup, workdir, stages, pipeline.
"""
