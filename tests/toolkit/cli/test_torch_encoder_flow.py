"""A torch model with two int64 inputs and a dict output (a small stand-in for a Hugging Face
sentence encoder) goes the whole way through the installed `edgekit` script, the way the README
shows it: export -> quantize auto -> evaluate -> bench -> tune -> package, relative paths, run
from the folder that holds the user's files."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np

from tests.toolkit.quantize.encoder_bundles import token_arrays

ROOT = Path(__file__).parents[3]
EDGEKIT = Path(sys.executable).parent / "edgekit"


def edgekit(cwd: Path, *args: str) -> dict:
    done = subprocess.run(
        [str(EDGEKIT), *args, "--json"], cwd=cwd, capture_output=True, text=True, timeout=600
    )
    assert done.returncode == 0, f"{args}: {done.stderr[-2000:]}"
    return json.loads(done.stdout)


def test_encoder_with_int64_inputs_and_dict_output_goes_the_whole_way(tmp_path: Path):
    shutil.copyfile(ROOT / "tests" / "export" / "torch_models.py", tmp_path / "models.py")
    np.savez(tmp_path / "tokens.npz", **token_arrays(96, 24, seed=0))
    np.savez(tmp_path / "eval.npz", **token_arrays(64, 24, seed=1))

    exported = edgekit(tmp_path, "export", "models.py:tiny_encoder", "--data", "tokens.npz",
                       "-o", "bundle")  # fmt: skip
    assert exported["parity"]["passed"]
    manifest = json.loads((tmp_path / "bundle" / "manifest.json").read_text())
    sig = manifest["signature"]
    assert [i["dtype"] for i in sig["inputs"]] == ["int64", "int64"]
    assert [o["name"] for o in sig["outputs"]] == ["last_hidden_state", "pooler_output"]
    assert sig["inputs"][0]["shape"] == ["batch", "sequence"]

    quantized = edgekit(tmp_path, "quantize", "bundle", "--method", "auto")
    assert quantized["method"] == "dynamic"
    assert quantized["quantization"]["config"]["per_channel"] is True

    evaluated = edgekit(tmp_path, "evaluate", "bundle", "--data", "eval.npz")
    variant = quantized["variant"]
    assert variant in evaluated["passed"]
    assert evaluated["variants"][variant]["read_from"].startswith("mean pooling")

    bench = edgekit(tmp_path, "bench", "bundle", "--iterations", "20", "--warmup", "2",
                    "--batch", "1", "--threads", "1", "--no-native")  # fmt: skip
    assert {r["variant"] for r in bench["records"]} >= {"fp32", variant}
    assert all(r["latency_ms"]["p50"] > 0 for r in bench["records"])

    tuned = edgekit(tmp_path, "tune", "bundle", "--target", "local", "--quick")
    assert (
        tuned["selection"]["variant"]
        in json.loads((tmp_path / "bundle" / "manifest.json").read_text())["variants"]
    )

    packaged = edgekit(tmp_path, "package", "bundle", "--name", "com.example.Encoder",
                       "--version", "1.0.0", "-o", "gg")  # fmt: skip
    assert packaged["platforms"][0]["variant"] == tuned["selection"]["variant"]
    assert (tmp_path / packaged["recipe"]).is_file()
