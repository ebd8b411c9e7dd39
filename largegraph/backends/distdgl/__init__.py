"""Training on DGL's distributed engine (``distributed.mode: distdgl``): partitions served by graph
servers, trainers sampling from a ``DistGraph``.

* :mod:`~largegraph.backends.distdgl.launcher`: starts the graph servers, then the trainers (on this machine with
  ``--distdgl-local N``, or on the machines of an ip_config through ``distributed.remote_shell``), and
  watches them: the first process to fail ends the whole group, with one line saying which and how.
* :mod:`~largegraph.backends.distdgl.roles`: what a process the launcher started does (serve, or join and train).
* :mod:`~largegraph.backends.distdgl.data`: the dataset as a trainer sees it (a ``DistGraph`` and its own share
  of every split).
* :mod:`~largegraph.backends.distdgl.loaders`: batches sampled from the ``DistGraph``, behind the loader
  interface the trainer already takes.
* :mod:`~largegraph.backends.distdgl.evaluation`: exact, layer-wise inference shared by all trainers, handed
  to the single-machine tasks as their exact evaluation.
* :mod:`~largegraph.backends.distdgl.backend`: the backend (dataset, loaders, tasks) and a process's role.
* :mod:`~largegraph.backends.distdgl.partition` writes the partitions; :mod:`~largegraph.backends.distdgl.partfiles`
  names what it writes beside them.

The trainer, the tasks, the models, checkpoints and the run directory are the single-machine ones.
Typed graphs (node classification on one node type) take the same path: partitions keep the node
types and relations, the ``DistGraph`` has them, the loader samples typed blocks with per-relation
fanouts, and the evaluation runs the typed encoder layer by layer per type; the typed models and task
are the single-machine ones too.
"""
