"""The allocator settings (largegraph.core.allocator), read back from the processes that train and sample.

Each check runs in a fresh interpreter: glibc's settings belong to a process and its forked
children, so pytest's own process must not decide the outcome. The probe frees a 64 MiB block and
reads VmRSS from /proc; with ``LARGEGRAPH_ALLOCATOR=system`` the same probe must see the memory go
back to the kernel, so a probe that always answered "kept" would fail there.
"""
from __future__ import annotations

import os
import subprocess
import sys

import pytest

from helpers import ROOT

CLI_START = """
from largegraph.core import allocator
from largegraph.cli import entry as cli
code = cli._main(["report", "/nonexistent-run-dir"])  # the command's start-up, then a bad-input exit
print(code, allocator.applied(), allocator.keeps_freed_blocks())
"""

SAMPLER_WORKER = """
import os, torch, dgl
from largegraph.core import allocator
from largegraph.config import SamplerConfig
from largegraph.sampling import NodeBatchLoader
from largegraph.sampling.order import BatchList

class Probe(dgl.dataloading.Sampler):
    def sample(self, g, seeds):
        return torch.tensor([int(allocator.keeps_freed_blocks()), os.getpid()])

g = dgl.graph(([0, 1], [1, 2]))
g.ndata["feat"] = torch.zeros(3, 2)
loader = NodeBatchLoader(g, torch.arange(3), SamplerConfig(fanouts=[2], batch_size=1, num_workers=1),
                         uses_graph=True, base_seed=0, device=torch.device("cpu"))
(kept, pid), = list(loader._dataloader(BatchList(torch.arange(1), 1, False, 0, 1), Probe()))
print(int(kept), int(pid) != os.getpid(), allocator.keeps_freed_blocks())
"""


def run_python(code: str, mode: str | None) -> list[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("MALLOC_")}
    env.pop("LARGEGRAPH_ALLOCATOR", None)
    if mode:
        env["LARGEGRAPH_ALLOCATOR"] = mode
    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, env=env, capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr
    return out.stdout.split()


@pytest.mark.parametrize("mode,expected", [(None, "True"), ("system", "False")])
def test_the_command_applies_it_at_start_up_unless_switched_off(mode, expected):
    code, applied, kept = run_python(CLI_START, mode)
    assert code == "2"  # the report of a missing run dir still failed as bad input
    assert (applied, kept) == (expected, expected)


@pytest.mark.parametrize("mode,expected", [(None, "1"), ("system", "0")])
def test_sampler_worker_processes_apply_it_themselves(mode, expected):
    # The parent never applied it, so a forked worker keeps freed blocks only by its own start-up.
    kept, other_process, parent_kept = run_python(SAMPLER_WORKER, mode)
    assert other_process == "True"
    assert parent_kept == "False"
    assert kept == expected


def test_release_free_hands_kept_blocks_back():
    """Kept blocks stay resident until a phase boundary releases them (run in a fresh process, where
    the allocator settings are applied as the command applies them)."""
    import subprocess
    import sys
    import textwrap

    code = textwrap.dedent("""
        import ctypes
        from largegraph.core import allocator
        assert allocator.apply()
        libc = ctypes.CDLL("libc.so.6")
        libc.malloc.restype = ctypes.c_void_p
        libc.free.argtypes = [ctypes.c_void_p]
        def rss():
            return int([l for l in open("/proc/self/status") if l.startswith("VmRSS")][0].split()[1]) // 1024
        base = rss()
        blocks = [libc.malloc(8 << 20) for _ in range(32)]  # 256 MiB in 8 MiB blocks, kept when freed
        for b in blocks:
            ctypes.memset(b, 1, 8 << 20)
        for b in blocks:
            libc.free(b)
        kept = rss()
        allocator.release_free()
        print(base, kept, rss())
    """)
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    base, kept, released = map(int, out.stdout.split())
    assert kept - base > 200 and released - base < 64


def test_system_defaults_phase_restores_the_kept_blocks_after():
    import subprocess
    import sys
    import textwrap

    code = textwrap.dedent("""
        from largegraph.core import allocator
        assert allocator.apply()
        with allocator.system_defaults():
            during = allocator.keeps_freed_blocks()
        print(int(during), int(allocator.keeps_freed_blocks()))
    """)
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    assert out.stdout.split() == ["0", "1"]
