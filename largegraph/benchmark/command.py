"""``largegraph bench node|link|typed``: largegraph against DGL's own loop, measured in the same run.

On one synthetic graph in OGB's layout (node: ogbn-products-shaped, link: ogbl-collab-shaped, typed:
ogbn-mag-shaped, all scaled by ``--scale``), ``--repeats`` pairs alternate

* the reference, :mod:`largegraph.benchmark.reference` (typed: :mod:`largegraph.benchmark.reference_typed`):
  DGL's documented loop, in a plain subprocess;
* ``largegraph train`` through its own entry point (``python -m largegraph train``), with whatever
  the product applies by itself,

with the same fanouts, batch size, model shape, optimizer, epochs and sampling workers (:data:`SETTINGS`). Each side
is a whole job (start-up, loading, training with per-epoch validation, final test evaluation). Per
side it reports training seconds per epoch (the mean over epochs after the first, which warms
caches), whole-job seconds, seeds per second, input nodes per batch, peak RSS (the process tree,
from ``wait4``) and the final test score. Absolute times depend on the machine and its load; the
ratio of two runs interleaved on the same machine cancels most of that, which is why the last line
is a ratio with its spread over the pairs.

``--sweep`` repeats one pair per scale (0.01, 0.1, 1.0 by default) and prints how training time
per epoch and peak memory grow against the number of sampled edges per epoch.
"""
from __future__ import annotations

import json
import logging
import os
import shutil
import statistics
import subprocess
import sys
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

import yaml

from largegraph.core.errors import BenchError, ConfigError
from largegraph.training.rundir import RunDir

log = logging.getLogger(__name__)



@dataclass(frozen=True)
class Settings:
    """What both sides of a mode train with."""

    arch: str
    fanouts: tuple[int, ...]
    batch_size: int
    hidden: int
    layers: int
    dropout: float
    lr: float
    weight_decay: float


SETTINGS = {
    # issue 15's settings: ogbn-products' GraphSAGE shape
    "node": Settings("sage", (10, 10, 10), 1024, 256, 3, 0.5, 1e-3, 5e-4),
    "link": Settings("sage", (10, 10, 10), 1024, 256, 3, 0.5, 1e-3, 5e-4),
    # DGL's ogbn-mag RGCN example (examples/pytorch/ogb/ogbn-mag/hetero_rgcn.py): its fanouts, batch,
    # width, depth, dropout and Adam learning rate
    "typed": Settings("rgcn", (25, 20), 1024, 64, 2, 0.5, 1e-2, 0.0),
}
SEED = 0
SWEEP_SCALES = (0.01, 0.1, 1.0)

# Graph shapes at scale 1.0
PRODUCTS = {"nodes": 2_449_029, "avg_degree": 50.5, "classes": 47, "feat_dim": 100, "split": (0.08, 0.02, 0.90)}
COLLAB = {"nodes": 235_868, "avg_degree": 10.9, "feat_dim": 128}
MIN_NODES = 500


@dataclass
class Side:
    """One whole job of one side, as measured."""

    epoch_s: list[float]
    job_s: float
    seeds_per_epoch: int
    input_nodes_per_batch: float
    sampled_edges_per_epoch: float
    peak_rss_gb: float
    cpu_user_s: float
    cpu_sys_s: float
    test_score: float
    valid_s: list[float] = field(default_factory=list)

    @property
    def train_epoch_s(self) -> float:
        """Mean training seconds per epoch, leaving out the first (warm-up) when there are more."""
        kept = self.epoch_s[1:] if len(self.epoch_s) > 1 else self.epoch_s
        return statistics.fmean(kept)

    def summary(self) -> dict:
        return {**asdict(self), "train_epoch_s": self.train_epoch_s,
                "seeds_per_s": self.seeds_per_epoch / max(self.train_epoch_s, 1e-9)}


# --- the graph --------------------------------------------------------------------------------------
def dataset_name(mode: str, scale: float) -> str:
    return f"bench-{mode}-{scale:g}".replace(".", "p")


