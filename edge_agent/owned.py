"""What a command may replace: only an output edgekit wrote itself, never the user's files.

Every command that writes checks its target here first and, when the answer is no, exits 2 with
a message naming the folder and why, before anything is touched. An output is edgekit's when a
record edgekit wrote accounts for every entry in it: a bundle's `manifest.json`, or the marker
file (`.edgekit-output.json`) that report and run folders get. A folder that is, or holds, one of
the command's own inputs, the current folder and every folder above it are never replaced.
"""

from __future__ import annotations

import json
import os
import re
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

from edge_agent.errors import BadInputError
from edge_agent.locking import LOCK_FILE

MARKER = ".edgekit-output.json"
MANIFEST = "manifest.json"
SIGNATURE = "manifest.sig"  # edge_agent.signing's detached signature beside the manifest
BUNDLE = "bundle"
# Hidden names our own atomic writes use (atomic.write_bytes, staging_dir, save_samples): a crash
# can leave one behind, and it is still ours.
_OUR_TEMP = re.compile(r"^\..+(\.tmp|\.tmp\.npz|\.partial|\.old-\d+)$")
_SHOWN = 5
# A marker lists every file below a complete folder up to this many (a bigger one: top level)
MAX_RECORDED_FILES = 200_000
_SQLITE_SIDECARS = ("-wal", "-shm", "-journal")

KIND_LABELS = {
    BUNDLE: "a model bundle",
    "bench-report": "an `edgekit bench` report folder",
    "simulate-run": "an `edgekit simulate` run folder",
    "batch-output": "an `edge-agent batch` output folder",
    "demo": "an `edgekit demo` folder",
}


def _label(kind: str | None) -> str:
    return KIND_LABELS.get(kind or "", f"an edgekit {kind} folder" if kind else "not edgekit's")


def is_our_temp(name: str) -> bool:
    return bool(_OUR_TEMP.match(name))


def absolute(path: str | Path) -> Path:
    """The path with symlinks and `..` resolved (it need not exist), for comparisons."""
    return Path(path).expanduser().resolve()


