"""The collector inside `edgekit simulate`: the in-process cloud hands every device message to
it (no broker), it writes ``<run>/fleet.db``, finds the model bundles in the devices' unpacked
artifacts (lab records and drift baselines), and imports the deployment history at the end."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from edgekit.toolkit.fleet.collector import Collector
from edgekit.toolkit.fleet.rules import RulesConfig
from edgekit.toolkit.fleet.summary import import_run_dir

DB_NAME = "fleet.db"


def attach_collector(cloud: Any, run_dir: Path, config: RulesConfig | None = None) -> Collector:
    """Start a collector on ``run_dir/fleet.db`` and register it as a listener of ``cloud``
    (anything with ``add_listener((thing, topic, payload))``, e.g. InProcessCloud)."""
    collector = Collector.open(
        Path(run_dir) / DB_NAME,
        search_roots=[Path(run_dir) / "devices"],
        config=config,
        publish=getattr(cloud, "inject", None) and _injector(cloud),
    ).start()
    cloud.add_listener(collector.listener)
    return collector


def _injector(cloud: Any):
    """Topic actions in a simulation publish into the in-process cloud (cloud → devices)."""

    def publish(topic: str, payload: bytes) -> None:
        cloud.inject(topic, payload)

    return publish


def finish_collector(collector: Collector, run_dir: Path) -> dict[str, Any]:
    """Store what is queued, import deployments, run the fleet rules once more, close."""
    collector.flush(30)
    deployments = import_run_dir(collector.store, run_dir)
    collector.evaluate()
    stats = collector.stats.to_dict()
    lost = sum(g.missing for g in collector.store.gaps())
    collector.close()
    return {"db": str(Path(run_dir) / DB_NAME), "deployments": deployments, "lost": lost, **stats}
