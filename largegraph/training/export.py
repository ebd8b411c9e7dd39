"""What a finished run hands its users: model.pt, predictions, embeddings, summary, curves."""
from __future__ import annotations

from torch import nn

from largegraph.training.checkpoint import save_tensors
from largegraph.config import config_digest
from largegraph.training.report import plot_curves
from largegraph.training.rundir import RunDir


class RunExport:
    """Writes the final artefacts of a run into its run directory (rank 0 only).

    Args:
        run: the run directory.
        task: gives the metric name and what predictions.pt holds.
        embeddings: also write embeddings.pt (``train.export_embeddings``).
    """

    def __init__(self, run: RunDir, task, embeddings: bool = False):
        self.run = run
        self.task = task
        self.embeddings = embeddings

    def write(self, model: nn.Module, result: dict, summary: dict) -> dict:
        """Save the final weights and the evaluation ``result`` of them; returns the full summary."""
        m = self.task.metric
        save_tensors(self.run.model_path, {k: v.cpu() for k, v in model.state_dict().items()})
        save_tensors(self.run.predictions_path, self.task.predictions(result))
        if self.embeddings:
            save_tensors(self.run.embeddings_path, self.task.embeddings_of(result))
        summary = {"metric": m, f"test_{m}": result[f"test_{m}"], f"valid_{m}": result[f"valid_{m}"],
                   f"train_{m}": result[f"train_{m}"], **summary, "run_dir": str(self.run.path)}
        if self.run.config_path.exists():  # the job this summary answers (a rerun of it prints it at once)
            summary["config_digest"] = config_digest(self.run.config_path.read_text())
        self.run.append_metrics({"kind": "final", **summary})
        self.run.write_summary(summary)
        plot_curves(self.run, m)
        return summary