# -- what a folder is --------------------------------------------------------------------------
def _read_json(path: Path) -> Any:
    try:
        return json.loads(path.read_text("utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError):
        return None


def bundle_record(folder: Path) -> set[str] | None:
    """The names a bundle's manifest accounts for, or None when the folder is no bundle."""
    doc = _read_json(folder / MANIFEST)
    if not isinstance(doc, dict) or doc.get("schema_version") is None:
        return None
    files, variants = doc.get("files"), doc.get("variants")
    if not isinstance(files, dict) or not isinstance(variants, dict):
        return None
    names = {MANIFEST, SIGNATURE, LOCK_FILE, MARKER, *map(str, files)}
    names |= {str(v.get("file")) for v in variants.values() if isinstance(v, dict)}
    return names


def marker_record(folder: Path) -> tuple[str, set[str], set[str] | None] | None:
    """(kind, names, files) from the marker edgekit wrote in a report or run folder, or None.
    ``files``: every file (relative POSIX path) edgekit wrote below `folder`; None for a marker
    that lists top-level entries only (written before its run filled the folder)."""
    doc = _read_json(folder / MARKER)
    if not isinstance(doc, dict) or doc.get("tool") != "edgekit" or not doc.get("kind"):
        return None
    entries = doc.get("entries")
    if not isinstance(entries, list):
        return None
    files = doc.get("files")
    listed = {str(f) for f in files} if isinstance(files, list) else None
    return str(doc["kind"]), {MARKER, *map(str, entries)}, listed


def _tree_files(folder: Path) -> list[str]:
    """Relative POSIX paths of the files (and links) below `folder`, the marker left out."""
    found = []
    for root, dirs, files in os.walk(folder):
        base = Path(root).relative_to(folder)
        for name in files + [d for d in dirs if (Path(root) / d).is_symlink()]:
            rel = (base / name).as_posix()
            if rel != MARKER:
                found.append(rel)
    return found


def _ours_anyway(rel: str, recorded: set[str]) -> bool:
    """Files edgekit may add to its own folder after marking it: our temporaries and locks, and
    SQLite's journal files beside a database it recorded."""
    name = rel.rsplit("/", 1)[-1]
    if is_our_temp(name) or name == LOCK_FILE:
        return True
    return any(rel.endswith(s) and rel[: -len(s)] in recorded for s in _SQLITE_SIDECARS)


def write_marker(folder: str | Path, kind: str, also: Iterable[str] = ()) -> None:
    """Record that edgekit wrote `folder` and every entry in it now (and the names in `also`,
    that a run still to come will make there); call it when the folder is complete. A complete
    folder (no `also`) records every file below it too, so a user's file put in a subfolder
    later is seen as foreign, not deleted with the folder by the next run."""
    from edge_agent import atomic
    from edge_agent.contracts.manifest import utc_now

    folder = Path(folder)
    also = set(also)
    entries = sorted({p.name for p in folder.iterdir() if p.name != MARKER} | also)
    doc: dict[str, Any] = {"tool": "edgekit", "kind": kind, "created": utc_now()}
    doc["entries"] = entries
    if not also:
        files = _tree_files(folder)
        if len(files) <= MAX_RECORDED_FILES:
            doc["files"] = sorted(files)
    atomic.write_json(folder / MARKER, doc)


def owner(folder: Path) -> tuple[str | None, list[str]]:
    """(kind, foreign entries): what edgekit wrote this folder as (None: nothing we know) and the
    entries its record does not account for."""
    names = [p.name for p in folder.iterdir()]
    record = bundle_record(folder)
    kind: str | None = BUNDLE
    if record is None:
        marked = marker_record(folder)
        if marked is None:
            return None, sorted(names)
        kind, record, files = marked
        if files is not None:  # a complete folder: every file below it is accounted for
            top = {n for n in names if n not in record and not _ours_anyway(n, files)}
            deep = {f for f in _tree_files(folder) if f not in files and not _ours_anyway(f, files)}
            return kind, sorted(top | deep)
    return kind, sorted(n for n in names if n not in record and not is_our_temp(n))


def bundle_orphans(folder: str | Path, manifest: dict[str, Any]) -> list[str]:
    """Files in a bundle folder that its manifest does not list (a lost concurrent update, an
    interrupted run, or something put there by hand). Our lock file is not one."""
    listed = {MANIFEST, SIGNATURE, LOCK_FILE, *manifest.get("files", {})}
    listed |= {v.get("file") for v in manifest.get("variants", {}).values()}
    return sorted(p.name for p in Path(folder).iterdir() if p.name not in listed)


# -- the rules ---------------------------------------------------------------------------------
def _refuse(target: Path, why: str, hint: str, option: str) -> BadInputError:
    return BadInputError(f"{option} {target}: {why}; nothing was changed", hint=hint)


def _listed(names: list[str]) -> str:
    shown = ", ".join(names[:_SHOWN])
    return shown + (f" and {len(names) - _SHOWN} more" if len(names) > _SHOWN else "")


def check_parents(target: str | Path, option: str = "-o") -> None:
    """Refuse an output whose path runs through a file (`-o notes.txt/out`): making its folders
    would fail halfway with an OSError. The path is taken as written, as the command writes it."""
    shown = Path(target)
    for parent in shown.absolute().parents:  # nearest first; the first that exists decides
        if parent.is_dir():
            return
        if parent.exists() or parent.is_symlink():
            raise _refuse(
                shown,
                f"{parent} is {'a broken link' if not parent.exists() else 'a file'}, not a folder",
                "give a path whose folders are folders (or do not exist yet)",
                option,
            )


def check_location(
    target: str | Path, inputs: Iterable[str | Path | None] = (), option: str = "-o"
) -> None:
    """Refuse an output that is the current folder, a folder above it, or one that is or holds an
    input of the command (replacing it would delete the input)."""
    check_parents(target, option)
    shown, real = Path(target), absolute(target)
    cwd = Path.cwd().resolve()
    if real == cwd:
        raise _refuse(shown, "is the current folder", "give -o a new folder, e.g. -o out", option)
    if real in cwd.parents:
        raise _refuse(
            shown, "holds the current folder", "give -o a new folder, e.g. -o out", option
        )
    if real == Path.home().resolve():
        raise _refuse(shown, "is your home folder", "give -o a new folder", option)
    for item in inputs:
        if item is None:
            continue
        inp = absolute(item)
        if inp == real or real in inp.parents:
            raise _refuse(
                shown,
                f"{'is' if inp == real else 'holds'} this command's input {item}",
                "write the output to a folder of its own, e.g. -o out",
                option,
            )


def check_replace(
    target: str | Path,
    kinds: Iterable[str],
    inputs: Iterable[str | Path | None] = (),
    *,
    option: str = "-o",
    flag: str | None = None,
    flag_given: bool = True,
) -> bool:
    """May `target` become this command's output? True when it exists and is to be replaced
    (empty, or edgekit's own output of one of `kinds` with nothing foreign in it), False when it
    does not exist. Otherwise raise, naming the folder and why. With `flag`, replacing an
    existing non-empty output also needs that flag to have been given."""
    shown = Path(target)
    kinds = set(kinds)
    check_location(shown, inputs, option)
    if shown.is_symlink():
        raise _refuse(shown, "is a symbolic link", "give -o a real folder", option)
    if not shown.exists():
        return False
    if not shown.is_dir():
        raise _refuse(shown, "is a file, not a folder", "give -o a folder name", option)
    if not any(shown.iterdir()):
        return True
    kind, foreign = owner(shown)
    if kind not in kinds:
        what = " or ".join(sorted(_label(k) for k in kinds))
        found = (
            f"is {_label(kind)}"
            if kind
            else f"holds files edgekit did not write ({_listed(foreign)})"
        )
        raise _refuse(
            shown, f"{found}, not {what}", "choose another -o folder (a new one is made)", option
        )
    if foreign:
        raise _refuse(
            shown,
            f"is {_label(kind)} but also holds files edgekit did not write ({_listed(foreign)})",
            "move those files away or choose another -o folder",
            option,
        )
    if flag and not flag_given:
        raise _refuse(shown, "already exists", f"choose another -o folder or pass {flag}", option)
    return True


def check_file(
    target: str | Path,
    is_ours: Callable[[Path], bool],
    what: str,
    inputs: Iterable[str | Path | None] = (),
    option: str = "-o",
) -> None:
    """A single output file: it may replace only a file that edgekit wrote (`is_ours` says), and
    never one of the command's inputs nor go inside an input folder (a bundle)."""
    shown = Path(target)
    check_parents(shown, option)
    real = absolute(shown)
    for item in inputs:
        if item is None:
            continue
        inp = absolute(item)
        if inp == real or inp in real.parents:
            raise _refuse(
                shown,
                f"is this command's input {item}"
                if inp == real
                else f"lies inside this command's input {item}",
                "write the output to a new file elsewhere",
                option,
            )
    if shown.is_symlink():
        raise _refuse(shown, "is a symbolic link", "give a new file name", option)
    if shown.is_dir():
        raise _refuse(shown, "is a folder", f"give a file name for {what}", option)
    if shown.exists() and not is_ours(shown):
        raise _refuse(
            shown,
            f"exists and is not {what} that edgekit wrote",
            "choose another file name (edgekit replaces only files it wrote)",
            option,
        )


def json_kind_is(kind: str) -> Callable[[Path], bool]:
    """`is_ours` for a JSON file edgekit wrote with {"kind": kind}."""

    def check(path: Path) -> bool:
        doc = _read_json(path)
        return isinstance(doc, dict) and doc.get("kind") == kind

    return check