def write_graph(mode: str, scale: float, root: Path) -> str:
    """Write the ``mode`` graph at ``scale`` under ``root`` (once) and return its dataset name."""
    from largegraph.data.dataset_format import dataset_dir
    from largegraph.data.synthetic import (SynthLinkParams, SynthNodeParams, write_synthetic_link_dataset,
                                           write_synthetic_node_dataset)

    name = dataset_name(mode, scale)
    if dataset_dir(root, name).is_dir():
        return name
    if mode == "typed":
        write_typed_graph(root, name, scale)
        return name
    shape = PRODUCTS if mode == "node" else COLLAB
    nodes = round(shape["nodes"] * scale)
    if nodes < MIN_NODES:
        raise ConfigError(f"--scale {scale:g} gives {nodes} nodes; use at least {MIN_NODES / shape['nodes']:.4f}")
    if mode == "node":
        write_synthetic_node_dataset(root, name, SynthNodeParams(
            num_nodes=nodes, avg_degree=shape["avg_degree"], num_classes=shape["classes"],
            feat_dim=shape["feat_dim"], split_ratios=shape["split"], seed=SEED))
    else:
        write_synthetic_link_dataset(root, name, SynthLinkParams(
            num_nodes=nodes, avg_degree=shape["avg_degree"], feat_dim=shape["feat_dim"], seed=SEED))
    return name


def write_typed_graph(root: Path, name: str, scale: float) -> None:
    """The ogbn-mag-shaped graph at ``scale`` (the generator refuses a scale too small, in one line)."""
    from largegraph.data.synthetic_hetero import SynthHeteroParams, write_synthetic_hetero_dataset

    write_synthetic_hetero_dataset(root, name, SynthHeteroParams(scale=scale, seed=SEED))


def prepare(mode: str, name: str, root: Path) -> None:
    """Load the dataset once, untimed: OGB's processed file (which the reference reads) and
    largegraph's processed cache are built here rather than inside the first timed pair."""
    code = ("import sys; from largegraph.config import DataConfig; from largegraph.data import load_dataset, "
            "load_link_data; cfg = DataConfig(name=sys.argv[1], root=sys.argv[2]); "
            "(load_link_data if sys.argv[3] == 'link' else load_dataset)(cfg)")
    subprocess.run([sys.executable, "-c", code, name, str(root), mode], check=True, stdout=subprocess.DEVNULL)


# --- running one side ---------------------------------------------------------------------------
def run_measured(argv: list[str], log: Path) -> tuple[float, float, float, float]:
    """Run ``argv`` to the end; (wall seconds, peak RSS GB of its process tree, user s, sys s)."""
    start = time.perf_counter()
    with open(log, "w") as out:
        proc = subprocess.Popen(argv, stdout=out, stderr=subprocess.STDOUT)
        _pid, status, usage = os.wait4(proc.pid, 0)
    seconds = time.perf_counter() - start
    code = os.waitstatus_to_exitcode(status)
    proc.returncode = code
    if code != 0:
        tail = log.read_text().strip().splitlines()[-1:] or ["(no output)"]
        raise BenchError(f"{' '.join(argv[1:4])} exited with {code}: {tail[0]} (log: {log})")
    return seconds, usage.ru_maxrss / 2**20, usage.ru_utime, usage.ru_stime


def job_file(mode: str, name: str, root: Path, epochs: int, workers: int, path: Path) -> Path:
    """The largegraph job with the benchmark's settings."""
    s = SETTINGS[mode]
    job = {"name": f"bench-{mode}", "seed": SEED, "task": "link_prediction" if mode == "link" else "node_classification",
           "data": {"name": name, "root": str(root)},
           "sampler": {"fanouts": list(s.fanouts), "batch_size": s.batch_size, "num_workers": workers},
           "model": {"arch": s.arch, "hidden": s.hidden, "num_layers": s.layers, "dropout": s.dropout},
           "train": {"epochs": epochs, "lr": s.lr, "weight_decay": s.weight_decay, "optimizer": "adam"}}
    path.write_text(yaml.safe_dump(job, sort_keys=False))
    return path


def run_largegraph(job: Path, run_dir: Path, nproc: int, log: Path) -> Side:
    shutil.rmtree(run_dir, ignore_errors=True)
    argv = [sys.executable, "-m", "largegraph", "train", str(job), "--run-dir", str(run_dir), "--resume", "never"]
    if nproc > 1:
        argv += ["--nproc", str(nproc)]
    seconds, rss, user, sys_s = run_measured(argv, log)
    run = RunDir(run_dir)
    epochs = [r for r in run.read_metrics() if r.get("kind") == "epoch"]
    summary = run.read_summary()
    metric = summary["metric"]
    return Side(epoch_s=[r["time_s"] for r in epochs], job_s=seconds, seeds_per_epoch=int(epochs[-1]["seeds"]),
                input_nodes_per_batch=statistics.fmean(r.get("input_nodes_per_batch", 0) for r in epochs),
                sampled_edges_per_epoch=statistics.fmean(r.get("sampled_edges", 0) for r in epochs),
                peak_rss_gb=rss, cpu_user_s=user, cpu_sys_s=sys_s, test_score=float(summary[f"test_{metric}"]))


