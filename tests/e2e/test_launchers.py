"""The launch files (launch/, Dockerfile) parse, and every command, option and config they name exists.

Nothing is launched. Shell files go through `bash -n` (and shellcheck where it is installed), YAML
through `yaml.safe_load_all`. Every `largegraph ...`, `torchrun ... -m largegraph ...`,
`launch/...sh CONFIG ...` and `docker run IMAGE ...` command line that the files contain goes
through the real argument parsers: `largegraph.cli.build_parser()` and torchrun's own parser.
Shell variables become placeholder values, and `"$@"` is dropped.
"""
from __future__ import annotations

import contextlib
import io
import json
import os
import re
import shlex
import shutil
import stat
import subprocess
from dataclasses import dataclass, field
from fnmatch import fnmatch
from pathlib import Path

import pytest
import yaml
from helpers import ROOT  # noqa: E402

from largegraph.cli import build_parser
from largegraph.config import load_config

LAUNCH = ROOT / "launch"
DOCKERFILE = ROOT / "Dockerfile"
DOCKERIGNORE = ROOT / ".dockerignore"

SHELL_FILES = sorted(p for p in LAUNCH.rglob("*") if p.suffix in {".sh", ".sbatch"})
YAML_FILES = sorted(p for p in LAUNCH.rglob("*") if p.suffix in {".yaml", ".yml"})
DOC_FILES = sorted(LAUNCH.rglob("*.md"))
ALL_FILES = SHELL_FILES + YAML_FILES + DOC_FILES + [DOCKERFILE]
PYTORCHJOB = LAUNCH / "k8s" / "pytorchjob.yaml"
SBATCH = LAUNCH / "slurm" / "train.sbatch"

CONFIG_RE = re.compile(r"configs/[A-Za-z0-9_.-]+\.ya?ml")
LAUNCH_PATH_RE = re.compile(r"\blaunch/[A-Za-z0-9_./-]+\.(?:sh|sbatch|yaml|md)\b")
SEPARATORS = {"&&", "||", ";", ";;", "|", "&", "(", ")", "{", "}"}
# `docker run` options that take no value (the others are followed by one unless written --opt=value)
DOCKER_RUN_FLAGS = {"--rm", "-i", "-t", "-it", "-ti", "-d", "--init", "--privileged", "--tty",
                    "--interactive"}
PLACEHOLDER = "1"


def rel(path: Path) -> str:
    return str(path.relative_to(ROOT))


# --- reading command lines out of files --------------------------------------------------------------
def join_continuations(text: str) -> list[str]:
    return re.sub(r"\\\n", " ", text).splitlines()


def shell_command_lines(text: str) -> list[str]:
    """Code lines, plus the concrete examples (those naming a config) in comments."""
    code, comments = [], []
    for line in text.splitlines():
        stripped = line.lstrip()
        if stripped.startswith(("#!", "#SBATCH")):
            continue
        if stripped.startswith("#"):
            comments.append(stripped[1:])
        else:
            code.append(line)
    examples = [line for line in join_continuations("\n".join(comments)) if "configs/" in line]
    return join_continuations("\n".join(code)) + examples


def markdown_command_lines(text: str) -> list[str]:
    blocks = re.findall(r"^```[^\n]*\n(.*?)^```", text, flags=re.DOTALL | re.MULTILINE)
    return [line for block in blocks for line in join_continuations(block)]


