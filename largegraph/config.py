"""Typed job schema: YAML loading, dotted CLI overrides, resolved dumps.

Every section rejects unknown keys, so a typo (``model.hiden``) fails loudly with its dotted path
instead of silently training with a default. Rank, world size and device are runtime arguments,
never config keys: one job file runs unchanged on a laptop, under torchrun or in a pod.
"""
from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any, Literal, Optional

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from largegraph.core.errors import ConfigError


class Section(BaseModel):
    model_config = ConfigDict(extra="forbid", validate_assignment=True)


class DataConfig(Section):
    """Where the graph comes from and how it is prepared for message passing."""

    name: str = Field(min_length=1, description="OGB name (ogbn-arxiv) or a dataset written by `largegraph data`")
    root: str = Field("data", description="directory holding dataset folders (OGB's root)")
    add_reverse_edges: Literal["auto", "true", "false"] = Field(
        "auto", description="auto: add reverse edges unless OGB already stored both directions")
    self_loops: bool = Field(False, description="remove then add one self-loop per node (GCN/GAT want them)")
    feature_norm: Literal["none", "row", "standardize"] = Field(
        "none", description="row: L1-normalise rows (bag-of-words); standardize: zero mean, unit variance per column")
    features: Literal["auto", "memory", "mmap"] = Field(
        "auto", description="memory: each process reads the feature matrix into its own RAM; mmap: every process "
        "on the machine maps one copy from the processed cache (page cache; may exceed RAM); auto: mmap when "
        "several local workers train or the matrix would take over half the available memory, else memory")
    feature_dtype: Literal["float32", "float16", "bfloat16"] = Field(
        "float32", description="how features are stored in the processed cache; float16/bfloat16 halve their "
        "bytes and are computed in float32")
    feature_cache_mb: int = Field(
        0, ge=0, description="with mapped features: keep the rows of the highest-degree nodes, up to this many "
        "MiB, in each process's RAM (fewer page-cache misses when the matrix exceeds RAM); 0: off")
    sparse_features: Literal["keep", "densify"] = Field(
        "keep", description="features a dataset stores sparse (multi-hot .json/.npz imports): keep them as CSR rows "
        "gathered per batch and multiplied sparse by the first layer (node classification with sage, gcn, gin or mlp), "
        "or densify them when the processed cache is built (any model; far more memory and time)")
    relation: str | None = Field(
        None, description="typed datasets, link prediction: the relation whose edges are predicted, as "
        "src:rel:dst (author:writes:paper) or a relation name that is unique in the dataset (writes)")


class SamplerConfig(Section):
    """Mini-batch sampling and delivery: one fanout per GNN layer, -1 for all neighbors.

    Batch *b* of epoch *e* is a function of ``(seed, e, b)``, whatever ``num_workers`` is.
    """

    fanouts: list[int] = Field(
        default_factory=lambda: [15, 10], min_length=1,
        description="neighbours sampled per layer, first layer first; each positive or -1 (every neighbour); "
        "one entry per model.num_layers (any length for model.arch mlp)")
    batch_size: int = Field(
        1024, gt=0, description="seed nodes (node classification) or positive edges (link prediction) per "
        "optimizer step, per worker: with N data-parallel workers a step takes batch_size x N")
    eval_batch_size: int = Field(8192, gt=0, description="node chunk size for layer-wise inference")
    num_workers: int = Field(0, ge=0, description="sampling worker processes (0: sample in the trainer)")
    prefetch: int = Field(
        2, ge=0, le=16, description="with num_workers 0: batches a background thread of the trainer samples and "
        "gathers ahead of the one being computed (0: sample each batch when it is needed)")
    shuffle: bool = Field(True, description="a new seeded order of the training seeds every epoch (false: stored order)")
    drop_last: bool = Field(False, description="skip each epoch's last, incomplete batch")
    full_graph: bool = Field(
        False, description="link prediction on small graphs: every step passes messages over the whole "
        "training graph less the batch's own edges, instead of building per-batch blocks (fanouts all -1)")
    relation_fanouts: dict[str, list[int]] = Field(
        default_factory=dict, description="typed graphs: fanouts per relation (`src:rel:dst` or a unique `rel`), "
        "one per layer, first layer first; relations not named use sampler.fanouts")

    @model_validator(mode="after")
    def _fanouts_valid(self) -> "SamplerConfig":
        bad = [f for f in self.fanouts if f == 0 or f < -1]
        if bad:
            raise ValueError(f"fanouts must be positive or -1 (all neighbors), got {self.fanouts}")
        if self.full_graph and any(f != -1 for f in self.fanouts):
            raise ValueError(f"full_graph uses every neighbour: set fanouts to -1 per layer, not {self.fanouts}")
        for rel, fanouts in self.relation_fanouts.items():
            if len(fanouts) != len(self.fanouts) or any(f == 0 or f < -1 for f in fanouts):
                raise ValueError(f"relation_fanouts[{rel}] must hold {len(self.fanouts)} fanouts (one per layer, "
                                 f"each positive or -1), got {fanouts}")
        return self


