"""Reading NumPy files that someone else wrote, without ever unpickling.

Loading with pickle allowed runs whatever code a pickled object array carries, so every array
file (a bundle's samples, `--data` files) is read here with pickle off; an object array is
refused with a message that says how to save the data instead.
"""

from __future__ import annotations

import zipfile
from pathlib import Path

import numpy as np

from edge_agent.errors import BadInputError

_HINT = "save plain numeric or string arrays (np.savez with no dtype=object); pickled arrays are never loaded"


def load_npz(path: str | Path, what: str = "array file") -> dict[str, np.ndarray]:
    """Every array of an .npz file, read with pickle disabled."""
    path = Path(path)
    _check_magic(path, what)
    try:
        loaded = np.load(path, allow_pickle=False)
        if isinstance(loaded, np.ndarray):  # an .npy file
            return {"arr_0": loaded}
        with loaded:
            return {key: loaded[key] for key in loaded.files}
    except ValueError as exc:
        if "pickle" in str(exc) or "Object arrays" in str(exc):
            raise BadInputError(
                f"{what} {path} holds pickled data (an object array or a pickle), which only "
                "loads by unpickling, and that could run any code: refused",
                hint=_HINT,
            ) from None
        raise BadInputError(f"cannot read {what} {path}: {exc}", hint=_HINT) from None
    except (OSError, EOFError, zipfile.BadZipFile) as exc:
        raise BadInputError(f"cannot read {what} {path}: {exc}") from None


_MAGIC = (b"PK\x03\x04", b"PK\x05\x06", b"\x93NUMPY")  # a zip (.npz, empty .npz) or an .npy


def _check_magic(path: Path, what: str) -> None:
    """NumPy takes any other file for a pickle ("holds pickled data" for a CSV or a text file):
    say what the file is not, and keep the pickle message for pickles."""
    try:
        with open(path, "rb") as fh:
            head = fh.read(8)
    except OSError as exc:
        raise BadInputError(f"cannot read {what} {path}: {exc.strerror or exc}") from None
    if head.startswith(_MAGIC) or head[:1] == b"\x80":  # \x80: pickle's PROTO opcode
        return
    raise BadInputError(
        f"{what} {path} is not a NumPy .npz or .npy file (its first bytes are {head!r})",
        hint="save the arrays with np.savez (or np.save) and pass that file",
    )
