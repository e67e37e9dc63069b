"""The run store (SQLite): every run with its pipeline file digest, inputs, library versions,
each stage's key, result and timing, the bundle and component it made, where it was deployed,
and the alert that triggered it. It is the experiment log and the model registry view.
"""

from __future__ import annotations

import builtins
import json
import secrets
import sqlite3
import threading
import time
from pathlib import Path
from typing import Any

from edge_agent.errors import BadInputError
from edge_agent.sqlite_schema import open_store
from edgekit.toolkit.greengrass import versions

SCHEMA = """
CREATE TABLE IF NOT EXISTS runs (
  id TEXT PRIMARY KEY, pipeline TEXT, pipeline_sha256 TEXT, name TEXT, started REAL,
  finished REAL, status TEXT, trigger TEXT, alert_id INTEGER, alert TEXT, overrides TEXT,
  inputs TEXT, versions TEXT, bundle TEXT, component TEXT, version TEXT, error TEXT,
  summary TEXT, dry_run INTEGER, forced TEXT);
CREATE INDEX IF NOT EXISTS runs_started ON runs (started);
CREATE TABLE IF NOT EXISTS stages (
  run_id TEXT NOT NULL, idx INTEGER NOT NULL, name TEXT NOT NULL, key TEXT, status TEXT,
  started REAL, seconds REAL, result TEXT, error TEXT, PRIMARY KEY (run_id, idx));
"""

# PRAGMA user_version n is reached by MIGRATIONS[n-1] (edge_agent.sqlite_schema); append a
# migration for every schema change, never edit a released one.
MIGRATIONS: tuple[str, ...] = (SCHEMA,)

RUNNING, OK, FAILED, STOPPED = "running", "ok", "failed", "stopped"


def _j(obj: Any) -> str | None:
    return None if obj is None else json.dumps(obj, default=str, sort_keys=True)