class ModelConfig(Section):
    """The encoder (message passing); task heads are built from the task section."""

    arch: Literal["sage", "gat", "gcn", "mlp", "gin", "rgcn", "rgat", "hsage"] = Field(
        "sage", description="encoder: GraphSAGE, GAT, GCN, an MLP on the node features alone (no message passing), "
        "or GIN (sum aggregation and an MLP update); typed graphs: rgcn (relational GCN), rgat (relational GAT) or "
        "hsage (GraphSAGE per relation), or mlp on the target type's features")
    hidden: int = Field(256, gt=0, description="width of the hidden layers and of the node embedding")
    num_layers: int = Field(2, ge=1, le=8, description="encoder layers (message-passing layers for graph encoders)")
    aggregator: Literal["mean", "pool", "gcn"] = Field("mean", description="GraphSAGE aggregator")
    heads: int = Field(4, ge=1, description="GAT and RGAT attention heads (model.hidden must be divisible by them)")
    num_bases: int = Field(0, ge=0, description="rgcn: basis matrices shared by all relations (basis decomposition); "
                                                "0: one weight matrix per relation")
    gin_eps: float = Field(0.0, description="GIN: a node's own input is weighted 1 + gin_eps against the sum of its "
                           "neighbours' (0: GIN-0, the paper's best variant)")
    gin_eps_learnable: bool = Field(False, description="GIN: learn eps per layer, starting from model.gin_eps")
    dropout: float = Field(0.5, ge=0.0, lt=1.0, description="dropout after each hidden layer's activation")
    input_dropout: float = Field(0.0, ge=0.0, lt=1.0, description="dropout on the input features")
    norm: Literal["none", "batch", "layer"] = Field(
        "none", description="normalisation after each hidden layer: BatchNorm, LayerNorm or none")
    activation: Literal["relu", "elu", "gelu"] = Field("relu", description="activation after each hidden layer")
    activate_output: bool = Field(
        False, description="apply the activation to the last layer's output too (PLNLP's link encoders); "
        "by default the embedding is left raw for the task head")