def reference_argv(mode: str, name: str, root: Path, epochs: int, workers: int, out: Path) -> list[str]:
    """The reference's command line, with the settings :func:`job_file` gives largegraph."""
    s = SETTINGS[mode]
    module = "largegraph.benchmark.reference_typed" if mode == "typed" else "largegraph.benchmark.reference"
    return [sys.executable, "-m", module, mode, "--root", str(root), "--name", name,
            "--out", str(out), "--epochs", str(epochs), "--fanouts", ",".join(map(str, s.fanouts)),
            "--batch-size", str(s.batch_size), "--hidden", str(s.hidden), "--layers", str(s.layers),
            "--dropout", str(s.dropout), "--lr", str(s.lr), "--weight-decay", str(s.weight_decay),
            "--workers", str(workers), "--seed", str(SEED)]


def run_reference(mode: str, name: str, root: Path, epochs: int, workers: int, out: Path, log: Path) -> Side:
    argv = reference_argv(mode, name, root, epochs, workers, out)
    seconds, rss, user, sys_s = run_measured(argv, log)
    result = json.loads(out.read_text())
    epochs_ = result["epochs"]
    batches = sum(e["batches"] for e in epochs_)
    return Side(epoch_s=[e["train_s"] for e in epochs_], job_s=seconds, seeds_per_epoch=int(epochs_[-1]["seeds"]),
                input_nodes_per_batch=sum(e["input_nodes"] for e in epochs_) / max(batches, 1),
                sampled_edges_per_epoch=statistics.fmean(e["sampled_edges"] for e in epochs_),
                peak_rss_gb=rss, cpu_user_s=user, cpu_sys_s=sys_s, test_score=float(result["test_score"]),
                valid_s=[e["valid_s"] for e in epochs_])


# --- the comparison ---------------------------------------------------------------------------------
def side_line(label: str, side: Side) -> str:
    return (f"{label:<10} train_epoch_s={side.train_epoch_s:.2f} job_s={side.job_s:.1f} "
            f"seeds_per_s={side.seeds_per_epoch / max(side.train_epoch_s, 1e-9):.0f} "
            f"input_nodes_per_batch={side.input_nodes_per_batch:.0f} peak_rss={side.peak_rss_gb:.2f}GB "
            f"cpu_user_s={side.cpu_user_s:.0f} cpu_sys_s={side.cpu_sys_s:.0f} test_score={side.test_score:.4f}")


def spread(values: list[float]) -> str:
    return f"{statistics.median(values):.2f} ({min(values):.2f}..{max(values):.2f} over {len(values)} pairs)"


def run_pairs(mode: str, scale: float, epochs: int, repeats: int, workers: int, nproc: int, root: Path,
              out: Path) -> dict:
    """Write the graph, then ``repeats`` interleaved (reference, largegraph) jobs; the record."""
    name = write_graph(mode, scale, root)
    prepare(mode, name, root)
    job = job_file(mode, name, root, epochs, workers, out / f"job-{name}.yaml")
    pairs = []
    for i in range(repeats):
        ref = run_reference(mode, name, root, epochs, workers, out / f"reference-{name}-{i}.json",
                            out / f"reference-{name}-{i}.log")
        log.info(side_line("reference", ref))
        ours = run_largegraph(job, out / f"run-{name}-{i}", nproc, out / f"largegraph-{name}-{i}.log")
        log.info(side_line("largegraph", ours))
        pairs.append({"reference": ref.summary(), "largegraph": ours.summary(),
                      "ratio_epoch": ours.train_epoch_s / ref.train_epoch_s, "ratio_job": ours.job_s / ref.job_s})
    return {"mode": mode, "scale": scale, "dataset": name, "epochs": epochs, "repeats": repeats, "workers": workers,
            "nproc": nproc, "pairs": pairs}


