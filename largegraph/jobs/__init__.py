"""The orchestrator: a job store (SQLite), a daemon that runs training jobs, and the CLI around them.

It talks to training only through files and processes (a job's resolved config, its run directory,
``largegraph train`` as a child process group), never through in-process objects, so the same daemon
could hand jobs to torchrun, Slurm or a pod.

Modules:
    workspace  where a workspace keeps its store, job configs and run directories
    store      the SQLite job store: schema, migrations, atomic claims
    procs      process liveness and signals (pids that may be reused, process groups)
    progress   what a run directory says about a job: metrics, heartbeat, last error line
    submission validating-then-queueing a job: shared by ``submit`` and the HTTP API
    daemon     ``largegraph serve``: claims, runs, retries, recovers and drains jobs
    cli        ``serve``, ``submit``, ``status``, ``logs``, ``cancel``

The same service over the network (API, tokens, remote CLI, status page) is ``largegraph.server``.
"""