class TrainConfig(Section):
    """Optimisation and evaluation schedule."""

    epochs: int = Field(10, ge=1, description="passes over the training seeds (early stopping may end sooner)")
    lr: float = Field(0.003, gt=0, description="learning rate (not rescaled for data-parallel workers)")
    weight_decay: float = Field(0.0, ge=0, description="the optimizer's weight decay")
    optimizer: Literal["adam", "adamw", "sgd"] = Field("adam", description="sgd uses momentum 0.9")
    lr_schedule: Literal["none", "cosine", "step", "plateau"] = Field(
        "none", description="cosine: annealed over train.epochs; step: times lr_gamma every lr_step_epochs; "
        "plateau: times lr_gamma after 2 evaluations without a better validation score")
    lr_step_epochs: int = Field(10, ge=1, description="step schedule: epochs between decays")
    lr_gamma: float = Field(0.5, gt=0, le=1, description="step and plateau schedules: factor applied at each decay")
    grad_clip: Optional[float] = Field(None, gt=0, description="max gradient norm; null disables clipping")
    precision: Literal["fp32", "bf16"] = Field(
        "fp32", description="bf16: training forward passes under bfloat16 autocast (weights and evaluation stay fp32)")
    eval_every: int = Field(1, ge=1, description="evaluate on valid/test every N epochs")
    validation: Literal["auto", "exact", "sampled"] = Field(
        "auto", description="how evaluations during training score the model for model selection, early stopping "
        "and the plateau schedule: exact: layer-wise full-neighbour inference of every node (all three splits); "
        "sampled: the validation nodes only, on neighbourhoods sampled with sampler.fanouts from a fixed seed "
        "(the same every evaluation); auto: sampled for node classification, exact for link prediction. The "
        "final result is always exact inference of the weights the run ends with")
    ema_decay: Optional[float] = Field(
        None, gt=0, lt=1, description="evaluate and save an exponential moving average of the weights, "
        "updated after every step with this decay; null: the weights as trained")
    early_stopping_patience: Optional[int] = Field(
        None, ge=1, description="stop after N evaluations without a better validation score")
    restore_best: bool = Field(True, description="final model.pt/predictions come from the best validation epoch")
    label_smoothing: float = Field(0.0, ge=0, lt=1, description="node classification: label smoothing of the cross-entropy loss")
    export_embeddings: bool = Field(False, description="also write embeddings.pt (N x hidden float32)")
    loggers: list[Literal["jsonl", "tensorboard"]] = Field(
        default_factory=lambda: ["jsonl"], description="where metrics go: jsonl (metrics.jsonl, the run's record, "
        "always written) and tensorboard (event files in <run dir>/tensorboard: per-step and per-epoch scalars, "
        "the config as text; needs the [tensorboard] extra)")

    @model_validator(mode="after")
    def _jsonl_kept(self) -> "TrainConfig":
        if "jsonl" not in self.loggers:
            raise ValueError("loggers must include jsonl: metrics.jsonl is the run's record that report, resume "
                             "and the job service read; e.g. [jsonl, tensorboard]")
        return self


class LinkConfig(Section):
    """Link prediction: negatives, the edge scorer, the loss and evaluation chunking."""

    predictor: Literal["dot", "mlp"] = Field(
        "dot", description="edge scorer: dot product of the two embeddings, or an MLP on their elementwise product")
    predictor_layers: int = Field(2, ge=1, le=8, description="mlp predictor: linear layers")
    predictor_dropout: float = Field(0.0, ge=0, lt=1, description="mlp predictor: dropout between its layers")
    predictor_input_dropout: float = Field(
        0.0, ge=0, lt=1, description="mlp predictor: dropout on its input, the product of the two embeddings")
    loss: Literal["bce", "margin", "auc"] = Field(
        "bce", description="margin: hinge ranking loss, positive above its negatives by margin; "
        "auc: squared loss pulling every positive-negative gap towards margin (PLNLP's AUC loss)")
    margin: float = Field(1.0, gt=0, description="margin and auc losses: the target gap between a positive's score and its negatives'")
    negative_sampler: Literal["uniform", "global_uniform"] = Field(
        "uniform", description="uniform: k random destinations per positive source; global_uniform: random pairs")
    num_negatives: int = Field(1, ge=1, le=1000, description="negative pairs drawn per positive edge, per batch")
    exclude_seed_edges: bool = Field(
        True, description="leave each batch's positive edges and their reverses out of its message passing "
        "(false: OGB's full-graph examples' setting, the model sees the edges it scores)")
    true_negatives: bool = Field(
        True, description="redraw sampled negatives that are training edges or self-pairs (false: raw uniform draws)")
    embedding: Literal["auto", "always", "never"] = Field(
        "auto", description="learnable node embeddings as input: auto = when the graph has no node features")
    embedding_dim: Optional[int] = Field(None, gt=0, description="default: model.hidden")
    score_batch_size: int = Field(65536, gt=0, description="edges scored per chunk in evaluation")


class CheckpointConfig(Section):
    """When checkpoints are written and how many are kept."""

    every_n_steps: Optional[int] = Field(None, ge=1, description="also checkpoint inside epochs every N optimizer steps")
    every_n_epochs: int = Field(1, ge=1, description="checkpoint after every N epochs (and always after the last)")
    keep_last: int = Field(2, ge=1, description="newest checkpoints kept; older ones are deleted")
    keep_best: bool = Field(True, description="also keep the checkpoint with the best validation score")
    on_save_error: Literal["fail", "continue"] = Field(
        "fail", description="a failed save (e.g. disk full): stop the run, or warn and keep training")


