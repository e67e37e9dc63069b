"""Reading and writing recipes as JSON or YAML, the way the nucleus reads them.

YAML is loaded without the timestamp resolver: `RecipeFormatVersion: 2020-01-25` stays the
string the nucleus (Jackson) sees, not a Python date.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import yaml

from edge_agent.errors import BadInputError

FORMATS = ("json", "yaml")


class _RecipeLoader(yaml.SafeLoader):
    pass


_RecipeLoader.yaml_implicit_resolvers = {
    key: [(tag, rx) for tag, rx in resolvers if tag != "tag:yaml.org,2002:timestamp"]
    for key, resolvers in yaml.SafeLoader.yaml_implicit_resolvers.items()
}


MAX_YAML_VALUES = 100_000  # what a document may expand to, its aliases at their full size


def compose_bounded(text: str, origin: str, loader: type = yaml.SafeLoader) -> yaml.Node | None:
    """The YAML node tree, refused (BadInputError) when it is nested past Python's recursion
    limit or its aliases make it stand for more than MAX_YAML_VALUES values: a few lines of
    anchors ("billion laughs") stand for billions, and every walk over the loaded document
    (schema checks, cache keys, line maps) then runs out of memory or never ends."""
    try:
        root = yaml.compose(text, loader)  # noqa: S506  # a SafeLoader subclass
    except RecursionError:
        raise BadInputError(f"{origin} is nested too deeply to read") from None
    sizes: dict[int, int] = {}

    def size(node: yaml.Node) -> int:
        key = id(node)
        if key not in sizes:
            sizes[key] = 1  # a node that holds itself counts once
            if isinstance(node, yaml.MappingNode):
                sizes[key] = 1 + sum(size(k) + size(v) for k, v in node.value)
            elif isinstance(node, yaml.SequenceNode):
                sizes[key] = 1 + sum(size(v) for v in node.value)
        return sizes[key]

    if root is not None and size(root) > MAX_YAML_VALUES:
        raise BadInputError(
            f"{origin} stands for more than {MAX_YAML_VALUES:,} values once its YAML aliases "
            "(*name) are expanded",
            hint="write the values out, or use fewer nested anchors",
        )
    return root


def parse(text: str, origin: str = "recipe") -> dict[str, Any]:
    stripped = text.lstrip()
    try:
        if stripped.startswith("{"):
            data = json.loads(text)
        else:
            compose_bounded(text, origin, _RecipeLoader)
            data = yaml.load(text, _RecipeLoader)  # noqa: S506
    except (json.JSONDecodeError, yaml.YAMLError) as exc:
        raise BadInputError(
            f"{origin} is neither valid JSON nor valid YAML: {exc}",
            hint="the nucleus cannot read it either: fix the syntax at the line shown "
            "(indentation, quotes around values with '%', ':' or '{')",
        ) from exc
    if not isinstance(data, dict):
        raise BadInputError(f"{origin} must hold a JSON/YAML object at the top level")
    return data


def read(path: Path) -> tuple[dict[str, Any], bytes]:
    path = Path(path)
    if not path.is_file():
        raise BadInputError(f"recipe file {path} does not exist")
    raw = path.read_bytes()
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise BadInputError(f"{path} is not UTF-8 text") from exc
    return parse(text, str(path)), raw


def dumps(recipe: dict[str, Any], fmt: str = "json") -> str:
    if fmt == "json":
        return json.dumps(recipe, indent=2, ensure_ascii=False) + "\n"
    if fmt == "yaml":
        return yaml.safe_dump(recipe, sort_keys=False, default_flow_style=False, width=100)
    raise BadInputError(f"`format` {fmt!r} is not json or yaml")


def file_name(name: str, version: str, fmt: str) -> str:
    return f"{name}-{version}.{fmt}"
