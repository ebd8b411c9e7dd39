"""The orchestrator: a job store (SQLite), a daemon that runs training jobs, and the service interface
the commands call.

It talks to training only through files and processes (a job's resolved config, its run directory,
``largegraph train`` as a child process group), never through in-process objects, so the same daemon
could hand jobs to torchrun, Slurm or a pod.

Modules (lowest first; none imports ``largegraph.server``, the layer above):
    workspace  where a workspace keeps its store, job configs and run directories
    schema     the store's tables and migrations, job states, row types, named errors
    store      the SQLite job store: reads, writes, atomic claims
    procs      process liveness and signals (pids that may be reused, process groups), on psutil
    progress   what a run directory says about a job: metrics, heartbeat, last error line
    submission validating-then-queueing a job: shared by ``submit`` and the HTTP API
    views      ``JobView``, the one typed shape of a job (``--json``, the API, the client), and the
               lines the commands print
    service    ``JobService``, the interface the commands call: submit, list, get, logs, metrics,
               cancel, fetch
    local      ``LocalJobService``: that interface over this workspace's store and run directories
    daemon     ``largegraph serve``: claims, runs, retries, recovers and drains jobs

The same service over the network (API, tokens, remote CLI, status page) is ``largegraph.server``;
the commands (``serve``, ``submit``, ``status``, ``logs``, ``cancel``, ``fetch``) are ``largegraph.cli.jobs``.
"""