class DistributedConfig(Section):
    """Where the graph lives: on every machine (``local``: this process or torchrun workers map it) or
    in partitions served by DGL's distributed engine (``distdgl``); see docs/distdgl.md."""

    mode: Literal["local", "distdgl"] = Field(
        "local", description="local: every worker maps the whole graph; distdgl: graph servers hold partitions")
    part_config: Optional[str] = Field(
        None, description="distdgl: the partition config `largegraph partition` wrote (`<out>/<name>.json`)")
    ip_config: Optional[str] = Field(
        None, description="distdgl: a file with one machine per line (`IP [PORT]`), the first one leading; "
                          "`--ip-config` sets it")
    local: int = Field(0, ge=0, le=64, description="distdgl: start this many graph servers and trainers on "
                                                   "this machine instead of using ip_config (`--distdgl-local N`)")
    servers_per_machine: int = Field(1, ge=1, le=64, description="distdgl: graph servers per machine (with "
                                                                 "`local`: that number)")
    trainers_per_machine: int = Field(1, ge=1, le=64, description="distdgl: trainers per machine (with "
                                                                  "`local`: that number)")
    port: int = Field(30050, ge=1024, le=65000, description="distdgl: first port of the graph servers on "
                                                            "each machine (servers use consecutive ports); "
                                                            "with `local` a free range is picked")
    remote_shell: str = Field(
        "ssh -o BatchMode=yes -o ConnectTimeout=10 {host}", max_length=500,
        description="distdgl over ip_config: the command that runs a shell command on machine {host} "
                    "({index} is its line in ip_config)")
    start_timeout_s: float = Field(300, gt=0, description="distdgl: seconds every server and trainer has to "
                                                          "come up before the job fails")
    stop_timeout_s: float = Field(60, gt=0, description="distdgl: seconds to wait for the rest to exit after "
                                                        "the trainers finish or one process fails")

    @model_validator(mode="after")
    def _needs_partitions(self) -> "DistributedConfig":
        if self.mode == "distdgl" and not self.part_config:
            raise ValueError("distributed.mode: distdgl needs distributed.part_config (the <name>.json "
                             "`largegraph partition` wrote)")
        return self


# Encoders that pass no messages take no fanouts (each encoder class says so too: a test keeps
# the two in agreement).
GRAPH_FREE_ARCHS = frozenset({"mlp"})

_LATER_MODEL_KEYS = {"activate_output": False, "num_bases": 0, "gin_eps": 0.0, "gin_eps_learnable": False}


class JobConfig(Section):
    """A whole training job, as written in ``configs/*.yaml``."""

    name: str = Field("job", pattern=r"^[A-Za-z0-9][A-Za-z0-9_.-]*$", max_length=100,
                      description="job name; the default run directory is `runs/<name>-<UTC time>`")
    task: Literal["node_classification", "link_prediction"] = Field(
        "node_classification", description="what is trained; link_prediction also reads the link section")
    seed: int = Field(0, ge=0, description="seeds the initial weights, every epoch's order and every sampled batch")
    data: DataConfig
    sampler: SamplerConfig = Field(default_factory=SamplerConfig)
    model: ModelConfig = Field(default_factory=ModelConfig)
    train: TrainConfig = Field(default_factory=TrainConfig)
    checkpoint: CheckpointConfig = Field(default_factory=CheckpointConfig)
    link: LinkConfig = Field(default_factory=LinkConfig)
    distributed: DistributedConfig = Field(default_factory=DistributedConfig)

    @model_validator(mode="after")
    def _fanouts_match_layers(self) -> "JobConfig":
        if self.model.arch not in GRAPH_FREE_ARCHS and len(self.sampler.fanouts) != self.model.num_layers:
            raise ValueError(
                f"sampler.fanouts has {len(self.sampler.fanouts)} entries but model.num_layers is "
                f"{self.model.num_layers}; give one fanout per layer"
            )
        if self.sampler.full_graph and self.task != "link_prediction":
            raise ValueError("sampler.full_graph is for link_prediction; node classification samples blocks")
        if self.train.validation == "sampled" and self.task != "node_classification":
            raise ValueError("train.validation: sampled is for node_classification; link prediction evaluates "
                             "exactly (train.validation: exact or auto)")
        return self

    def fingerprint(self) -> str:
        """Hash of everything that shapes the model and the task (not epochs or paths)."""
        model = self.model.model_dump()
        # Keys added to the model section later count only when set, so that runs checkpointed
        # before they existed still resume.
        for key, default in _LATER_MODEL_KEYS.items():
            if model[key] == default:
                del model[key]
        keep = {"task": self.task, "model": model, "data": self.data.name}
        if self.data.feature_dtype != "float32":  # later key: counts only when set
            keep["feature_dtype"] = self.data.feature_dtype
        if self.task == "link_prediction":
            link = self.link.model_dump()
            keep["link"] = {k: link[k] for k in ("predictor", "embedding", "embedding_dim")}
        return hashlib.sha256(json.dumps(keep, sort_keys=True).encode()).hexdigest()[:16]


