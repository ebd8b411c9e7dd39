"""The configuration reference, ``docs/config.md``, generated from the job schema in ``largegraph.config``.

Every key of :class:`~largegraph.config.JobConfig` and its sections is listed with its type, default,
allowed values (the ``Field`` constraints and ``Literal`` choices) and its help text (``description=``),
so the reference cannot drift from what ``largegraph train`` accepts::

    python -m largegraph.config_doc            # (re)write docs/config.md
    python -m largegraph.config_doc --check    # exit 1 with one line if docs/config.md is stale

A test compares the committed file with :func:`render` and checks that every key of the schema is in it.
"""
from __future__ import annotations

import argparse
import inspect
import re
import sys
import types
from pathlib import Path
from typing import Any, Iterator, Literal, Union, get_args, get_origin

import annotated_types as at
from pydantic import BaseModel
from pydantic.fields import FieldInfo

from largegraph.config import JobConfig

DOC_PATH = Path(__file__).resolve().parents[1] / "docs" / "config.md"
REGENERATE = "python -m largegraph.config_doc"

_INTRO = """\
# Configuration reference

<!-- Generated from largegraph/config.py by `{regenerate}`; do not edit by hand. -->

A job file is YAML with the top-level keys below and one mapping per section (`data`, `sampler`,
`model`, `train`, `checkpoint`, `link`). Only `data.name` is required; every other key has a default.
Trailing `key=value` arguments of `largegraph train` and `largegraph submit` override the file, with
dotted keys and YAML values (`model.hidden=256`, `sampler.fanouts=[10,5]`, `train.grad_clip=null`).
Unknown keys, wrong types and out-of-range values are refused with the dotted key in the message.
`config.resolved.yaml` in a run directory holds every key, defaults filled in.
How the keys work together: [training.md](training.md).

Checks across keys: `sampler.fanouts` needs one entry per `model.num_layers` (except for
`model.arch: mlp`); `sampler.full_graph` needs `task: link_prediction` and every fanout `-1`;
GAT needs `model.hidden` divisible by `model.heads`.
"""


# --- walking the schema -------------------------------------------------------------------------------
def _section_type(annotation: Any) -> type[BaseModel] | None:
    """The pydantic model a field holds (a section), or None for a leaf."""
    for candidate in (annotation, *_non_null_args(annotation)):
        if isinstance(candidate, type) and issubclass(candidate, BaseModel):
            return candidate
    return None


def _non_null_args(annotation: Any) -> tuple:
    if get_origin(annotation) in (Union, types.UnionType):
        return tuple(a for a in get_args(annotation) if a is not type(None))
    return ()


def iter_sections(model: type[BaseModel] = JobConfig, prefix: str = "") -> Iterator[tuple[str, type[BaseModel]]]:
    """``(dotted prefix, model)`` of the schema and each nested section, in definition order."""
    yield prefix, model
    for name, field in model.model_fields.items():
        section = _section_type(field.annotation)
        if section is not None:
            yield from iter_sections(section, f"{prefix}{name}.")


def leaf_fields(model: type[BaseModel]) -> Iterator[tuple[str, FieldInfo]]:
    """The fields of ``model`` that are keys, not sections."""
    for name, field in model.model_fields.items():
        if _section_type(field.annotation) is None:
            yield name, field


def leaf_keys() -> list[str]:
    """Every dotted key of the schema (``sampler.fanouts``, ...)."""
    return [prefix + name for prefix, model in iter_sections() for name, _ in leaf_fields(model)]


# --- rendering one field ------------------------------------------------------------------------------
def _type_name(annotation: Any) -> str:
    if get_origin(annotation) is Literal:
        return "choice"
    args = _non_null_args(annotation)
    if args:
        return " or ".join(_type_name(a) for a in args) + " or null"
    origin = get_origin(annotation)
    if origin in (list, tuple, set):
        inner = get_args(annotation)
        return f"list of {_type_name(inner[0])}" if inner else "list"
    names = {str: "string", int: "int", float: "float", bool: "bool"}
    if annotation in names:
        return names[annotation]
    return getattr(annotation, "__name__", str(annotation))


