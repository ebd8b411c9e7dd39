"""Memory of real training runs: how much each process holds, and what one more local worker adds.

Runs ``largegraph train`` (the command users run) as a subprocess on an ogbn-products-shaped synthetic
graph, and samples every process of the run (the trainer, torchrun's workers, sampler workers) once a
second from ``/proc``: peak RSS of any one process, and the peak of the summed proportional set size
(PSS: a page shared by k processes counts 1/k in each), split into the processed cache's files
(topology, features, labels: what one copy per machine is about) and the rest (the per-process
runtime: Python, torch, DGL, activations, private copies). For each scale it runs, in order:

1. the first load (OGB's parse, preparation, the cache write) and one epoch, 1 worker;
2. cached loads with 1, 2 and 4 workers (``--nproc``), features mapped, one epoch each;
3. one epoch with ``data.features=memory`` against ``mmap`` (file in the page cache), 1 worker.

Lines it prints::

    scale=S run=NAME nproc=N features=M load_s=.. epoch_s=.. peak_rss_gb=.. pss_gb=.. data_pss_gb=..
        topology_pss_gb=.. features_pss_gb=.. labels_pss_gb=.. runtime_pss_gb=..
    scale=S data_gb=.. data_pss_growth_per_worker_gb=.. (X% of the dataset's bytes; target <= 10%)
    scale=S runtime_pss_per_worker_gb=..
    scale=S epoch ratio mmap/memory: X (target <= 1.10)

``--full-products`` instead runs the issue's acceptance job at full scale once: first load, one epoch of
fanouts [15,10,5] with exact evaluation, then a cached load, and prints peak RSS and the load times.
"""
from __future__ import annotations

import argparse
import re
import subprocess
import sys
import threading
import time
from pathlib import Path

import psutil
import yaml

from common import dataset_root

from largegraph.training.rundir import RunDir

PRODUCTS_NODES, PRODUCTS_DEGREE, PRODUCTS_CLASSES, PRODUCTS_DIM = 2_449_029, 50.5, 47, 100
GB = 1e9
PARTS = {"indptr.npy": "topology", "indices.npy": "topology", "eids.npy": "topology", "feat.npy": "features",
         "label.npy": "labels"}


def largegraph(*args: str) -> list[str]:
    return [sys.executable, "-m", "largegraph", *map(str, args)]


def _children(pid: int) -> set[int]:
    """``pid`` and all its descendants (empty once it is gone)."""
    try:
        leader = psutil.Process(pid)
        return {pid} | {child.pid for child in leader.children(recursive=True)}
    except psutil.Error:
        return set()


def _smaps(pid: int, cache: str) -> tuple[dict[str, float], float] | None:
    """(PSS of each cache part, RSS) of one process, in bytes (None once it is gone)."""
    parts = {"topology": 0.0, "features": 0.0, "labels": 0.0, "other": 0.0}
    try:
        maps = psutil.Process(pid).memory_maps(grouped=False)
    except psutil.Error:
        return None
    for mapping in maps:
        part = PARTS.get(Path(mapping.path).name, "other") if cache in mapping.path else "other"
        parts[part] += mapping.pss
    return parts, float(sum(mapping.rss for mapping in maps))


class Sampler(threading.Thread):
    """Samples the process tree of ``pid`` once a second; keeps the peaks."""

    def __init__(self, pid: int, cache: str):
        super().__init__(daemon=True)
        self.pid, self.cache = pid, cache
        self.peak_rss = 0.0
        self.peak: dict[str, float] = {"pss": 0.0}
        self.done = threading.Event()

    def run(self) -> None:
        while not self.done.is_set():
            total = {"topology": 0.0, "features": 0.0, "labels": 0.0, "other": 0.0}
            for pid in _children(self.pid):
                got = _smaps(pid, self.cache)
                if got is None:
                    continue
                parts, rss = got
                self.peak_rss = max(self.peak_rss, rss)
                for k, v in parts.items():
                    total[k] += v
            pss = sum(total.values())
            if pss > self.peak["pss"]:
                self.peak = {"pss": pss, **total}
            self.done.wait(1.0)


def run_job(cfg: Path, run_dir: Path, nproc: int, features: str, cache_hint: str, extra: list[str]) -> dict:
    cmd = largegraph("train", cfg, f"data.features={features}", *extra, "--run-dir", run_dir)
    if nproc > 1:
        cmd += ["--nproc", str(nproc)]
    start = time.perf_counter()
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    sampler = Sampler(proc.pid, cache_hint)
    sampler.start()
    out, err = proc.communicate()
    sampler.done.set()
    sampler.join()
    if proc.returncode:
        raise SystemExit(f"run failed ({proc.returncode}): {err.strip().splitlines()[-1:]}")
    loaded = re.search(r"loaded in ([0-9.]+)s", out)
    epochs = RunDir(run_dir).read_metrics()
    epoch_s = [e["time_s"] for e in epochs if e["kind"] == "epoch"]
    peak = sampler.peak
    return {"nproc": nproc, "features": features, "load_s": float(loaded.group(1)) if loaded else float("nan"),
            "epoch_s": min(epoch_s) if epoch_s else float("nan"), "job_s": time.perf_counter() - start,
            "peak_rss_gb": sampler.peak_rss / GB, "pss_gb": peak["pss"] / GB,
            "data_pss_gb": (peak.get("topology", 0) + peak.get("features", 0) + peak.get("labels", 0)) / GB,
            **{f"{k}_pss_gb": peak.get(k, 0) / GB for k in ("topology", "features", "labels")},
            "runtime_pss_gb": peak.get("other", 0) / GB}