def _format_error(exc: ValidationError, source: str) -> str:
    err = exc.errors()[0]
    where = ".".join(str(p) for p in err["loc"]) or "(top level)"
    msg = err["msg"].removeprefix("Value error, ")
    if err["type"] == "extra_forbidden":
        msg = "unknown key (check its spelling against docs/config.md)"
    elif err["type"] == "missing":
        msg = "required key is missing"
    more = f" (and {len(exc.errors()) - 1} more)" if len(exc.errors()) > 1 else ""
    return f"{source}: {where}: {msg}{more}"


def parse_override(text: str) -> tuple[list[str], Any]:
    """``model.hidden=256`` -> (['model', 'hidden'], 256). Values are parsed as YAML scalars/lists."""
    key, sep, raw = text.partition("=")
    if not sep or not key or any(not part for part in key.split(".")):
        raise ConfigError(f"override {text!r} must look like section.key=value (e.g. model.hidden=256)")
    try:
        value = yaml.safe_load(raw) if raw != "" else ""
    except yaml.YAMLError:
        raise ConfigError(f"override {text!r}: value {raw!r} is not valid YAML") from None
    return key.split("."), value


def apply_overrides(raw: dict, overrides: list[str]) -> dict:
    """Set each dotted override into the raw (unvalidated) config dictionary."""
    for text in overrides:
        path, value = parse_override(text)
        node = raw
        for part in path[:-1]:
            child = node.setdefault(part, {})
            if not isinstance(child, dict):
                raise ConfigError(f"override {text!r}: {part} is not a section")
            node = child
        node[path[-1]] = value
    return raw


def read_yaml(path: str | Path) -> dict:
    path = Path(path)
    try:
        text = path.read_text()
    except FileNotFoundError:
        raise ConfigError(f"config file {path} does not exist") from None
    except IsADirectoryError:
        raise ConfigError(f"config path {path} is a directory, not a YAML file") from None
    return parse_yaml(text, str(path))


def parse_yaml(text: str, source: str) -> dict:
    """A job file's text as a raw (unvalidated) mapping; errors name ``source`` (its path, say)."""
    try:
        raw = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" at line {mark.line + 1}" if mark else ""
        raise ConfigError(f"{source}: invalid YAML{where}") from None
    if raw is None:
        raw = {}
    if not isinstance(raw, dict):
        raise ConfigError(f"{source}: top level must be a mapping of sections")
    return raw


def build_config(raw: dict, source: str = "config") -> JobConfig:
    try:
        return JobConfig.model_validate(raw)
    except ValidationError as exc:
        raise ConfigError(_format_error(exc, source)) from None


def load_config(path: str | Path, overrides: list[str] | None = None) -> JobConfig:
    """Load a YAML job file, apply dotted overrides and validate.

    Raises:
        ConfigError: naming the dotted key that is wrong.
    """
    raw = apply_overrides(read_yaml(path), overrides or [])
    return build_config(raw, str(path))


def dump_config_text(cfg: JobConfig) -> str:
    """The fully resolved config (defaults included) as YAML text."""
    return yaml.safe_dump(cfg.model_dump(mode="json"), sort_keys=False)


def config_digest(text: str) -> str:
    """A short hash of a resolved config's text (:func:`dump_config_text`): which job a run did."""
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def dump_config(cfg: JobConfig, path: str | Path) -> None:
    """Write the fully resolved config (defaults included) as YAML."""
    from largegraph.core.fsutil import atomic_write_text

    atomic_write_text(path, dump_config_text(cfg))
