"""``largegraph bench``: largegraph against DGL's documented training loop, in one run.

:mod:`largegraph.benchmark.command` runs the comparison; :mod:`largegraph.benchmark.reference` is the
reference loop (:mod:`largegraph.benchmark.reference_typed` the typed one), run in its own plain subprocess.
"""
