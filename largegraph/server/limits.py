"""Bounds on what a request may make the server parse: nesting depth of its JSON body and of the
YAML inside it, the size and shape of overrides.

Each check runs before the parser that would suffer: Python's JSON and YAML parsers recurse once
per nesting level, so a body a few thousand levels deep costs seconds of CPU and ends in
``RecursionError``. The checks themselves never recurse.
"""
from __future__ import annotations

from typing import Sequence

import yaml

from largegraph.core.errors import ConfigError

MAX_DEPTH = 32          # a job config nests four or five levels; 32 leaves room for any list of lists
MAX_OVERRIDE = 4096     # characters of one ``key=value`` override
MAX_KEY_PARTS = 16      # dotted parts of one override's key


class TooDeep(ValueError):
    """A request body nested deeper than :data:`MAX_DEPTH`."""


def check_json_depth(data: bytes, limit: int = MAX_DEPTH) -> None:
    """Raise :class:`TooDeep` if the JSON text ``data`` opens more than ``limit`` arrays or objects
    inside each other (brackets inside strings do not count; malformed text is the parser's to refuse)."""
    depth, in_string, escaped = 0, False, False
    for byte in data:
        if in_string:
            if escaped:
                escaped = False
            elif byte == 0x5C:  # backslash
                escaped = True
            elif byte == 0x22:  # quote
                in_string = False
        elif byte == 0x22:
            in_string = True
        elif byte in (0x5B, 0x7B):  # [ {
            depth += 1
            if depth > limit:
                raise TooDeep(f"request body nested deeper than {limit} levels")
        elif byte in (0x5D, 0x7D):
            depth -= 1


def check_yaml_depth(text: str, source: str, limit: int = MAX_DEPTH) -> None:
    """``ConfigError`` if the YAML ``text`` nests collections deeper than ``limit``.

    Reads the parser's event stream (which keeps its own stack, no recursion), so the check costs
    one pass and stops at the first level too many; invalid YAML is left for the real parse to report.
    """
    depth = 0
    try:
        for event in yaml.parse(text, Loader=yaml.SafeLoader):
            if isinstance(event, (yaml.MappingStartEvent, yaml.SequenceStartEvent)):
                depth += 1
                if depth > limit:
                    raise ConfigError(f"{source}: nested deeper than {limit} levels; a job config needs far fewer")
            elif isinstance(event, (yaml.MappingEndEvent, yaml.SequenceEndEvent)):
                depth -= 1
    except yaml.YAMLError:
        return


def check_overrides(overrides: Sequence[str]) -> None:
    """``ConfigError`` for an override that is too long, has too many key parts or nests too deep."""
    for text in overrides:
        if len(text) > MAX_OVERRIDE:
            raise ConfigError(f"override {text[:40]!r}... is longer than {MAX_OVERRIDE} characters")
        key, _, value = text.partition("=")
        if key.count(".") >= MAX_KEY_PARTS:
            raise ConfigError(f"override {key[:40]!r}...: keys have at most {MAX_KEY_PARTS} dotted parts")
        check_yaml_depth(value, f"override {key!r}")
