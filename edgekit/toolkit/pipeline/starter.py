"""`edgekit init`: a commented starter pipeline plus the files it names (a training script and a
small data set from scikit-learn's bundled data), so it runs as is and shows where your own
model, data and options go."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from edge_agent import owned
from edge_agent.atomic import write_text
from edge_agent.errors import BadInputError

COMMON_TAIL = """\
  # Quantize: one or several methods (dynamic, static, fp16, ...) or `auto`, which picks
  # what suits the model and this machine. A method the model cannot take is recorded, not fatal.
  quantize:
    methods: [auto]
  # Evaluate every variant on data.evaluation. The gate: a quantized variant may lose at most
  # max_drop of the main metric against FP32; min_value is a floor for the model itself;
  # compare_deployed: the new model must be at least as good as the deployed one.
  evaluate:
    max_drop: 0.01
    min_value: {min_value}
    compare_deployed: true
  # Latency of each variant here (seconds of measurement per configuration).
  bench:
    duration_s: 0.3
    batches: [1]
  # Pick the best variant and session options per hardware target (see `edgekit targets list`).
  tune:
    targets: [local]
    quick: true
    max_trials: 8
  # The Greengrass component; version `auto` is the patch after the last one packaged here.
  package:
    component: com.example.{component}
    version: auto
    platforms: [linux/amd64]
  # Try the component on simulated Greengrass core devices (the local emulator), with load:
  # simulate:
  #   devices: 2
  #   duration_s: 10
  #   load: 5
  # Ship it: publish to S3 + Greengrass, then deploy canary first (IoT Jobs rollout).
  # publish:
  #   bucket: my-greengrass-artifacts
  # deploy:
  #   to: greengrass
  #   thing_group: my-devices
  #   canary: 1
  #   abort_percent: 50
"""

SKLEARN_PIPELINE = """\
# edgekit pipeline: `edgekit run pipeline.yaml` runs every stage below in order; a stage whose
# inputs (files by digest, options, library versions, the stage before it) did not change is
# taken from the cache (.edgekit/cache). `edgekit run --dry-run` shows the plan,
# `edgekit runs list` the recorded runs. Paths are relative to this file.
version: 1
name: {name}                 # the bundle's name
# workdir: .edgekit          # cache and run store
# output: build              # the final bundle and greengrass-build folder

data:
  sample: data/test.csv      # export: parity check, stored samples, drift baseline
  calibration: data/train.csv
  evaluation: data/test.csv  # the gate's data (labelled)
  target_column: target

stages:
  # Your training: a function `module:function` called as fn(data=Path, output=Path, **params)
  # (or `command: "python train.py --data {{data}} --output {{output}}"`), writing the model.
  train:
    function: train:fit
    data: data/train.csv
    output: model.skops
    params: {{seed: 0}}
    sources: [train.py]      # files whose changes retrain
  # Export to a verified ONNX bundle (outputs compared with scikit-learn's).
  export:
"""

SKLEARN_TRAIN = '''\
"""Training for the edgekit starter pipeline: replace with your own. Called as
fit(data=Path, output=Path, **params); must write the fitted model to `output` (skops)."""

import pandas as pd
import skops.io as sio
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler
from sklearn.linear_model import LogisticRegression


def fit(data, output, seed=0):
    frame = pd.read_csv(data)
    x, y = frame.drop(columns=["target"]), frame["target"]
    model = make_pipeline(StandardScaler(), LogisticRegression(max_iter=500, random_state=seed))
    model.fit(x, y)
    sio.dump(model, output)
    return {"train_accuracy": float(model.score(x, y))}
'''

TORCH_PIPELINE = """\
# edgekit pipeline: `edgekit run pipeline.yaml` runs every stage below in order; a stage whose
# inputs (files by digest, options, library versions, the stage before it) did not change is
# taken from the cache (.edgekit/cache). `edgekit run --dry-run` shows the plan,
# `edgekit runs list` the recorded runs. Paths are relative to this file.
version: 1
name: {name}

# A PyTorch model: the factory builds the module, the train step writes its state dict.
model:
  factory: model:build

data:
  sample: data/test.npz      # arrays keyed by the model's input name, plus `target`
  calibration: data/train.npz
  evaluation: data/test.npz
  target_column: target

stages:
  train:
    function: train:fit      # fit(data=Path, output=Path, **params) writes the state dict
    data: data/train.npz
    output: weights.pt
    params: {{epochs: 3}}
    sources: [train.py, model.py]
  export:
    task: classification
