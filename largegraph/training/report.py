"""Looking at a run: curves.png and a summary table, from the run directory alone."""
from __future__ import annotations

import json
from pathlib import Path

from largegraph.training.rundir import RunDir


def plot_curves(run: RunDir, metric: str = "acc") -> Path | None:
    """Draw loss and train/valid/test metric per epoch into ``curves.png``; None if no epochs yet."""
    epochs = [r for r in run.read_metrics() if r.get("kind") == "epoch"]
    if not epochs:
        return None
    import matplotlib

    matplotlib.use("Agg")  # headless: runs on servers and in containers
    import matplotlib.pyplot as plt

    fig, (ax_loss, ax_metric) = plt.subplots(1, 2, figsize=(10, 4))
    xs = [r["epoch"] for r in epochs]
    ax_loss.plot(xs, [r["loss"] for r in epochs], marker="o")
    ax_loss.set(xlabel="epoch", ylabel="training loss", title="loss")
    for part in ("train", "valid", "test"):
        key = f"{part}_{metric}"
        points = [(r["epoch"], r[key]) for r in epochs if r.get(key) is not None]
        if points:
            ax_metric.plot(*zip(*points), marker="o", label=part)
    # Accuracy on the sampled training batches shares the axis only when the metric is accuracy
    # (for link prediction it is the positive/negative classification rate, not Hits@K or MRR).
    points = [(r["epoch"], r["batch_train_acc"]) for r in epochs if r.get("batch_train_acc") is not None]
    if points and metric == "acc":
        ax_metric.plot(*zip(*points), linestyle="--", label="train (sampled batches)")
    ax_metric.set(xlabel="epoch", ylabel=metric, title=metric)
    ax_metric.legend()
    for ax in (ax_loss, ax_metric):
        ax.grid(alpha=0.3)
    fig.tight_layout()
    fig.savefig(run.curves_path, dpi=100)
    plt.close(fig)
    return run.curves_path


def summary_line(summary: dict, metric: str = "acc") -> str:
    """The one-line result printed last by `largegraph train`."""
    return (f"test_{metric}={summary[f'test_{metric}']:.4f} val_{metric}={summary[f'valid_{metric}']:.4f} "
            f"epochs={summary['epochs']} time={summary['time_s']:.1f}s run_dir={summary['run_dir']}")


def summary_table(run: RunDir, metric: str = "acc") -> str:
    """A one-screen table of the run: per-epoch metrics and the final result."""
    epochs = [r for r in run.read_metrics() if r.get("kind") == "epoch"]
    cols = ["epoch", "loss", f"train_{metric}", f"valid_{metric}", f"test_{metric}", "lr", "time_s", "batches_per_s"]
    lines = ["  ".join(f"{c:>13}" for c in cols)]
    for r in epochs:
        cells = []
        for c in cols:
            v = r.get(c)
            cells.append(f"{v:>13.4f}" if isinstance(v, float) else f"{'' if v is None else v:>13}")
        lines.append("  ".join(cells))
    return "\n".join(lines)


def _metric_from_log(run: RunDir) -> str:
    for record in run.read_metrics():
        for key in record:
            if key.startswith("valid_"):
                return key.removeprefix("valid_")
    return "acc"


def report(run_dir: str | Path) -> str:
    """Redraw curves.png and return the summary table plus the final line."""
    run = RunDir.existing(run_dir, RunDir.METRICS)
    summary = json.loads(run.summary_path.read_text()) if run.summary_path.exists() else None
    metric = summary.get("metric", "acc") if summary else _metric_from_log(run)
    plot_curves(run, metric)
    text = summary_table(run, metric)
    if summary:
        text += "\n" + summary_line(summary, metric)
    else:
        text += "\n(run not finished: no summary.json yet)"
    return text + f"\ncurves: {run.curves_path}"


def epoch_line(r: dict, metric: str) -> str:
    """The progress line of one epoch's metrics record."""
    parts = [f"epoch {r['epoch']:>3}", f"loss {r['loss']:.4f}"]
    for part in ("train", "valid", "test"):
        if r.get(f"{part}_{metric}") is not None:
            parts.append(f"{part}_{metric} {r[f'{part}_{metric}']:.4f}")
    parts.append(f"{r['time_s']:.1f}s ({r['batches_per_s']:.1f} batches/s, {r['nodes_per_s']:.0f} nodes/s)")
    return "  ".join(parts)


def resume_lines(record: dict, seeds: int) -> list[str]:
    """What a resume says, from its metrics record (``kind: resume``), ``seeds`` the epoch order's length."""
    epoch, world, saved = record["epoch"], record["world_size"], record["saved_world_size"]
    lines = [f"resumed from checkpoint {record['checkpoint']}: epoch {epoch}, batch {record['batch']}, "
             f"step {record['step']}"]
    if saved != world and record["offset"]:
        lines.append(f"the checkpoint was written by {saved} worker(s), this run has {world}: epoch {epoch} goes on "
                     f"from seed {record['offset']} of {seeds} of its order, the rest re-sharded over the new "
                     f"workers (no seed skipped or repeated)")
    return lines
