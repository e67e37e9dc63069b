"""Alert actions from the registry, routed by rules: a command writes a file, routes match by
glob, bad specs fail clearly."""

from __future__ import annotations

import json
import sys

import pytest

from edge_agent.errors import BadInputError
from edgekit.toolkit.fleet.actions import ActionContext, AlertRouter, parse_routes
from edgekit.toolkit.fleet.collector import Collector
from edgekit.toolkit.fleet.rules import RulesConfig
from tests.toolkit.fleet.fleet_helpers import encoded

WRITER = (
    "import json, sys, os; alert = json.load(sys.stdin); "
    "open(sys.argv[1], 'a').write(json.dumps([sys.argv[2], alert['rule'], "
    "json.loads(os.environ['EDGEKIT_ALERT'])['subject']]) + '\\n')"
)


def _alert(**kw):
    return {
        "id": "a",
        "rule": "drift",
        "state": "firing",
        "severity": "warning",
        "message": "m",
        "subject": "f03",
        "held": {"m": 3, "n": 5, "hits": 3},
        **kw,
    }


def test_drift_alert_runs_the_retraining_command(tmp_path, store_at):
    out = tmp_path / "retrain.jsonl"
    config = RulesConfig.from_dict(
        {
            "routes": [
                {
                    "match": {"rule": "drift"},
                    "actions": [
                        {
                            "kind": "command",
                            "command": [sys.executable, "-c", WRITER, str(out), "{thing}"],
                        }
                    ],
                },
                {"match": {"severity": "critical"}, "actions": [{"kind": "log"}]},
            ]
        }
    )
    c = Collector.open(store_at, config=config).start()
    for thing, seq, alert in (("pi-1", 1, _alert()), ("pi-2", 1, _alert(rule="latency"))):
        c.submit(*encoded("alerts", thing, seq, {"alerts": [alert]}))
    assert c.flush(30)
    lines = [json.loads(x) for x in out.read_text().splitlines()]
    assert lines == [["pi-1", "drift", "f03"]]  # the latency alert matched no command route
    actions = c.store.query("SELECT * FROM actions")
    assert len(actions) == 1 and actions[0]["ok"] == 1 and "exited 0" in actions[0]["detail"]
    c.close()


def test_failing_command_is_recorded_not_raised(tmp_path):
    routes = parse_routes(
        [
            {
                "actions": [
                    {
                        "kind": "command",
                        "command": [sys.executable, "-c", "import sys; sys.exit(3)"],
                    },
                    {"kind": "command", "command": ["/no/such/program"]},
                    {"kind": "topic", "topic": "x/y"},  # no connection to publish on
                ]
            }
        ],
        ActionContext(),
    )
    router = AlertRouter(routes)
    results = router.run_now(_alert())
    assert [r["ok"] for r in results] == [False, False, False]
    assert "exited 3" in results[0]["detail"]
    assert "not found" in results[1]["detail"]
    assert "no MQTT connection" in results[2]["detail"]


def test_resolved_alerts_do_not_trigger_by_default():
    router = AlertRouter(parse_routes([{"actions": [{"kind": "log"}]}], ActionContext()))
    assert router.run_now(_alert(state="resolved")) == []
    assert len(router.run_now(_alert())) == 1


@pytest.mark.parametrize(
    ("doc", "words"),
    [
        ({"routes": [{"actions": [{"kind": "email"}]}]}, "unknown alert action kind 'email'"),
        ({"routes": [{"match": {"colour": "red"}, "actions": [{"kind": "log"}]}]}, "colour"),
        ({"routes": [{"actions": [{"kind": "topic", "topic": "a/+"}]}]}, "without wildcards"),
        ({"routes": [{"match": {}}]}, "no actions"),
        ({"lab_regression": {"threshold": "lots"}}, "not a number"),
        ({"alarms": []}, "unknown keys"),
    ],
)
def test_bad_rules_fail_clearly(doc, words):
    with pytest.raises(BadInputError, match=words):
        RulesConfig.from_dict(doc).build_routes(ActionContext())


def test_rules_file_yaml(tmp_path):
    path = tmp_path / "rules.yaml"
    path.write_text("lab_regression: {threshold: 0.5}\ntargets: {'pi-*': rpi4}\n")
    cfg = RulesConfig.load(path)
    assert cfg.lab_threshold == 0.5 and cfg.target_for("pi-9", None) == "rpi4"
    assert cfg.target_for("pi-9", "rpi5") == "rpi5"
    with pytest.raises(BadInputError, match="no such file"):
        RulesConfig.load(tmp_path / "missing.yaml")
