# syntax=docker/dockerfile:1
# largegraph in a container. The default command trains the `make demo` job.
#
#   docker build -t largegraph .                                        # CPU (default)
#   docker build --build-arg CUDA=cu121 -t largegraph:cu121 .            # CUDA 12.1 base, CUDA torch + DGL
#   docker run --rm --shm-size=8g largegraph                             # the demo job
#   docker run --rm --shm-size=8g -v /datasets/ogb:/data -v "$PWD/runs:/runs" largegraph \
#       train configs/ogbn_products_sage.yaml data.root=/data --run-dir /runs/products
#
# Volumes: /data for datasets (pass data.root=/data) and /runs for run directories (runs/ under the
# working directory /app is a link to /runs, so default run directories land there too). The demo
# dataset is generated at build time under /app/data. --shm-size: DGL sampler workers
# (sampler.num_workers > 0) hand batches over in /dev/shm, which Docker limits to 64 MiB.
# Runs as uid 1000: a bind-mounted directory must exist and be writable by it, or run as yourself
# with --user "$(id -u):$(id -g)".

# CUDA: cpu, or cu121 for an image on NVIDIA's CUDA 12.1 runtime with the cu121 wheels of torch and
# DGL (PyPI's DGL wheel is CPU-only). Only the chosen base stage is built (BuildKit).
ARG CUDA=cpu

FROM python:3.11-slim-bookworm AS base-cpu

FROM nvidia/cuda:12.1.1-runtime-ubuntu22.04 AS base-cu121
RUN apt-get update \
    && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends python3.11 python3.11-venv \
    && rm -rf /var/lib/apt/lists/*

FROM base-${CUDA}
ARG CUDA
ARG TORCH_VERSION=2.2.1
ARG DGL_VERSION=2.1.0
ENV PYTHONUNBUFFERED=1 \
    PYTHONDONTWRITEBYTECODE=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    VIRTUAL_ENV=/opt/venv \
    PATH=/opt/venv/bin:$PATH \
    DGLBACKEND=pytorch \
    MPLCONFIGDIR=/tmp/matplotlib

RUN python3.11 -m venv /opt/venv && pip install --upgrade pip

# torch from PyTorch's own index: +cpu is a fraction of PyPI's CUDA wheel; +cu121 for the CUDA image.
RUN pip install --index-url "https://download.pytorch.org/whl/${CUDA}" "torch==${TORCH_VERSION}+${CUDA}"

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

RUN useradd --create-home --uid 1000 --user-group largegraph \
    && mkdir -p /app /data /runs \
    && ln -s /runs /app/runs \
    && chown largegraph:largegraph /app /data /runs \
    && chmod 0777 /data /runs
WORKDIR /app
COPY configs/ configs/
USER largegraph

# The `make demo` dataset (same command as the Makefile), so the default command trains at once.
RUN largegraph data synth node --name demo-social --nodes 20000 --avg-degree 20 --classes 8 \
        --feat-dim 64 --homophily 0.8 --root data \
    && chmod -R a+rwX data

VOLUME ["/data", "/runs"]
# `serve --http 0.0.0.0:8470` (the job service's API and status page; launch/k8s/job-service.yaml)
EXPOSE 8470
ENTRYPOINT ["largegraph"]
CMD ["train", "configs/demo.yaml"]
