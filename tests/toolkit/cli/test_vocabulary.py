"""One vocabulary: walk every edgekit command (typer → click introspection) and check that the
shared options carry one name, one help text and one unit parser everywhere."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Iterator
from typing import Any

import pytest
import typer
from typer.models import OptionInfo
from typer.testing import CliRunner

from edgekit.toolkit.cli import app
from edgekit.toolkit.cli.flagmap import flags_of, to_flags
from edgekit.toolkit.cli.options import (
    DURATION_PARAMS,
    EXIT_CODES,
    RATE_PARAMS,
    SHARED,
    parse_duration,
    parse_rate,
)

runner = CliRunner()


def _commands(cmd: Any, path: tuple[str, ...] = ()) -> Iterator[tuple[tuple[str, ...], Any]]:
    yield path, cmd
    for name, sub in getattr(cmd, "commands", {}).items():
        yield from _commands(sub, (*path, name))


BY_FLAG = {max(s.opts, key=len): s for s in SHARED.values()}
COMMANDS = list(_commands(typer.main.get_command(app)))


def _functions(t: typer.Typer) -> Iterator[Any]:
    """The Python functions behind every command and group callback."""
    if t.registered_callback is not None and t.registered_callback.callback is not None:
        yield t.registered_callback.callback
    for command in t.registered_commands:
        yield command.callback
    for group in t.registered_groups:
        if group.typer_instance is not None:
            yield from _functions(group.typer_instance)


def _options(func: Any) -> Iterator[tuple[str, OptionInfo]]:
    import inspect

    for name, param in inspect.signature(inspect.unwrap(func)).parameters.items():
        if isinstance(param.default, OptionInfo):
            yield name, param.default


def test_the_walk_finds_every_command_group():
    paths = {" ".join(p) for p, _ in COMMANDS}
    assert {
        "export",
        "quantize",
        "bench",
        "bench compare",
        "fleet report",
        "simulate bench",
    } <= paths
    assert len(paths) > 20


@pytest.mark.parametrize("path,cmd", COMMANDS, ids=[" ".join(p) or "edgekit" for p, _ in COMMANDS])
def test_shared_options_have_one_name_and_one_help(path, cmd):
    for param in getattr(cmd, "params", []):
        if param.param_type_name != "option" or getattr(param, "hidden", False):
            continue
        visible = [o for o in param.opts if o.startswith("-")]
        assert not {"--replace", "--force", "--variants"} & set(visible), (path, visible)
        shared = BY_FLAG.get(max(visible, key=len)) if visible else None
        if shared is None:
            continue
        assert sorted(visible) == sorted(shared.opts), (path, param.name, visible)
        assert (param.help or "").startswith(shared.help_prefix), (path, param.name, param.help)


@pytest.mark.parametrize("path,cmd", COMMANDS, ids=[" ".join(p) or "edgekit" for p, _ in COMMANDS])
def test_every_help_takes_dash_h_and_ends_with_exit_codes(path, cmd):
    res = runner.invoke(app, [*path, "-h"], terminal_width=200)
    assert res.exit_code == 0, res.output
    text = " ".join(res.output.split())
    assert text.rstrip(" ─╯│").endswith(" ".join(EXIT_CODES.split())), text[-300:]


def test_durations_and_rates_go_through_one_parser():
    seen = set()
    for func in _functions(app):
        for name, info in _options(func):
            if (info.help or "").startswith("Deprecated"):
                continue
            if name in DURATION_PARAMS:
                seen.add(name)
                assert getattr(info.parser, "kind", None) == "duration", (func.__name__, name)
                assert "(a duration: 500ms, 60s, 2m)" in info.help, (func.__name__, info.help)
            if name in RATE_PARAMS:
                seen.add(name)
                assert getattr(info.parser, "kind", None) == "rate", (func.__name__, name)
                assert "per second" in info.help, (func.__name__, info.help)
    assert {"duration", "time_budget", "drift_after", "load", "qps", "window"} <= seen


@pytest.mark.parametrize(
    "text,seconds",
    [("500ms", 0.5), ("60s", 60), ("2m", 120), ("1h", 3600), ("90", 90), ("1.5s", 1.5)],
)
def test_duration_units(text, seconds):
    assert parse_duration(text) == pytest.approx(seconds)


def test_a_duration_is_not_a_rate():
    assert parse_rate("50/s") == 50 and parse_rate("20") == 20
    with pytest.raises(typer.BadParameter, match="not a rate"):
        parse_rate("500ms")
    with pytest.raises(typer.BadParameter, match="not a duration"):
        parse_duration("5 parsecs")


def test_load_given_as_a_time_is_refused_with_exit_2(tmp_path):
    res = runner.invoke(app, ["simulate", "--component", str(tmp_path), "--load", "500ms"])
    assert res.exit_code == 2
    assert "--load" in res.output and "not a rate" in res.output


def test_version_and_short_help_from_another_folder(tmp_path):
    exe = [sys.executable, "-c", "from edgekit.toolkit.cli import main; main()"]
    res = subprocess.run([*exe, "--version"], cwd=tmp_path, capture_output=True, text=True)
    assert res.returncode == 0 and res.stdout.startswith("edgekit ")
    res = subprocess.run([*exe, "-h"], cwd=tmp_path, capture_output=True, text=True)
    assert res.returncode == 0 and "quantize" in res.stdout and "Exit codes" in res.stdout


def test_bench_bundle_runs_the_default_subcommand(tmp_path):
    """`edgekit bench BUNDLE` is `edgekit bench run BUNDLE`, as the docs teach."""
    res = runner.invoke(app, ["bench", str(tmp_path / "no-bundle")])
    short = runner.invoke(app, ["bench", "run", str(tmp_path / "no-bundle")])
    assert res.exit_code == short.exit_code == 2
    assert "No such command" not in res.output and "no-bundle" in res.output


def test_renamed_options_still_work_hidden():
    """The old spellings are hidden aliases: absent from help, accepted, and noted."""
    res = runner.invoke(app, ["quantize", "-h"], terminal_width=200)
    assert "--overwrite" in res.output and "--replace" not in res.output
    res = runner.invoke(app, ["tune", "-h"], terminal_width=200)
    assert "--latency-bound" in res.output and "--latency-budget" not in res.output
    res = runner.invoke(app, ["run", "-h"], terminal_width=200)
    assert "--rerun" in res.output and "--force" not in res.output


def test_library_parameter_names_become_this_commands_flags():
    from edgekit.toolkit.cli.quantize_cmd import quantize_command

    flags = flags_of(quantize_command.__wrapped__)
    text = "choose another `name` or pass `replace`; e.g. `max_drop` 0.01, drop `format` x"
    assert to_flags(text, flags) == (
        "choose another --name or pass --overwrite; e.g. --max-drop 0.01, drop --format x"
    )
    assert to_flags("pass --replace", flags) == "pass --overwrite"  # a renamed flag
    assert to_flags("`not_an_option` stays", flags) == "`not_an_option` stays"


# Library modules whose errors name parameters (`max_drop`) instead of flags.
PARAMETER_NAMING = [
    "edgekit/toolkit/quantize/pipeline.py",
    "edgekit/toolkit/quantize/search.py",
    "edgekit/toolkit/quantize/calibration.py",
    "edgekit/toolkit/quantize/feeds.py",
    "edgekit/toolkit/quantize/failures.py",
    "edgekit/toolkit/tune/tuner.py",
    "edgekit/toolkit/tune/objective.py",
    "edgekit/toolkit/tune/device.py",
    "edgekit/toolkit/evaluate/runner.py",
    "edgekit/toolkit/bench/engine.py",
    "edgekit/toolkit/bench/cost.py",
    "edgekit/toolkit/greengrass/package.py",
    "edgekit/toolkit/greengrass/targets.py",
    "edgekit/toolkit/greengrass/wheelhouse.py",
    "edgekit/toolkit/greengrass/deploy.py",
    "edgekit/toolkit/greengrass/publish.py",
    "edgekit/toolkit/simulator/runner.py",
    "edgekit/toolkit/simulator/ports.py",
    "edgekit/toolkit/tune/search.py",
    "edgekit/toolkit/targets/loader.py",
    "edgekit/toolkit/greengrass/aws.py",
    "edgekit/toolkit/evaluate/gate.py",
    "edgekit/toolkit/simulator/mqtt_bridge.py",
    "edgekit/toolkit/simulator/load.py",
    "edgekit/toolkit/simulator/bench.py",
    "edgekit/toolkit/pipeline/starter.py",
    "edgekit/toolkit/pipeline/store.py",
    "edgekit/toolkit/greengrass/recipe_io.py",
    "edgekit/toolkit/scoring/predictions.py",
    "edgekit/toolkit/fleet/rules.py",
    "edgekit/toolkit/fleet/mqtt_source.py",
    "edgekit/toolkit/fleet/sqs_source.py",
    "edgekit/toolkit/fleet/pg_store.py",
    "edgekit/toolkit/fleet/store.py",
    "edgekit/toolkit/fleet/aws_rule.py",
    "edgekit/toolkit/bench/compare.py",
    "edgekit/toolkit/bench/loadgen.py",
    "edgekit/export/builder.py",
    "edgekit/export/data.py",
    "edgekit/export/sources.py",
    "edgekit/export/exporters/torch_io.py",
    "edgekit/export/exporters/sklearn_exporter.py",
    "edgekit/export/exporters/torch_exporter.py",
    # the agent: edge_agent/cli.py maps these to its own flags
    "edge_agent/telemetry/transports/mqtt.py",
    "edge_agent/config.py",
    "edge_agent/agent.py",
    "edge_agent/serving/model.py",
    "edge_agent/contracts/bundle.py",
]


def test_every_parameter_a_library_error_names_is_some_commands_flag():
    import re
    from pathlib import Path

    from edgekit.toolkit.cli.flagmap import LIBRARY_NAMES

    known: set[str] = set()
    for func in _functions(app):
        known |= {n for n in flags_of(func) if not n.startswith("--")}
    from edge_agent.cli import _flags

    agent = set(_flags("serve")) | set(_flags("batch"))  # edge_agent/cli.py maps these
    root = Path(__file__).resolve().parents[3]
    unknown = []
    for rel in PARAMETER_NAMING:
        for number, line in enumerate((root / rel).read_text().splitlines(), 1):
            if "Error(" in line or "hint=" in line:
                for name in re.findall(r"`([a-z_][a-z0-9_]*)`", line):
                    if LIBRARY_NAMES.get(name, name) not in known and not (
                        rel.startswith("edge_agent/") and name in agent
                    ):
                        unknown.append(f"{rel}:{number}: `{name}`")
    assert not unknown, unknown


def test_an_old_spelling_is_taken_when_the_new_one_stays_at_its_default():
    from edgekit.toolkit.cli.options import merged

    assert merged("all", "fp32", "--variants", "--variant", "all") == "fp32"
    assert merged("int8", None, "--variants", "--variant", "all") == "int8"
    assert merged(False, True, "--replace", "--overwrite") is True
    assert merged(["a"], ["b"], "--force", "--rerun") == ["a", "b"]


def test_no_other_library_error_backticks_a_name_the_cli_would_turn_into_a_flag():
    """Backticks in an error mean "a parameter" only in the modules listed above; elsewhere a
    backticked word that is also some command's parameter (a YAML field `name`, say) would be
    rewritten into a flag the user never typed."""
    import re
    from pathlib import Path

    known: set[str] = set()
    for func in _functions(app):
        known |= {n for n in flags_of(func) if not n.startswith("--")}
    root = Path(__file__).resolve().parents[3]
    clashes = []
    for package in ("edgekit/toolkit", "edgekit/export", "edge_agent"):
        for path in sorted((root / package).rglob("*.py")):
            rel = path.relative_to(root).as_posix()
            if rel.startswith("edgekit/toolkit/cli/") or rel in PARAMETER_NAMING:
                continue
            for number, line in enumerate(path.read_text().splitlines(), 1):
                if "Error(" in line or "hint=" in line:
                    clashes += [
                        f"{rel}:{number}: `{n}`"
                        for n in re.findall(r"`([a-z_][a-z0-9_]*)`", line)
                        if n in known
                    ]
    assert not clashes, clashes


def test_fleet_and_export_errors_reach_the_user_as_flags(tmp_path, monkeypatch):
    """fleet, export and pipeline modules name parameters (`rules`, `data`); the CLI shows the
    flags the user typed."""
    from edge_agent.errors import BadInputError
    from edgekit.toolkit.fleet.rules import RulesConfig

    with pytest.raises(BadInputError) as info:
        RulesConfig.load(tmp_path / "nope.yaml")
    assert "`rules`" in str(info.value) and "--rules" not in str(info.value)
    monkeypatch.chdir(tmp_path)
    res = CliRunner().invoke(app, ["fleet", "report", "--db", "f.db", "--rules", "nope.yaml"])
    assert res.exit_code == 2 and "--rules nope.yaml: no such file" in res.output, res.output
    assert "`" not in res.output
    (tmp_path / "m.skops").write_bytes(b"x")
    res = CliRunner().invoke(app, ["export", "m.skops", "--data", "nope.csv", "-o", "b"])
    assert res.exit_code == 2 and "--data" in res.output and "`data`" not in res.output
