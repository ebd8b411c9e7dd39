"""``largegraph bench``: largegraph against DGL's documented training loop, in one run.

:mod:`largegraph.benchmark.command` runs the comparison; :mod:`largegraph.benchmark.reference` is the
reference loop, run in its own plain subprocess.
"""
