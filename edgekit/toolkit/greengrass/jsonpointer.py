"""RFC 6901 JSON Pointers, the one implementation behind `{configuration:/a/b}` in recipes,
the deployment's RESET list and the emulator's configuration store.

`~1` is `/` and `~0` is `~` (decoded in that order, as the RFC requires); an array index is
`0` or a number without a leading zero, as Jackson's JsonPointer (the nucleus) reads it.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from typing import Any

_INDEX = re.compile(r"0|[1-9][0-9]*")


def split(pointer: str) -> list[str]:
    """`/a~1b/0` -> ["a/b", "0"]; `""` (the whole document) -> []."""
    if pointer == "":
        return []
    if not isinstance(pointer, str) or not pointer.startswith("/"):
        raise ValueError(f"a JSON pointer starts with '/': {pointer!r}")
    return [t.replace("~1", "/").replace("~0", "~") for t in pointer[1:].split("/")]


def is_index(token: str) -> bool:
    """Whether a token may address an array element (Jackson's JsonPointer.mayMatchElement)."""
    return bool(_INDEX.fullmatch(token))


def escape(token: object) -> str:
    return str(token).replace("~", "~0").replace("/", "~1")


def join(tokens: Iterable[object]) -> str:
    return "".join("/" + escape(t) for t in tokens)


def resolve(doc: Any, tokens: list[str]) -> Any:
    """The value at a token path; KeyError naming the pointer when it is absent."""
    node = doc
    for token in tokens:
        if isinstance(node, dict) and token in node:
            node = node[token]
        elif isinstance(node, list) and _INDEX.fullmatch(token) and int(token) < len(node):
            node = node[int(token)]
        else:
            raise KeyError(join(tokens))
    return node


def lookup(doc: Any, pointer: str) -> tuple[bool, Any]:
    """(found, value); a malformed pointer is simply not found."""
    try:
        return True, resolve(doc, split(pointer))
    except (KeyError, ValueError):
        return False, None