def dockerfile_instructions(text: str) -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) with continuations joined and comment lines dropped, as Docker does."""
    lines = [line for line in text.splitlines() if not line.lstrip().startswith("#")]
    result = []
    for line in join_continuations("\n".join(lines)):
        if line.strip():
            instruction, _, rest = line.strip().partition(" ")
            result.append((instruction.upper(), rest.strip()))
    return result


def dockerfile_command_lines(text: str) -> list[str]:
    runs = [rest for instruction, rest in dockerfile_instructions(text) if instruction == "RUN"]
    comments = "\n".join(line.lstrip()[1:] for line in text.splitlines() if line.lstrip().startswith("#"))
    return runs + [line for line in join_continuations(comments) if line.strip().startswith("docker ")]


def tokenize(line: str) -> list[str]:
    lexer = shlex.shlex(line, posix=True, punctuation_chars=True)
    lexer.whitespace_split = True
    lexer.commenters = "#"
    try:
        return list(lexer)
    except ValueError:
        if re.search(r"largegraph|torchrun|launch/", line):
            raise AssertionError(f"cannot split this command line: {line!r}") from None
        return []


def simple_commands(tokens: list[str]) -> list[list[str]]:
    commands, current = [], []
    for token in tokens:
        if token in SEPARATORS:
            commands.append(current)
            current = []
        else:
            current.append(token)
    return [c for c in commands + [current] if c]


def yaml_container_commands(docs: list) -> list[list[str]]:
    found = []

    def walk(node):
        if isinstance(node, dict):
            for container in node.get("containers") or []:
                argv = (container.get("command") or []) + (container.get("args") or [])
                found.append([str(x) for x in argv])
            for value in node.values():
                walk(value)
        elif isinstance(node, list):
            for value in node:
                walk(value)

    walk(docs)
    return [c for c in found if c]


def token_commands(path: Path) -> list[list[str]]:
    text = path.read_text()
    if path.suffix in {".yaml", ".yml"}:
        return yaml_container_commands(list(yaml.safe_load_all(text)))
    if path.suffix == ".md":
        lines = markdown_command_lines(text)
    elif path == DOCKERFILE:
        lines = dockerfile_command_lines(text)
    else:
        lines = shell_command_lines(text)
    return [cmd for line in lines for cmd in simple_commands(tokenize(line))]


# --- recognising invocations -------------------------------------------------------------------------
@dataclass
class Invocation:
    kind: str                    # largegraph | torchrun | script | docker
    tokens: list[str]            # the simple command as written
    largegraph_argv: list[str] | None = None   # what `largegraph` receives, placeholders substituted
    torchrun: object = None      # torchrun's parsed arguments
    extra: dict = field(default_factory=dict)


def substitute(tokens: list[str]) -> list[str]:
    """Shell variables become placeholders; "$@" (the caller's arguments) disappears."""
    return [PLACEHOLDER if "$" in t else t for t in tokens if t not in {"$@", "${@}"}]


def is_torchrun(token: str) -> bool:
    if "=" in token:             # TORCHRUN=.venv/bin/torchrun is an assignment
        return False
    return os.path.basename(token) == "torchrun" or re.fullmatch(r"\$\{?TORCHRUN\}?", token) is not None


def is_largegraph(tokens: list[str], i: int) -> bool:
    token = tokens[i]
    return ("=" not in token and os.path.basename(token) == "largegraph" and i + 1 < len(tokens)
            and re.fullmatch(r"[a-z][a-z-]*", tokens[i + 1]) is not None)


def torchrun_parser():
    from torch.distributed.run import get_args_parser

    return get_args_parser()


def find_invocations(command: list[str]) -> list[Invocation]:
    for i, token in enumerate(command):
        as_module = token in ("torch.distributed.run", "largegraph.launcher") and i > 0 and command[i - 1] == "-m"
        if is_torchrun(token) or as_module:
            argv = substitute(command[i + 1:])
            with contextlib.redirect_stderr(io.StringIO()) as err:
                try:
                    args = torchrun_parser().parse_args(argv)
                except SystemExit:
                    message = err.getvalue().strip()
                    raise AssertionError(f"torchrun refuses {shlex.join(command)}: {message}") from None
            inv = Invocation("torchrun", command, torchrun=args)
            if args.module and args.training_script == "largegraph":
                inv.largegraph_argv = list(args.training_script_args)
            return [inv]
        if re.search(r"(^|/)launch/.+\.(sh|sbatch)$", token):
            rest = substitute(command[i + 1:])
            return [Invocation("script", command, largegraph_argv=["train", *rest] if rest else None,
                               extra={"script": token})]
        if token == "docker" and command[i + 1:i + 2] == ["run"]:
            return docker_run(command, i + 2)
        if is_largegraph(command, i):
            return [Invocation("largegraph", command, largegraph_argv=substitute(command[i + 1:]))]
    return []


def docker_run(command: list[str], start: int) -> list[Invocation]:
    """`docker run [options] IMAGE [args]`: args go to the image's entrypoint (largegraph)."""
    j, entrypoint = start, None
    while j < len(command) and command[j].startswith("-"):
        option = command[j]
        if option.startswith("--entrypoint"):
            entrypoint = option.split("=", 1)[1] if "=" in option else command[j + 1]
        j += 1 if ("=" in option or option in DOCKER_RUN_FLAGS) else 2
    image, args = command[j], command[j + 1:]
    if not re.match(r"(.*/)?largegraph(:|$)", image):
        return []
    if entrypoint:
        return find_invocations([entrypoint, *args])
    return [Invocation("docker", command, largegraph_argv=substitute(args) or None, extra={"image": image})]


def invocations_in(path: Path) -> list[Invocation]:
    return [inv for command in token_commands(path) for inv in find_invocations(command)]


def check_largegraph_argv(argv: list[str], where: str) -> None:
    """The argument list is accepted by `largegraph`'s parser exactly as main() would take it."""
    with contextlib.redirect_stderr(io.StringIO()) as err:
        try:
            args, extra = build_parser().parse_known_args(argv)
        except SystemExit:
            message = err.getvalue().strip()
            raise AssertionError(f"{where}: `largegraph {shlex.join(argv)}` is refused: {message}") from None
    unknown = [x for x in extra if not ("=" in x and not x.startswith("-"))]
    assert not unknown, f"{where}: `largegraph {shlex.join(argv)}`: unrecognized arguments {unknown}"
    overrides = list(getattr(args, "overrides", [])) + [x for x in extra if x not in unknown]
    bad = [x for x in overrides if "=" not in x]
    assert not bad, f"{where}: `largegraph {shlex.join(argv)}`: {bad} are not key=value overrides"
    if args.command == "train" and CONFIG_RE.fullmatch(args.config):
        load_config(ROOT / args.config, overrides)


# --- shell -------------------------------------------------------------------------------------------
def test_launch_directory_has_the_launchers():
    for name in ["torchrun/single_node.sh", "torchrun/multi_node.sh", "slurm/train.sbatch",
                 "k8s/pytorchjob.yaml", "k8s/job-service.yaml", "README.md"]:
        assert (LAUNCH / name).is_file(), name
    assert DOCKERFILE.is_file() and DOCKERIGNORE.is_file()


@pytest.mark.parametrize("path", SHELL_FILES, ids=rel)
def test_shell_file_parses_and_is_executable_and_strict(path):
    result = subprocess.run(["bash", "-n", str(path)], capture_output=True, text=True, check=False)
    assert result.returncode == 0, result.stderr
    text = path.read_text()
    assert text.startswith("#!/usr/bin/env bash\n")
    assert "set -euo pipefail" in text
    assert path.stat().st_mode & stat.S_IXUSR, f"{rel(path)} is not executable (chmod +x)"


@pytest.mark.skipif(shutil.which("shellcheck") is None, reason="shellcheck not installed")
def test_shell_files_pass_shellcheck():
    result = subprocess.run(["shellcheck", "--shell=bash", *map(str, SHELL_FILES)],
                            capture_output=True, text=True, check=False)
    assert result.returncode == 0, result.stdout + result.stderr


# --- what the files name -----------------------------------------------------------------------------
def named_files(path: Path, pattern: re.Pattern) -> list[str]:
    """The repository files ``pattern`` finds named in ``path``, each asserted to exist."""
    names = sorted(set(pattern.findall(path.read_text())))
    for name in names:
        assert (ROOT / name).is_file(), f"{rel(path)} names {name}, which does not exist"
    return names


@pytest.mark.parametrize("path", ALL_FILES, ids=rel)
def test_configs_named_exist_and_load(path):
    for name in named_files(path, CONFIG_RE):
        load_config(ROOT / name)


@pytest.mark.parametrize("path", ALL_FILES, ids=rel)
def test_launch_paths_named_exist(path):
    named_files(path, LAUNCH_PATH_RE)


@pytest.mark.parametrize("path", ALL_FILES, ids=rel)
def test_commands_named_are_accepted_by_the_parsers(path):
    for inv in invocations_in(path):
        where = f"{rel(path)}: {shlex.join(inv.tokens)}"
        if inv.kind == "script":
            script = ROOT / re.sub(r"^.*?(launch/)", r"\1", inv.extra["script"])
            assert script.is_file(), where
        if inv.kind == "torchrun":
            assert inv.largegraph_argv is not None, f"{where}: torchrun must run `-m largegraph`"
        if inv.largegraph_argv:
            check_largegraph_argv(inv.largegraph_argv, where)


@pytest.mark.parametrize("path, kind", [
    (LAUNCH / "torchrun" / "single_node.sh", "torchrun"),
    (LAUNCH / "torchrun" / "multi_node.sh", "torchrun"),
    (SBATCH, "torchrun"),
    (PYTORCHJOB, "torchrun"),
    (LAUNCH / "README.md", "script"),
    (LAUNCH / "README.md", "docker"),
], ids=lambda x: rel(x) if isinstance(x, Path) else x)
def test_launcher_runs_largegraph_train(path, kind):
    """Guards the extraction itself: each launcher yields the train command it exists for."""
    found = [inv for inv in invocations_in(path) if inv.kind == kind]
    assert any(inv.largegraph_argv and inv.largegraph_argv[0] == "train" for inv in found), \
        f"no `{kind}` invocation of `largegraph train` found in {rel(path)}"


def test_torchrun_launchers_use_c10d_rendezvous_and_resume():
    single = invocations_in(LAUNCH / "torchrun" / "single_node.sh")[0]
    assert single.torchrun.standalone
    for path in [LAUNCH / "torchrun" / "multi_node.sh", SBATCH]:
        (inv,) = [i for i in invocations_in(path) if i.kind == "torchrun"]
        assert inv.torchrun.rdzv_backend == "c10d", rel(path)
        tokens = inv.tokens
        for option in ["--rdzv-endpoint", "--rdzv-id", "--max-restarts", "--nnodes", "--nproc-per-node"]:
            assert option in tokens, f"{rel(path)} does not pass {option}"
    for path in [LAUNCH / "torchrun" / "single_node.sh", LAUNCH / "torchrun" / "multi_node.sh", SBATCH]:
        (inv,) = [i for i in invocations_in(path) if i.kind == "torchrun"]
        assert inv.tokens[-1] == "$@", f"{rel(path)} must pass the caller's arguments through last"
        assert "--resume" in inv.largegraph_argv


# --- Slurm -------------------------------------------------------------------------------------------
def test_sbatch_requeues_on_preemption_with_a_stable_rendezvous_id():
    text = SBATCH.read_text()
    directives = re.findall(r"^#SBATCH\s+(\S+)", text, flags=re.MULTILINE)
    # Issue 23: the header runs as is on a CPU-only cluster (GPUs and more nodes come from the command
    # line; tests/e2e/test_slurm_train.py runs it on a real one).
    for wanted in ["--nodes=1", "--ntasks-per-node=1", "--exclusive", "--requeue"]:
        assert wanted in directives, wanted
    assert not [d for d in directives if d.startswith(("--gpus", "--gres"))]
    assert any(d.startswith("--signal=") for d in directives)
    assert "scontrol show hostnames" in text
    assert re.search(r"^trap \S+ USR1$", text, flags=re.MULTILINE)
    assert "scontrol requeue" in text
    (inv,) = [i for i in invocations_in(SBATCH) if i.kind == "torchrun"]
    assert inv.tokens[0] == "srun"
    rdzv_id = inv.tokens[inv.tokens.index("--rdzv-id") + 1]
    assert rdzv_id in {"$SLURM_JOB_ID", "$JOB_ID"}
    if rdzv_id == "$JOB_ID":
        assert re.search(r"^JOB_ID=\$\{SLURM_JOB_ID", text, flags=re.MULTILINE)
    assert "--run-dir" in inv.tokens


# --- Kubernetes --------------------------------------------------------------------------------------
@pytest.mark.parametrize("path", YAML_FILES, ids=rel)
def test_yaml_parses(path):
    docs = [d for d in yaml.safe_load_all(path.read_text()) if d is not None]
    assert docs
    for doc in docs:
        assert {"apiVersion", "kind", "metadata"} <= set(doc), rel(path)


def test_pytorchjob_is_elastic_restarts_on_failure_and_shares_a_volume():
    docs = [d for d in yaml.safe_load_all(PYTORCHJOB.read_text()) if d]
    (job,) = [d for d in docs if d["kind"] == "PyTorchJob"]
    assert job["apiVersion"] == "kubeflow.org/v1"
    elastic = job["spec"]["elasticPolicy"]
    assert elastic["rdzvBackend"] == "c10d"
    assert 1 <= elastic["minReplicas"] <= elastic["maxReplicas"]
    assert elastic["maxRestarts"] >= 1
    worker = job["spec"]["pytorchReplicaSpecs"]["Worker"]
    assert worker["restartPolicy"] == "OnFailure"
    assert elastic["minReplicas"] <= worker["replicas"] <= elastic["maxReplicas"]
    pod = worker["template"]["spec"]
    (container,) = pod["containers"]
    assert container["name"] == "pytorch"          # the operator injects its settings into this one
    volumes = {v["name"]: v for v in pod["volumes"]}
    mounts = {m["mountPath"]: m for m in container["volumeMounts"]}
    assert {m["name"] for m in mounts.values()} <= set(volumes)
    shm = volumes[mounts["/dev/shm"]["name"]]
    assert shm["emptyDir"]["medium"] == "Memory"
    claims = {d["metadata"]["name"]: d for d in docs if d["kind"] == "PersistentVolumeClaim"}
    for path in ["/data", "/runs"]:
        claim = volumes[mounts[path]["name"]]["persistentVolumeClaim"]["claimName"]
        assert claim in claims, f"{path} is on claim {claim}, which the file does not define"
        assert "ReadWriteMany" in claims[claim]["spec"]["accessModes"], "every pod mounts the claim"
    gpus = container["resources"]["limits"]["nvidia.com/gpu"]
    (inv,) = invocations_in(PYTORCHJOB)
    assert str(inv.torchrun.nproc_per_node) == str(gpus)
    argv = inv.largegraph_argv
    assert "data.root=/data" in argv
    run_dir = [a.split("=", 1)[1] for a in argv if a.startswith("--run-dir=")] or \
        [argv[argv.index("--run-dir") + 1]]
    assert run_dir[0].startswith("/runs/")


# --- Docker ------------------------------------------------------------------------------------------
def dockerfile() -> list[tuple[str, str]]:
    return dockerfile_instructions(DOCKERFILE.read_text())


def test_dockerfile_entrypoint_is_largegraph_in_exec_form_with_a_non_root_user():
    instructions = dockerfile()
    entrypoints = [rest for ins, rest in instructions if ins == "ENTRYPOINT"]
    # tini as PID 1 (issue 23): it passes signals on to largegraph and reaps orphans
    assert len(entrypoints) == 1 and json.loads(entrypoints[0]) == ["tini", "--", "largegraph"]
    (cmd,) = [json.loads(rest) for ins, rest in instructions if ins == "CMD"]
    assert isinstance(cmd, list) and all(isinstance(x, str) for x in cmd)
    check_largegraph_argv(cmd, "Dockerfile CMD")
    users = [rest for ins, rest in instructions if ins == "USER"]
    assert users and users[-1].split(":")[0] not in {"root", "0"}
    assert any(ins == "WORKDIR" for ins, _ in instructions)
    env = " ".join(rest for ins, rest in instructions if ins == "ENV")
    assert "PYTHONUNBUFFERED=1" in env


def test_dockerfile_has_a_cuda_build_arg_choosing_the_base_and_wheels():
    instructions = dockerfile()
    args = [rest.partition("=") for ins, rest in instructions if ins == "ARG"]
    defaults = [default for name, _, default in args if name == "CUDA"]
    assert defaults and defaults[0] == "cpu", "ARG CUDA=cpu: CPU by default"
    # The base is one build arg (issue 23: buildah ignores a global ARG's default in a stage name such
    # as base-${CUDA}); the CUDA build names NVIDIA's base beside CUDA=cu121, as the header shows.
    froms = [rest for ins, rest in instructions if ins == "FROM"]
    assert froms == ["${BASE_IMAGE}"], "the base must be chosen by the BASE_IMAGE build arg"
    builds = [line.strip() for line in dockerfile_command_lines(DOCKERFILE.read_text())
              if line.strip().startswith("docker build")]
    assert any("BASE_IMAGE=nvidia/cuda:12.1" in b and "CUDA=cu121" in b for b in builds)
    wheels = " ".join(rest for ins, rest in instructions if ins in {"RUN", "ARG"})
    assert "download.pytorch.org/whl/${CUDA}" in wheels
    assert "data.dgl.ai/wheels/torch-2.2/${CUDA}/repo.html" in wheels


def test_dockerfile_copies_only_existing_files_that_dockerignore_keeps():
    ignored = [line.strip() for line in DOCKERIGNORE.read_text().splitlines()
               if line.strip() and not line.startswith("#")]
    for ins, rest in dockerfile():
        if ins not in {"COPY", "ADD"}:
            continue
        parts = [p for p in shlex.split(rest) if not p.startswith("--")]
        assert len(parts) >= 2, rest
        for source in parts[:-1]:
            assert (ROOT / source).exists(), f"COPY {source}: no such file in the repository"
            top = Path(source).parts[0]
            excluded = [pattern for pattern in ignored if fnmatch(top, pattern)]
            assert not excluded, f"COPY {source}: excluded from the build context by .dockerignore {excluded}"


def test_dockerignore_keeps_local_state_out_of_the_build_context():
    patterns = {line.strip().rstrip("/") for line in DOCKERIGNORE.read_text().splitlines()}
    for name in [".git", ".venv", "runs", "data", "lg-workspace", "**/__pycache__", ".pytest_cache"]:
        assert name in patterns, name


def makefile_demo_commands() -> list[list[str]]:
    text = (ROOT / "Makefile").read_text().replace("$(BIN)/", "")
    recipe = join_continuations(text.split("\ndemo:", 1)[1].split("\n\n")[0])
    commands = [cmd for line in recipe for cmd in simple_commands(tokenize(line))]
    return [inv.largegraph_argv for cmd in commands for inv in find_invocations(cmd)]


def test_docker_default_command_is_the_make_demo_job():
    synth, train = makefile_demo_commands()
    assert synth[:3] == ["data", "synth", "node"] and train[0] == "train"
    in_image = [inv.largegraph_argv for inv in invocations_in(DOCKERFILE) if inv.kind == "largegraph"]
    assert synth in in_image, "the image must generate the demo dataset with the Makefile's command"
    (cmd,) = [json.loads(rest) for ins, rest in dockerfile() if ins == "CMD"]
    assert cmd == train