def _line(scale: float, name: str, r: dict) -> str:
    figures = " ".join(f"{k}={v:.3f}" if isinstance(v, float) else f"{k}={v}" for k, v in r.items())
    return f"scale={scale} run={name} {figures}"


def _write_config(path: Path, root: Path, name: str, fanouts: list[int], evaluate: bool,
                  eval_batch_size: int = 16384) -> Path:
    cfg = {"name": f"mem-{name}", "task": "node_classification", "seed": 0,
           "data": {"name": name, "root": str(root)},
           "sampler": {"fanouts": fanouts, "batch_size": 1024, "eval_batch_size": eval_batch_size},
           "model": {"arch": "sage", "hidden": 256, "num_layers": len(fanouts)},
           "train": {"epochs": 1, "lr": 0.003, "eval_every": 1 if evaluate else 1000},
           "checkpoint": {"every_n_epochs": 1000}}
    path.write_text(yaml.safe_dump(cfg))
    return path


def synth(root: Path, name: str, scale: float) -> float:
    start = time.perf_counter()
    subprocess.run(largegraph("data", "synth", "node", "--name", name, "--nodes", int(PRODUCTS_NODES * scale),
                              "--avg-degree", PRODUCTS_DEGREE, "--classes", PRODUCTS_CLASSES,
                              "--feat-dim", PRODUCTS_DIM, "--split-ratios", "0.08,0.02,0.9", "--root", root),
                   check=True, stdout=subprocess.DEVNULL)
    return time.perf_counter() - start


def workers_sweep(args: argparse.Namespace, root: Path, scale: float) -> None:
    name = f"mem{str(scale).replace('.', '')}"
    print(f"scale={scale} synth_s={synth(root, name, scale):.1f}", flush=True)
    cfg = _write_config(root / f"{name}.yaml", root, name, [10, 10, 10], evaluate=False)
    runs = root / "runs"
    first = run_job(cfg, runs / "first", 1, "mmap", name.replace("-", "_"), [])
    print(_line(scale, "first_load", first), flush=True)
    cache = next((root / name / "processed").glob("largegraph-*"))
    data_gb = sum(f.stat().st_size for f in cache.glob("*.npy")) / GB
    by_n = {}
    for n in args.nproc:
        by_n[n] = run_job(cfg, runs / f"n{n}", n, "mmap", str(cache), [])
        print(_line(scale, f"cached_nproc{n}", by_n[n]), flush=True)
    ns = sorted(by_n)
    if len(ns) > 1:
        lo, hi = ns[0], ns[-1]
        growth = (by_n[hi]["data_pss_gb"] - by_n[lo]["data_pss_gb"]) / (hi - lo)
        runtime = (by_n[hi]["runtime_pss_gb"] - by_n[lo]["runtime_pss_gb"]) / (hi - lo)
        print(f"scale={scale} data_gb={data_gb:.3f} data_pss_growth_per_worker_gb={growth:.3f} "
              f"({100 * growth / data_gb:.1f}% of the dataset's bytes; target <= 10%)", flush=True)
        print(f"scale={scale} runtime_pss_growth_per_worker_gb={runtime:.3f} (the per-process runtime: Python, "
              f"torch, DGL, activations, sampler state)", flush=True)
    mem = run_job(cfg, runs / "memory", 1, "memory", str(cache), [])
    print(_line(scale, "features_memory", mem), flush=True)
    mapped = run_job(cfg, runs / "mmap", 1, "mmap", str(cache), [])
    print(_line(scale, "features_mmap", mapped), flush=True)
    print(f"scale={scale} epoch ratio mmap/memory: {mapped['epoch_s'] / mem['epoch_s']:.3f} (target <= 1.10)",
          flush=True)


def full_products(root: Path, features: str, eval_batch_size: int) -> None:
    name = "products-full"
    print(f"scale=1.0 synth_s={synth(root, name, 1.0):.1f}", flush=True)
    cfg = _write_config(root / "full.yaml", root, name, [15, 10, 5], evaluate=True, eval_batch_size=eval_batch_size)
    first = run_job(cfg, root / "runs" / "first", 1, features, name.replace("-", "_"), [])
    print(_line(1.0, "first_load_epoch_exact_eval", first), flush=True)
    cached = run_job(cfg, root / "runs" / "cached", 1, features, name.replace("-", "_"), [])
    print(_line(1.0, "cached_load_epoch_exact_eval", cached), flush=True)
    print(f"scale=1.0 peak_rss_gb={max(first['peak_rss_gb'], cached['peak_rss_gb']):.2f} (target <= 8) "
          f"cached_load_s={cached['load_s']:.1f} (target < 10)", flush=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--scales", type=float, nargs="+", default=[0.1], help="fractions of ogbn-products' nodes")
    parser.add_argument("--nproc", type=int, nargs="+", default=[1, 2, 4], help="local worker counts to compare")
    parser.add_argument("--full-products", action="store_true", help="the full-scale acceptance job instead")
    parser.add_argument("--features", default="auto", choices=["auto", "memory", "mmap"],
                        help="data.features of the --full-products job")
    parser.add_argument("--eval-batch-size", type=int, default=16384, help="of the --full-products job")
    parser.add_argument("--root", default=None, help="dataset root (default: a new temporary directory)")
    parser.add_argument("--keep", action="store_true", help="keep the written datasets afterwards")
    args = parser.parse_args()
    with dataset_root(args, "products-full" if args.full_products else "mem01") as root:
        if args.full_products:
            full_products(root, args.features, args.eval_batch_size)
        else:
            for scale in args.scales:
                workers_sweep(args, root, scale)


if __name__ == "__main__":
    main()
