"""The agent's configuration: booleans are read strictly (a typo is an error, not False), and the
outbox's default place follows the transport and the state folder, never the current folder."""

from __future__ import annotations

from pathlib import Path

import pytest

from edge_agent.cli import main
from edge_agent.config import AgentConfig, outbox_path, state_dir
from edge_agent.errors import BadInputError


@pytest.mark.parametrize(
    ("given", "expected"),
    [
        ("true", True),
        ("TRUE", True),
        ("yes", True),
        ("on", True),
        ("1", True),
        (True, True),
        (1, True),
        ("false", False),
        ("No", False),
        ("off", False),
        ("0", False),
        (False, False),
        (0, False),
    ],
)
def test_booleans_in_every_usual_spelling(given, expected):
    assert AgentConfig().updated({"reject_nan": given}).reject_nan is expected


@pytest.mark.parametrize("given", ["ture", "flase", "2", 2, "enabled", [], {}])
def test_an_unknown_boolean_is_refused_naming_the_key(given):
    with pytest.raises(BadInputError, match="rejectNan=.* is not a boolean"):
        AgentConfig().updated({"rejectNan": given})  # camelCase, as Greengrass may send it


def test_a_typo_in_a_config_file_exits_2_with_a_clear_message(tmp_path, capsys):
    cfg = tmp_path / "agent.json"
    cfg.write_text('{"reject_inf": "ture"}')
    assert main(["serve", "--config", str(cfg), "--bundle", str(tmp_path)]) == 2
    err = capsys.readouterr().err
    assert "reject_inf='ture' is not a boolean" in err and "Traceback" not in err


def test_outbox_place(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    env = {"XDG_STATE_HOME": str(tmp_path / "xdg")}
    cfg = AgentConfig(thing="pi-7")
    assert outbox_path(cfg, "none", env) is None, "no transport: no file"
    assert (
        outbox_path(cfg, "mqtt", env) == tmp_path / "xdg" / "edge-agent" / "pi-7" / "outbox.sqlite"
    )
    assert state_dir(cfg, {"EDGE_AGENT_STATE_DIR": "st"}) == tmp_path / "st"
    assert state_dir(cfg.updated({"state_dir": "mine"}), env) == tmp_path / "mine"
    gg = {"SVCUID": "x", "AWS_GG_NUCLEUS_DOMAIN_SOCKET_FILEPATH_FOR_COMPONENT": "/s"}
    assert state_dir(cfg, gg) == Path.cwd(), "Greengrass starts a component in its work folder"
    explicit = cfg.updated({"outbox": "rel/o.sqlite"})
    assert outbox_path(explicit, "none", env) == tmp_path / "rel" / "o.sqlite"


@pytest.mark.parametrize(
    "window, why",
    [
        (1e-9, "window_s must be within 0.1..604800 s"),  # closed windows in a busy loop
        (1e308, "window_s must be within 0.1..604800 s"),  # overflowed the window timer
        (float("nan"), "windowS=nan is not a valid float"),  # passed `<= 0`, then spun
        ("inf", "windowS='inf' is not a valid float"),
    ],
)
def test_a_live_window_the_timer_cannot_keep_is_refused(window, why):
    """`config` commands and Greengrass configuration set the window live: NaN and a
    nanosecond made the window loop spin (a metrics message each turn), 1e308 ended the window
    thread with an OverflowError, silently (found by tryhostile)."""
    with pytest.raises(BadInputError, match=why.replace("(", r"\(").replace(".", r"\.")):
        AgentConfig().updated({"windowS": window}, live_only=True)
    assert AgentConfig().updated({"windowS": 0.2}, live_only=True).window_s == 0.2