def machine() -> dict:
    from largegraph.core import allocator

    return {"cpus": os.cpu_count(), "loadavg": os.getloadavg(), "date": time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime()),
            "allocator": allocator.mode()}


def chart(records: list[dict], path: Path) -> None:
    """Bars of training seconds per epoch and whole-job seconds, per pair and side."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 2, figsize=(10, 4))
    labels, ref_epoch, our_epoch, ref_job, our_job = [], [], [], [], []
    for rec in records:
        for i, pair in enumerate(rec["pairs"]):
            labels.append(f"{rec['scale']:g}#{i + 1}")
            ref_epoch.append(pair["reference"]["train_epoch_s"])
            our_epoch.append(pair["largegraph"]["train_epoch_s"])
            ref_job.append(pair["reference"]["job_s"])
            our_job.append(pair["largegraph"]["job_s"])
    xs = range(len(labels))
    for ax, ref, ours, title in ((axes[0], ref_epoch, our_epoch, "training epoch (s)"),
                                 (axes[1], ref_job, our_job, "whole job (s)")):
        ax.bar([x - 0.2 for x in xs], ref, width=0.4, label="DGL reference")
        ax.bar([x + 0.2 for x in xs], ours, width=0.4, label="largegraph")
        ax.set_xticks(list(xs), labels)
        ax.set(title=title, xlabel="scale#pair")
        ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


def sweep_lines(records: list[dict]) -> list[str]:
    """How epoch time and peak memory grow between scales, against the sampled edges per epoch."""
    rows = []
    for rec in records:
        ours, ref = rec["pairs"][0]["largegraph"], rec["pairs"][0]["reference"]
        rows.append((rec["scale"], ours, ref))
    lines = [f"sweep scale={s:g} sampled_edges_per_epoch={o['sampled_edges_per_epoch']:.3g} "
             f"largegraph_epoch_s={o['train_epoch_s']:.2f} reference_epoch_s={r['train_epoch_s']:.2f} "
             f"largegraph_rss={o['peak_rss_gb']:.2f}GB reference_rss={r['peak_rss_gb']:.2f}GB" for s, o, r in rows]
    for (s0, o0, _), (s1, o1, _) in zip(rows, rows[1:]):
        edges = o1["sampled_edges_per_epoch"] / max(o0["sampled_edges_per_epoch"], 1)
        secs = o1["train_epoch_s"] / max(o0["train_epoch_s"], 1e-9)
        rss = o1["peak_rss_gb"] / max(o0["peak_rss_gb"], 1e-9)
        verdict = "no faster than" if secs <= edges * 1.1 else "FASTER than"
        lines.append(f"sweep {s0:g}->{s1:g}: epoch time x{secs:.2f}, sampled edges x{edges:.2f}, peak RSS x{rss:.2f}: "
                     f"time grows {verdict} sampled edges")
    return lines


def run_bench(mode: str, scales: list[float], epochs: int, repeats: int, workers: int, nproc: int,
              out: Path, root: Path | None, keep_data: bool) -> dict:
    """Run the benchmark and write ``bench.json`` and ``bench.png`` into ``out``; returns the record."""
    out.mkdir(parents=True, exist_ok=True)
    data_root = root or out / "data"
    data_root.mkdir(parents=True, exist_ok=True)
    log.info(f"largegraph bench {mode}: scales {', '.join(f'{s:g}' for s in scales)}, {epochs} epochs, {repeats} pair(s), "
        f"{workers} sampling workers, nproc {nproc}; {os.cpu_count()} CPUs, load {os.getloadavg()[0]:.2f}; output {out}")
    records = []
    try:
        for scale in scales:
            records.append(run_pairs(mode, scale, epochs, repeats, workers, nproc, data_root, out))
    finally:
        if not keep_data and root is None:
            shutil.rmtree(data_root, ignore_errors=True)
    result = {"machine": machine(), "records": records}
    (out / "bench.json").write_text(json.dumps(result, indent=2) + "\n")
    chart(records, out / "bench.png")
    if len(scales) > 1:
        for line in sweep_lines(records):
            log.info(line)
    pairs = [p for rec in records for p in rec["pairs"]]
    log.info(f"ratio whole job largegraph/reference: {spread([p['ratio_job'] for p in pairs])}")
    log.info(f"wrote {out / 'bench.json'} and {out / 'bench.png'}")
    log.info(f"ratio largegraph/reference: {spread([p['ratio_epoch'] for p in pairs])}")
    return result
