# largegraph in a container. The default command trains the `make demo` job.
#
#   docker build -t largegraph .                                 # CPU (default); podman build, buildah bud alike
#   docker build -t largegraph:cu121 \
#       --build-arg BASE_IMAGE=nvidia/cuda:12.1.1-runtime-ubuntu22.04 --build-arg CUDA=cu121 .
#   docker run --rm --shm-size=8g largegraph                     # the demo job
#   docker run --rm --shm-size=8g -v /datasets/ogb:/data -v "$PWD/runs:/runs" largegraph \
#       train configs/ogbn_products_sage.yaml data.root=/data --run-dir /runs/products
#
# Offline builds (a local Debian base, PyPI or a mirror instead of PyTorch's index): docs/cluster.md,
# "The image".
#
# Volumes: /data for datasets (pass data.root=/data) and /runs for run directories (runs/ under the
# working directory /app is a link to /runs, so default run directories land there too). The demo
# dataset and its processed cache are made at build time under /app/data. --shm-size: DGL sampler
# workers (sampler.num_workers > 0) hand batches over in /dev/shm, which Docker limits to 64 MiB.
# Runs as uid 1000: a bind-mounted directory must exist and be writable by it, or run as yourself
# with --user "$(id -u):$(id -g)".

# The base: any Debian or Ubuntu image, with or without Python 3.11 (installed from its packages when
# absent). One FROM on one argument, because buildah and podman ignore a global ARG's default in a
# stage name such as `base-${CUDA}`, while an image reference defaulted here works in all builders.
ARG BASE_IMAGE=docker.io/library/python:3.11.9-slim-bookworm
FROM ${BASE_IMAGE}

# CUDA: cpu, or cu121 (with the CUDA base above) for PyTorch's and DGL's CUDA 12.1 wheels.
# TORCH_INDEX_URL/TORCH_SPEC: PyTorch's own index by default (its +cpu wheel is a fraction of PyPI's);
# an offline build passes PyPI or a local mirror and the plain version (docs/cluster.md).
# PIP_INDEX_URL: every other package; pip reads it from the environment of the RUN steps.
ARG CUDA=cpu
ARG TORCH_INDEX_URL=https://download.pytorch.org/whl/${CUDA}
ARG TORCH_SPEC=torch==2.2.1+${CUDA}
ARG DGL_VERSION=2.1.0
ARG PIP_INDEX_URL=https://pypi.org/simple
ARG PIP_VERSION=26.3
ENV PYTHONUNBUFFERED=1 \
    PYTHONDONTWRITEBYTECODE=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    VIRTUAL_ENV=/opt/venv \
    PATH=/opt/venv/bin:$PATH \
    DGLBACKEND=pytorch \
    MPLCONFIGDIR=/tmp/matplotlib

# tini as PID 1: it reaps the orphans `serve` leaves behind and passes SIGTERM on to largegraph.
# Python's venv module comes from the distribution where the base has no Python 3.11 (a plain Debian,
# NVIDIA's Ubuntu). Versions are the base release's own: one pin would not exist in both Debian and Ubuntu.
# hadolint ignore=DL3008
RUN apt-get update \
    && if ! python3.11 -c 'import ensurepip' 2>/dev/null; then \
        DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends python3.11 python3.11-venv; \
    fi \
    && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends tini \
    && rm -rf /var/lib/apt/lists/*

RUN python3.11 -m venv /opt/venv && pip install "pip==${PIP_VERSION}"

# TORCH_SPEC holds the pin (torch==VERSION), which hadolint cannot see through the variable.
# hadolint ignore=DL3013
RUN pip install --index-url "${TORCH_INDEX_URL}" "${TORCH_SPEC}"

# Dependencies before the code, so that editing the code reuses this layer. pyproject's pins
# (torch==2.2.1, dgl==2.1.0) accept the +cpu/+cu121 builds installed here. The image carries the
# tensorboard and parquet extras too (train.loggers: tensorboard; predict/embed --out *.parquet).
COPY pyproject.toml /tmp/src/
RUN python -c 'import tomllib; p = tomllib.load(open("/tmp/src/pyproject.toml", "rb"))["project"]; print("\n".join(p["dependencies"] + p["optional-dependencies"]["tensorboard"] + p["optional-dependencies"]["parquet"]))' \
        > /tmp/requirements.txt \
    && if [ "$CUDA" = cpu ]; then \
        pip install "dgl==${DGL_VERSION}" -r /tmp/requirements.txt; \
    else \
        pip install "dgl==${DGL_VERSION}+${CUDA}" -f "https://data.dgl.ai/wheels/torch-2.2/${CUDA}/repo.html" \
            -r /tmp/requirements.txt; \
    fi \
    && rm /tmp/requirements.txt

COPY README.md /tmp/src/
COPY largegraph/ /tmp/src/largegraph/
RUN pip install --no-deps /tmp/src && rm -rf /tmp/src
COPY launch/container/healthcheck.py /opt/largegraph/healthcheck.py

RUN useradd --create-home --uid 1000 --user-group largegraph \
    && mkdir -p /app /data /runs \
    && ln -s /runs /app/runs \
    && chown largegraph:largegraph /app /data /runs \
    && chmod 0777 /data /runs
WORKDIR /app
COPY configs/ configs/
# Numeric, so that Kubernetes' runAsNonRoot can verify it without the image's /etc/passwd.
USER 1000:1000

# The `make demo` dataset (same command as the Makefile) and its processed cache, so the default
# command trains at once. The raw files' times are cut to whole seconds before the cache is keyed on
# them: an image layer keeps seconds only, and a key made from nanoseconds would not match at start.
RUN largegraph data synth node --name demo-social --nodes 20000 --avg-degree 20 --classes 8 \
        --feat-dim 64 --homophily 0.8 --root data \
    && find data -exec touch -h -d "@$(date +%s)" {} + \
    && python -c 'from largegraph.config import load_config; from largegraph.data import load_dataset; load_dataset(load_config("configs/demo.yaml").data)' \
    && chmod -R a+rwX data
# What `largegraph data inspect` says at start must be "from the cache", or the build stops here.
RUN python -c 'import sys; from largegraph.data.footprint import inspect; text = inspect("data/demo_social", {}, 1); sys.exit(None if "from the cache" in text else text)'

VOLUME ["/data", "/runs"]
# `serve --http 0.0.0.0:8470` (the job service's API and status page; launch/k8s/job-service.yaml)
EXPOSE 8470
# Docker runs one check for every container of the image: the script probes /healthz (no token
# needed) when PID 1 runs `serve --http`, and reports any other command healthy while it runs.
HEALTHCHECK --interval=30s --timeout=10s --start-period=60s --retries=3 \
    CMD ["python", "/opt/largegraph/healthcheck.py"]
ENTRYPOINT ["tini", "--", "largegraph"]
CMD ["train", "configs/demo.yaml"]
