"""The fleet collector: device telemetry in (MQTT 5 shared subscriptions, or the simulator's
in-process cloud), SQLite out, then lab-against-device checks, fleet percentiles from merged
histograms, drift across devices, alert rules with actions, and the fleet report.

Entry points: ``Collector.open(db, ...)`` (+ ``MqttSource`` for a broker, ``collector.listener``
for the simulator), ``summary.fleet_summary(store)``, ``report.write_html``,
``tune_source.bench_records(db, target)`` for `edgekit tune --from-fleet`.
"""

from edgekit.toolkit.fleet.collector import Collector
from edgekit.toolkit.fleet.store import Gap, SqliteStore

__all__ = ["Collector", "Gap", "SqliteStore"]
