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
