"""Component configuration: the nucleus's config tree per component, with change events,
IPC update timestamps, and the deployment `configurationUpdate` (RESET then MERGE)."""

from __future__ import annotations

import copy
import time
from collections.abc import Callable
from typing import Any

from edgekit.toolkit.greengrass import jsonpointer
from edgekit.toolkit.greengrass.jsonpointer import resolve

Path_ = tuple[str, ...]
Listener = Callable[[str, list[str]], None]


class StaleUpdate(Exception):
    """An UpdateConfiguration older than the value it would replace."""


def deep_merge(base: dict, overlay: dict) -> dict:
    """Overlay wins; dicts merge key by key; lists and scalars are replaced whole."""
    out = copy.deepcopy(base)
    for k, v in overlay.items():
        if isinstance(v, dict) and isinstance(out.get(k), dict):
            out[k] = deep_merge(out[k], v)
        else:
            out[k] = copy.deepcopy(v)
    return out


def _set(tree: dict, parts: list[str], value: Any) -> None:
    node = tree
    for p in parts[:-1]:
        nxt = node.get(p)
        if not isinstance(nxt, dict):
            nxt = node[p] = {}
        node = nxt
    node[parts[-1]] = value


def _delete(tree: dict, parts: list[str]) -> None:
    node: Any = tree
    for p in parts[:-1]:
        if not isinstance(node, dict) or p not in node:
            return
        node = node[p]
    if isinstance(node, dict):
        node.pop(parts[-1], None)


def apply_configuration_update(
    current: dict, default: dict, reset: list[str] | None, merge: dict | None
) -> dict:
    """A deployment's configurationUpdate, step by step as the nucleus resolves it
    (KernelConfigResolver.resolveConfigurationToApply):

    1. RESET removes each pointed key from the running configuration; `""` empties it (and
       the pointers after it are not looked at); a pointer with an array index in it is
       ignored (the nucleus logs "points to an element of array" and goes on);
    2. the recipe's DefaultConfiguration is merged under what is left: a default never
       replaces a value that is there, so a reset key comes back as its default, or not at
       all when the default has no such key;
    3. MERGE is merged on top: objects key by key, lists and scalars replaced whole.
    """
    out = copy.deepcopy(current)
    for pointer in reset or []:
        parts = jsonpointer.split(pointer)
        if not parts:
            out = {}
            break
        if any(jsonpointer.is_index(p) for p in parts):
            continue
        _delete(out, parts)
    out = deep_merge(default, out)
    if merge:
        out = deep_merge(out, merge)
    return out


def changed_paths(old: Any, new: Any, prefix: Path_ = ()) -> list[list[str]]:
    """One key path per changed node (the nucleus sends one event per changed node)."""
    if isinstance(old, dict) and isinstance(new, dict):
        out: list[list[str]] = []
        for k in list(old) + [k for k in new if k not in old]:
            if k not in new:
                out += _leaves(old[k], prefix + (k,))
            elif k not in old:
                out += _leaves(new[k], prefix + (k,))
            else:
                out += changed_paths(old[k], new[k], prefix + (k,))
        return out
    return [] if old == new else [list(prefix)]


def _leaves(value: Any, prefix: Path_) -> list[list[str]]:
    if isinstance(value, dict) and value:
        return [p for k, v in value.items() for p in _leaves(v, prefix + (k,))]
    return [list(prefix)]


class ConfigStore:
    """Per-component configuration with subscribers; used by IPC and by deployments."""

    def __init__(self) -> None:
        self._cfg: dict[str, dict] = {}
        self._stamp: dict[tuple[str, Path_], float] = {}
        self._listeners: list[tuple[str, Path_, Listener]] = []

    def components(self) -> list[str]:
        return list(self._cfg)

    def has(self, component: str) -> bool:
        return component in self._cfg

    def snapshot(self, component: str) -> dict:
        return copy.deepcopy(self._cfg.get(component, {}))

    def get(self, component: str, key_path: list[str]) -> Any:
        if component not in self._cfg:
            raise KeyError(component)
        return copy.deepcopy(resolve(self._cfg[component], key_path))

    def peek(self, component: str, key_path: list[str], default: Any = None) -> Any:
        try:
            return resolve(self._cfg.get(component, {}), key_path)
        except KeyError:
            return default

    def replace(self, component: str, config: dict) -> list[list[str]]:
        """Set the whole configuration (deployment); notify one event per changed node."""
        old = self._cfg.get(component, {})
        self._cfg[component] = copy.deepcopy(config)
        changes = changed_paths(old, config)
        self._notify(component, changes)
        return changes

    def remove(self, component: str) -> None:
        self._cfg.pop(component, None)

    def update(
        self, component: str, key_path: list[str], value: Any, timestamp: float | None = None
    ) -> list[list[str]]:
        """IPC UpdateConfiguration: merge `value` at `key_path`, refusing stale timestamps."""
        ts = time.time() if timestamp is None else float(timestamp)
        key = (component, tuple(key_path))
        if ts < self._stamp.get(key, float("-inf")):
            raise StaleUpdate(
                f"Proposed timestamp is older than the config's latest modified timestamp "
                f"for {'/'.join(key_path) or '<root>'}"
            )
        old = self._cfg.setdefault(component, {})
        new = copy.deepcopy(old)
        if key_path:
            try:
                current = resolve(new, key_path)
            except KeyError:
                current = None
            merged = (
                deep_merge(current, value)
                if isinstance(current, dict) and isinstance(value, dict)
                else copy.deepcopy(value)
            )
            _set(new, key_path, merged)
        elif isinstance(value, dict):
            new = deep_merge(new, value)
        else:
            raise ValueError("valueToMerge at the root must be an object")
        self._stamp[key] = ts
        self._cfg[component] = new
        changes = changed_paths(old, new)
        self._notify(component, changes)
        return changes

    def subscribe(self, component: str, key_path: list[str], listener: Listener) -> Callable:
        entry = (component, tuple(key_path), listener)
        self._listeners.append(entry)

        def unsubscribe() -> None:
            if entry in self._listeners:
                self._listeners.remove(entry)

        return unsubscribe

    def _notify(self, component: str, changes: list[list[str]]) -> None:
        for comp, path, listener in list(self._listeners):
            if comp != component:
                continue
            n = len(path)
            for change in changes:
                if tuple(change[:n]) == path or tuple(path[: len(change)]) == tuple(change):
                    listener(component, change)
