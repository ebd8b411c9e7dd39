"""Tasks: the loss and the evaluation on top of any encoder; one ``task:`` key picks one.

A task object gives the trainer ``metric``, ``loss(model, batch)``, ``evaluate(model, device)`` and
``predictions(result)``; :mod:`largegraph.training.run` builds it with the model and the loader.
"""