class RunStore:
    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        if self.path.is_dir():  # sqlite's own answer is "unable to open database file"
            raise BadInputError(
                f"{self.path} is a folder, not an edgekit run store",
                hint="pass a file name as `store` (a new file is created), e.g. runs.db",
            )
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._lock = threading.Lock()
        self.db = sqlite3.connect(str(self.path), check_same_thread=False, timeout=30)
        self.db.row_factory = sqlite3.Row
        open_store(
            self.db,
            MIGRATIONS,
            pragmas=("PRAGMA journal_mode=WAL",),
            what="run store",
            path=self.path,
            option="--store",
            foreign_hint="pass another `store` (a new file is created)",
        )

    @classmethod
    def open_existing(cls, path: str | Path) -> RunStore:
        if not Path(path).is_file():
            raise BadInputError(
                f"no run store at {path}",
                hint="run a pipeline first (`edgekit run pipeline.yaml`) or pass `store`",
            )
        return cls(path)

    def close(self) -> None:
        self.db.close()

    def _exec(self, sql: str, params: tuple = ()) -> None:
        with self._lock, self.db:
            self.db.execute(sql, params)

    # -- writing -------------------------------------------------------------------------------
    def begin(
        self,
        *,
        pipeline: str,
        digest: str,
        name: str,
        inputs: dict[str, Any],
        versions: dict[str, Any],
        overrides: dict[str, Any] | None = None,
        alert: dict[str, Any] | None = None,
        dry_run: bool = False,
        forced: list[str] | None = None,
    ) -> str:
        run_id = time.strftime("%Y%m%d-%H%M%S", time.gmtime()) + "-" + secrets.token_hex(3)
        self._exec(
            "INSERT INTO runs (id, pipeline, pipeline_sha256, name, started, status, trigger, "
            "alert_id, alert, overrides, inputs, versions, dry_run, forced) "
            "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            (
                run_id,
                pipeline,
                digest,
                name,
                time.time(),
                RUNNING,
                "alert" if alert else "manual",
                alert.get("id") if alert else None,
                _j(alert),
                _j(overrides or {}),
                _j(inputs),
                _j(versions),
                int(dry_run),
                _j(forced or []),
            ),
        )
        return run_id

    def stage(
        self,
        run_id: str,
        idx: int,
        name: str,
        key: str | None,
        status: str,
        started: float,
        seconds: float,
        result: dict[str, Any] | None = None,
        error: str | None = None,
    ) -> None:
        self._exec(
            "INSERT OR REPLACE INTO stages VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
            (run_id, idx, name, key, status, started, seconds, _j(result), error),
        )

    def finish(
        self,
        run_id: str,
        status: str,
        *,
        bundle: str | None = None,
        component: str | None = None,
        version: str | None = None,
        error: str | None = None,
        summary: dict[str, Any] | None = None,
    ) -> None:
        self._exec(
            "UPDATE runs SET finished = ?, status = ?, bundle = ?, component = ?, version = ?, "
            "error = ?, summary = ? WHERE id = ?",
            (time.time(), status, bundle, component, version, error, _j(summary), run_id),
        )

    # -- reading -------------------------------------------------------------------------------
    def _rows(self, sql: str, params: tuple = ()) -> list[dict[str, Any]]:
        with self._lock:
            rows = self.db.execute(sql, params).fetchall()
        out = []
        for r in rows:
            d = dict(r)
            for k in ("alert", "overrides", "inputs", "versions", "summary", "result", "forced"):
                if isinstance(d.get(k), str):
                    d[k] = json.loads(d[k])
            out.append(d)
        return out

    def list(self, limit: int = 50) -> list[dict[str, Any]]:
        return self._rows("SELECT * FROM runs ORDER BY started DESC LIMIT ?", (limit,))

    def get(self, run_id: str) -> dict[str, Any]:
        """A run by id or unique id prefix, with its stages."""
        rows = self._rows("SELECT * FROM runs WHERE id = ?", (run_id,)) or self._rows(
            "SELECT * FROM runs WHERE id LIKE ? ORDER BY started", (run_id + "%",)
        )
        if not rows:
            raise BadInputError(f"no run {run_id!r} in {self.path}", hint="see `edgekit runs list`")
        if len(rows) > 1:
            raise BadInputError(
                f"run id prefix {run_id!r} matches {len(rows)} runs", hint="give more characters"
            )
        run = rows[0]
        run["stages"] = self._rows(
            "SELECT * FROM stages WHERE run_id = ? ORDER BY idx", (run["id"],)
        )
        return run

    def deployed(self, component: str) -> dict[str, Any] | None:
        """The latest real (not dry-run) deployment of `component`: its run, version, bundle."""
        for s in self._rows(
            "SELECT s.run_id, s.result FROM stages s JOIN runs r ON r.id = s.run_id "
            "WHERE s.name = 'deploy' AND s.status IN ('ran', 'cached') ORDER BY r.started DESC"
        ):
            d = (s.get("result") or {}).get("deployed") or {}
            if d.get("component") == component and not d.get("dry_run"):
                return {"run_id": s["run_id"], **d}
        return None

    def last_version(self, component: str) -> str | None:
        packaged = [
            (s.get("result") or {}).get("version")
            for s in self._rows(
                "SELECT result FROM stages WHERE name = 'package' AND status = 'ran'"
            )
            if (s.get("result") or {}).get("component") == component
        ]
        return versions.latest(v for v in packaged if v)

    def last_triggered(self, started_only: bool = False) -> dict[str, Any] | None:
        """The latest alert-triggered run (`started_only`: not counting skipped attempts)."""
        skip = " AND status != 'skipped'" if started_only else ""
        rows = self._rows(
            f"SELECT * FROM runs WHERE trigger = 'alert'{skip} ORDER BY started DESC LIMIT 1"
        )
        return rows[0] if rows else None

    def for_alert(self, alert_id: int) -> builtins.list[dict[str, Any]]:
        # `list` here is the method above, so the builtin is named in full
        return self._rows("SELECT * FROM runs WHERE alert_id = ? ORDER BY started", (alert_id,))
