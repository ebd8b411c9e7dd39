"""``largegraph bench``: largegraph against DGL's documented training loop, in one run.

:mod:`largegraph.bench.command` runs the comparison; :mod:`largegraph.bench.reference` is the
reference loop, run in its own plain subprocess.
"""
