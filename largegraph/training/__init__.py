"""Training components and the loop: the Trainer, checkpoints, run directory, metrics.

* :mod:`~largegraph.training.protocols`: the seams (dataset, batch loader, task, backend) as protocols.
* :mod:`~largegraph.training.assembly`: config -> model, loader, task -> :class:`~largegraph.training.components.Components`.
* :mod:`~largegraph.training.trainer`: the loop; :mod:`~largegraph.training.run`: one run's process control.
"""
