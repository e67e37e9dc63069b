"""Recipe variables: `{artifacts:path}`, `{artifacts:decompressedPath}`, `{work:path}`,
`{kernel:rootPath}`, `{iot:thingName}`, `{configuration:/json/pointer}`, and the same with a
direct dependency's name in front (`{Other.Component:configuration:/x}`).

As in the nucleus: a configuration value becomes its string (an object becomes JSON); a pointer
that names nothing, or a component that is not a direct dependency, is left unreplaced.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from edgekit.toolkit.greengrass import jsonpointer
from edgekit.toolkit.simulator.layout import GreengrassRoot

_VAR = re.compile(
    r"\{(?:(?P<comp>[A-Za-z0-9._-]+):)?(?P<ns>configuration|artifacts|work|kernel|iot):(?P<key>[^{}]+)\}"
)


def _to_text(value: Any) -> str:
    if isinstance(value, str):
        return value
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (dict, list)):
        return json.dumps(value, separators=(",", ":"))
    if value is None:
        return "null"
    return str(value)


@dataclass
class Interpolator:
    """Interpolates for one component; `versions` gives each known component's version."""

    component: str
    root: GreengrassRoot
    thing_name: str
    config_of: Callable[[str], dict[str, Any]]
    versions: dict[str, str]
    dependencies: set[str] = field(default_factory=set)

    def _lookup(self, comp: str, ns: str, key: str) -> str | None:
        version = self.versions.get(comp)
        if ns == "configuration":
            try:
                return _to_text(jsonpointer.resolve(self.config_of(comp), jsonpointer.split(key)))
            except (KeyError, ValueError):
                return None
        if ns == "artifacts" and version is not None:
            if key == "path":
                return str(self.root.artifacts(comp, version))
            if key == "decompressedPath":
                return str(self.root.unarchived(comp, version))
        if ns == "work" and key == "path":
            return str(self.root.work(comp))
        return None

    def __call__(self, text: str) -> str:
        def sub(m: re.Match[str]) -> str:
            comp, ns, key = m.group("comp"), m.group("ns"), m.group("key")
            if comp is None:
                if ns == "kernel" and key == "rootPath":
                    return str(self.root.path)
                if ns == "iot" and key == "thingName":
                    return self.thing_name
                value = self._lookup(self.component, ns, key)
            elif comp in self.dependencies and ns in ("configuration", "artifacts", "work"):
                value = self._lookup(comp, ns, key)
            else:
                value = None
            return m.group(0) if value is None else value

        return _VAR.sub(sub, text)

    def deep(self, node: Any) -> Any:
        """Interpolate every string in a lifecycle tree."""
        if isinstance(node, str):
            return self(node)
        if isinstance(node, dict):
            return {k: self.deep(v) for k, v in node.items()}
        if isinstance(node, list):
            return [self.deep(v) for v in node]
        return node