def _value(value: Any) -> str:
    """A default or bound as it is written in YAML."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (list, tuple)):
        return "[" + ", ".join(_value(v) for v in value) + "]"
    return str(value)


def _default(field: FieldInfo) -> str:
    if field.is_required():
        return "required"
    if field.default_factory is not None:
        return f"`{_value(field.default_factory())}`"
    return f"`{_value(field.default)}`"


def _literal_choices(annotation: Any) -> list:
    if get_origin(annotation) is Literal:
        return list(get_args(annotation))
    for arg in _non_null_args(annotation):
        if get_origin(arg) is Literal:
            return list(get_args(arg))
    return []


def _count(n: int, text: bool) -> str:
    if text:
        return f"{n} character" + ("" if n == 1 else "s")
    return f"{n} " + ("entry" if n == 1 else "entries")


# annotated_types bounds: which side of x each one is on, and how the reference writes it
_BOUNDS = ((at.Ge, "lower", "{} <="), (at.Gt, "lower", "{} <"), (at.Le, "upper", "<= {}"), (at.Lt, "upper", "< {}"))


def _allowed(field: FieldInfo) -> str:
    parts: list[str] = []
    choices = _literal_choices(field.annotation)
    if field.annotation is bool:
        choices = [True, False]
    if choices:
        parts.append(", ".join(f"`{_value(c)}`" for c in choices))
    bounds: dict[str, str] = {}
    is_text = field.annotation is str
    for item in field.metadata:
        bound = next(((side, form) for kind, side, form in _BOUNDS if isinstance(item, kind)), None)
        if bound is not None:
            side, form = bound
            bounds[side] = form.format(_value(getattr(item, type(item).__name__.lower())))
        elif isinstance(item, (at.MinLen, at.MaxLen)):
            most = isinstance(item, at.MaxLen)
            n = item.max_length if most else item.min_length
            parts.append(f"at {'most' if most else 'least'} {_count(n, is_text)}")
        elif getattr(item, "pattern", None):
            parts.append(f"matches `{item.pattern}`")
    lower, upper = bounds.get("lower"), bounds.get("upper")
    if lower or upper:
        parts.insert(1 if choices else 0, " ".join(p for p in (lower, "x", upper) if p))
    if parts and _non_null_args(field.annotation):
        parts.append("or `null`")
    return "; ".join(parts) or "any"


_TAG_START = re.compile(r"<(?=[A-Za-z/!?])")


def _markdown(text: str) -> str:
    """reST literals (````x````) as Markdown ones; ``<`` outside code spans cannot start an HTML tag."""
    pieces = text.replace("``", "`").split("`")
    return "`".join(p if i % 2 else _TAG_START.sub("&lt;", p) for i, p in enumerate(pieces))


def _cell(text: str) -> str:
    return _markdown(" ".join(text.split())).replace("|", "\\|")


def _row(key: str, field: FieldInfo) -> str:
    cells = [f"`{key}`", _type_name(field.annotation), _default(field), _allowed(field),
             field.description or "(undocumented)"]
    return "| " + " | ".join(_cell(c) for c in cells) + " |"


# --- the page -----------------------------------------------------------------------------------------
def render() -> str:
    """The whole of ``docs/config.md`` (deterministic: the schema's definition order)."""
    out = [_INTRO.format(regenerate=REGENERATE)]
    for prefix, model in iter_sections():
        rows = [_row(prefix + name, field) for name, field in leaf_fields(model)]
        if not rows:
            continue
        title = f"`{prefix.rstrip('.')}`" if prefix else "Top level"
        out.append(f"## {title}\n")
        doc = _markdown(inspect.cleandoc(model.__doc__ or ""))
        if doc:
            out.append(doc + "\n")
        out.append("| key | type | default | allowed | description |\n|---|---|---|---|---|")
        out.append("\n".join(rows) + "\n")
    return "\n".join(out)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m largegraph.config_doc",
        description="Write the configuration reference (docs/config.md) from the job schema.")
    parser.add_argument("--check", action="store_true",
                        help="write nothing; exit 1 if the file differs from what the schema gives")
    parser.add_argument("--output", type=Path, default=DOC_PATH, help=f"default: {DOC_PATH}")
    args = parser.parse_args(sys.argv[1:] if argv is None else argv)
    text = render()
    if args.check:
        try:
            current = args.output.read_text(encoding="utf-8")
        except OSError:
            current = None
        if current != text:
            state = "missing" if current is None else "stale"
            print(f"{args.output} is {state}: run `{REGENERATE}` to regenerate it from largegraph/config.py",
                  file=sys.stderr)
            return 1
        return 0
    from largegraph.core.fsutil import atomic_write_text

    args.output.parent.mkdir(parents=True, exist_ok=True)
    atomic_write_text(args.output, text)
    print(f"wrote {args.output}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
