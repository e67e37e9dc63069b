"""``edge-agent batch`` and ``python -m edge_agent``: files and folders in, outputs out, exit codes."""

from __future__ import annotations

import csv
import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from agent_helpers import sample_feeds

from edge_agent import cli
from edge_agent.contracts.bundle import Bundle

ROOT = Path(__file__).resolve().parents[2]


def test_batch_file_to_npz_matches_stored_outputs(cnn_bundle, tmp_path, capsys):
    samples = Bundle.open(cnn_bundle).load_samples()
    rows = np.concatenate([samples["input"], samples["input"]])[:300]
    np.savez(tmp_path / "in.npz", input=rows)
    out = tmp_path / "out.npz"
    rc = cli.main(
        [
            "batch",
            "--bundle",
            str(cnn_bundle),
            "--input",
            str(tmp_path / "in.npz"),
            "-o",
            str(out),
            "--chunk",
            "64",
            "--json",
            "--no-progress",
        ]
    )
    assert rc == 0
    summary = json.loads(capsys.readouterr().out)
    assert summary["rows"] == 300
    with np.load(out) as result:
        assert result["logits"].shape == (300, 10)
        assert len(set(result["__inference_ids__"].tolist())) == 5  # 300 rows in chunks of 64
        assert np.allclose(result["logits"][:200], samples["__expected__/logits"][:200], atol=1e-4)


def test_batch_folder_with_csv(tabular_bundle, tmp_path, capsys):
    feeds = sample_feeds(tabular_bundle, 20)
    folder = tmp_path / "inputs"
    folder.mkdir()
    with open(folder / "a.csv", "w", newline="") as fh:
        writer = csv.writer(fh)
        writer.writerow(list(feeds))
        for i in range(20):
            writer.writerow(["" if (v := feeds[k][i, 0]) != v else v for k in feeds])
    np.savez(folder / "b.npz", **sample_feeds(tabular_bundle, 7))
    rc = cli.main(
        [
            "batch",
            "--bundle",
            str(tabular_bundle),
            "--input",
            str(folder),
            "-o",
            str(tmp_path / "out"),
            "--no-progress",
        ]
    )
    assert rc == 0
    with np.load(tmp_path / "out" / "a.npz") as a, np.load(tmp_path / "out" / "b.npz") as b:
        assert a["label"].shape == (20,) and b["label"].shape == (7,)
    assert "27 rows from 2 file(s)" in capsys.readouterr().out


def test_batch_bad_input_exit_2(cnn_bundle, tmp_path, capsys):
    np.savez(tmp_path / "bad.npz", input=np.zeros((3, 1, 8, 9), np.float32))
    rc = cli.main(
        [
            "batch",
            "--bundle",
            str(cnn_bundle),
            "--input",
            str(tmp_path / "bad.npz"),
            "-o",
            str(tmp_path / "o.npz"),
            "--no-progress",
        ]
    )
    assert rc == 2
    assert "axis 3" in capsys.readouterr().err
    assert not (tmp_path / "o.npz").exists()


@pytest.mark.parametrize(
    "name, text, why",
    [
        ("list.json", "[1, 2, 3]", "list.json: holds a JSON array, not an object"),
        ("null.json", "null", "null.json: holds a JSON null, not an object"),
        ("rows.jsonl", '{"input": 1}\n[1, 2]\n', "rows.jsonl:2: holds a JSON array, not an object"),
        ("gap.jsonl", '{"input": 1}\n{"other": 2}\n', "gap.jsonl: row 2 has no 'input'"),
    ],
)
def test_batch_json_that_is_not_objects_is_bad_input(cnn_bundle, tmp_path, capsys, name, text, why):
    """A .json file holding an array, or a .jsonl line that is no object, crashed batch with
    an AttributeError traceback, exit 1; a missing key read only "'input'" (found by
    tryhostile)."""
    (tmp_path / name).write_text(text)
    args = ["batch", "--bundle", str(cnn_bundle), "--input", str(tmp_path / name)]
    rc = cli.main([*args, "-o", str(tmp_path / "o.npz"), "--no-progress"])
    err = " ".join(capsys.readouterr().err.split())
    assert rc == 2 and why in err and "Traceback" not in err
    assert not (tmp_path / "o.npz").exists()


def test_python_dash_m_is_the_same_program(tmp_path):
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "edge_agent",
            "serve",
            "--bundle",
            str(tmp_path / "missing"),
            "--port",
            "-1",
            "--outbox",
            str(tmp_path / "o.sqlite"),
        ],
        env={**os.environ, "PYTHONPATH": str(ROOT)},
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 2 and "not a bundle folder" in result.stderr