"""

TORCH_MODEL = '''\
"""The model factory for the edgekit starter pipeline: replace with your own nn.Module."""

from torch import nn


def build():
    return nn.Sequential(nn.Flatten(), nn.Linear(64, 64), nn.ReLU(), nn.Linear(64, 10))
'''

TORCH_TRAIN = '''\
"""Training for the edgekit starter pipeline: replace with your own. Called as
fit(data=Path, output=Path, **params); must write the trained state dict to `output`."""

import numpy as np
import torch
from torch import nn

from model import build


def fit(data, output, epochs=3, seed=0):
    torch.manual_seed(seed)
    with np.load(data, allow_pickle=False) as z:
        x, y = torch.from_numpy(z["input"]), torch.from_numpy(z["target"])
    model = build()
    opt = torch.optim.Adam(model.parameters(), lr=3e-3)
    for _ in range(epochs):
        for i in range(0, len(x), 64):
            opt.zero_grad()
            nn.functional.cross_entropy(model(x[i : i + 64]), y[i : i + 64]).backward()
            opt.step()
    torch.save(model.state_dict(), output)
    with torch.no_grad():
        return {"train_accuracy": float((model(x).argmax(1) == y).float().mean())}
'''


def _sklearn_data(folder: Path) -> None:
    from sklearn.datasets import load_wine
    from sklearn.model_selection import train_test_split

    frame = load_wine(as_frame=True).frame
    train, test = train_test_split(frame, test_size=0.3, random_state=0, stratify=frame["target"])
    folder.mkdir(parents=True, exist_ok=True)
    write_text(folder / "train.csv", train.to_csv(index=False))
    write_text(folder / "test.csv", test.to_csv(index=False))


def _torch_data(folder: Path) -> None:
    from sklearn.datasets import load_digits
    from sklearn.model_selection import train_test_split

    digits = load_digits()
    x = (digits.images / 16.0).astype(np.float32)[:, None, :, :]
    y = digits.target.astype(np.int64)
    x_train, x_test, y_train, y_test = train_test_split(
        x, y, test_size=0.3, random_state=0, stratify=y
    )
    folder.mkdir(parents=True, exist_ok=True)
    np.savez(folder / "train.npz", input=x_train, target=y_train)
    np.savez(folder / "test.npz", input=x_test, target=y_test)


FRAMEWORKS = {
    "sklearn": (SKLEARN_PIPELINE, {"train.py": SKLEARN_TRAIN}, _sklearn_data, 0.8),
    "torch": (TORCH_PIPELINE, {"train.py": TORCH_TRAIN, "model.py": TORCH_MODEL}, _torch_data, 0.5),
}


def write_starter(output: Path, framework: str, force: bool = False) -> list[Path]:
    """Write the pipeline file and what it names beside it; refuses to overwrite unless forced."""
    if framework not in FRAMEWORKS:
        raise BadInputError(
            f"--framework {framework!r} is not known", hint=f"one of {', '.join(FRAMEWORKS)}"
        )
    template, files, make_data, min_value = FRAMEWORKS[framework]
    folder = output.parent
    name = "starter-" + framework
    targets = [output] + [folder / f for f in files] + [folder / "data"]
    owned.check_parents(output)
    existing = [p for p in targets if p.exists() or p.is_symlink()]
    if existing and not force:
        raise BadInputError(
            f"{existing[0]} already exists", hint="choose another `output`, or pass `overwrite`"
        )
    foreign = [p for p in existing if not _starter_made(p)]
    if foreign:
        raise BadInputError(
            f"{foreign[0]} was not written by `edgekit init`, so --force does not replace it; "
            "nothing was changed",
            hint="choose another -o folder for the starter, or move that file away",
        )
    component = "Starter" + framework.capitalize()
    text = template.format(name=name) + COMMON_TAIL.format(component=component, min_value=min_value)
    folder.mkdir(parents=True, exist_ok=True)
    write_text(output, text)
    for fname, body in files.items():
        write_text(folder / fname, body)
    make_data(folder / "data")
    owned.write_marker(folder / "data", DATA_KIND)
    return targets


DATA_KIND = "starter-data"
# The first line of what `edgekit init` writes: pipeline files and the Python files beside them.
STARTER_HEADS = (
    "# edgekit pipeline:",
    '"""Training for the edgekit starter pipeline',
    '"""The model factory for the edgekit starter pipeline',
)


def _starter_made(path: Path) -> bool:
    """Whether `edgekit init` wrote this file or data folder (so --force may replace it)."""
    if path.is_symlink():
        return False
    if path.is_dir():
        kind, foreign = owned.owner(path)
        return kind == DATA_KIND and not foreign
    try:
        with path.open(encoding="utf-8") as fh:
            head = fh.read(200)
    except (OSError, UnicodeDecodeError):
        return False
    return head.startswith(STARTER_HEADS)
