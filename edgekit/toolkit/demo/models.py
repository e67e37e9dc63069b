"""The demo's two models, trained in seconds on data sets that ship with scikit-learn.

`digits_cnn` is also the factory the demo exports from (`edgekit.toolkit.demo.models:digits_cnn`),
with the trained state dict passed as --weights.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

SEED = 0
TABULAR_TARGET = "target"


def breast_cancer_frame(seed: int = SEED):
    """breast_cancer as a DataFrame with a derived text column and a few missing values,
    so the pipeline needs an imputer and a one-hot encoder like real tabular data."""
    from sklearn.datasets import load_breast_cancer

    raw = load_breast_cancer(as_frame=True)
    frame = raw.frame.copy()
    frame.columns = [c.replace(" ", "_") for c in frame.columns]
    frame["size_band"] = np.select(
        [frame["mean_radius"] < 12, frame["mean_radius"] < 16], ["small", "medium"], default="large"
    )
    rng = np.random.default_rng(seed)
    for col in ("mean_texture", "worst_smoothness"):
        frame.loc[rng.random(len(frame)) < 0.02, col] = np.nan
    return frame


def tabular_pipeline(seed: int = SEED):
    from sklearn.compose import ColumnTransformer
    from sklearn.impute import SimpleImputer
    from sklearn.neural_network import MLPClassifier
    from sklearn.pipeline import Pipeline
    from sklearn.preprocessing import OneHotEncoder, StandardScaler

    frame = breast_cancer_frame(seed)
    numeric = [c for c in frame.columns if c not in (TABULAR_TARGET, "size_band")]
    pre = ColumnTransformer(
        [
            (
                "num",
                Pipeline(
                    [("impute", SimpleImputer(strategy="median")), ("scale", StandardScaler())]
                ),
                numeric,
            ),
            ("cat", OneHotEncoder(handle_unknown="ignore"), ["size_band"]),
        ]
    )
    return Pipeline(
        [
            ("pre", pre),
            ("clf", MLPClassifier(hidden_layer_sizes=(64, 32), max_iter=600, random_state=seed)),
        ]
    )


def write_tabular_data(out_dir: Path, seed: int = SEED) -> dict[str, Path]:
    """The demo's pre-step for the tabular model: breast_cancer split into train/test CSVs."""
    from sklearn.model_selection import train_test_split

    frame = breast_cancer_frame(seed)
    train, test = train_test_split(
        frame, test_size=0.35, random_state=seed, stratify=frame[TABULAR_TARGET]
    )
    out_dir.mkdir(parents=True, exist_ok=True)
    paths = {
        "train": out_dir / "breast_cancer_train.csv",
        "test": out_dir / "breast_cancer_test.csv",
    }
    train.to_csv(paths["train"], index=False)
    test.to_csv(paths["test"], index=False)
    return paths


def fit_tabular(data: Path, output: Path, evaluation: str | None = None, seed: int = SEED):
    """The tabular model's train step (a pipeline `train` function): fit on `data`, save with
    skops to `output`; `evaluation` (a CSV beside `data`) gives the held-out accuracy."""
    import pandas as pd
    import skops.io as sio

    frame = pd.read_csv(data)
    x, y = frame.drop(columns=[TABULAR_TARGET]), frame[TABULAR_TARGET]
    model = tabular_pipeline(seed)
    model.fit(x, y)
    sio.dump(model, output)
    metrics = {"train_accuracy": float(model.score(x, y)), "rows": float(len(frame))}
    if evaluation:
        test = pd.read_csv(Path(data).parent / evaluation)
        metrics["test_accuracy"] = float(
            model.score(test.drop(columns=[TABULAR_TARGET]), test[TABULAR_TARGET])
        )
    return metrics


def train_tabular(out_dir: Path, seed: int = SEED) -> dict[str, Any]:
    """Write the CSVs and fit the pipeline in one call (benchmarks and tests)."""
    paths = write_tabular_data(out_dir, seed)
    model_path = out_dir / "breast_cancer_mlp.skops"
    metrics = fit_tabular(paths["train"], model_path, paths["test"].name, seed)
    return {**paths, "model": model_path, "accuracy": metrics["test_accuracy"]}


def digits_cnn():
    """A small CNN for 8x8 digit images (1x8x8 in, 10 logits out)."""
    import torch
    from torch import nn

    torch.manual_seed(SEED)
    return nn.Sequential(
        nn.Conv2d(1, 16, 3, padding=1),
        nn.ReLU(),
        nn.Conv2d(16, 32, 3, padding=1),
        nn.ReLU(),
        nn.MaxPool2d(2),
        nn.Flatten(),
        nn.Linear(32 * 4 * 4, 64),
        nn.ReLU(),
        nn.Linear(64, 10),
    )


def digits_arrays(seed: int = SEED):
    from sklearn.datasets import load_digits
    from sklearn.model_selection import train_test_split

    digits = load_digits()
    x = (digits.images / 16.0).astype(np.float32)[:, None, :, :]
    return train_test_split(
        x, digits.target.astype(np.int64), test_size=0.3, random_state=seed, stratify=digits.target
    )


def write_digits_data(out_dir: Path, seed: int = SEED) -> dict[str, Path]:
    """The demo's pre-step for the CNN: digits split into train/test NPZ (input, target)."""
    x_train, x_test, y_train, y_test = digits_arrays(seed)
    out_dir.mkdir(parents=True, exist_ok=True)
    paths = {
        "test_npy": out_dir / "digits_test.npy",
        "test": out_dir / "digits_test.npz",
        "train": out_dir / "digits_train.npz",
    }
    np.save(paths["test_npy"], x_test)
    np.savez(paths["test"], input=x_test, target=y_test)
    np.savez(paths["train"], input=x_train, target=y_train)
    return paths


def fit_digits(
    data: Path, output: Path, evaluation: str | None = None, epochs: int = 15, seed: int = SEED
) -> dict[str, float]:
    """The CNN's train step (a pipeline `train` function): fit `digits_cnn` on `data` (NPZ with
    input and target), save its state dict to `output`; `evaluation` (an NPZ beside `data`)
    gives the held-out accuracy."""
    import torch
    from torch import nn

    torch.manual_seed(seed)
    with np.load(data, allow_pickle=False) as npz:
        x_train, y_train = npz["input"], npz["target"]
    model = digits_cnn()
    optimiser = torch.optim.Adam(model.parameters(), lr=2e-3)
    loss_fn = nn.CrossEntropyLoss()
    xt, yt = torch.from_numpy(x_train), torch.from_numpy(y_train)
    generator = torch.Generator().manual_seed(seed)
    model.train()
    for _ in range(int(epochs)):
        order = torch.randperm(len(xt), generator=generator)
        for start in range(0, len(xt), 64):
            idx = order[start : start + 64]
            optimiser.zero_grad()
            loss_fn(model(xt[idx]), yt[idx]).backward()
            optimiser.step()
    model.eval()
    torch.save(model.state_dict(), output)
    metrics = {"epochs": float(epochs), "rows": float(len(x_train))}
    if evaluation:
        with np.load(Path(data).parent / evaluation, allow_pickle=False) as npz:
            x_test, y_test = npz["input"], npz["target"]
        with torch.inference_mode():
            predicted = model(torch.from_numpy(x_test)).argmax(1).numpy()
        metrics["test_accuracy"] = float((predicted == y_test).mean())
    return metrics


def train_digits(out_dir: Path, epochs: int = 15, seed: int = SEED) -> dict[str, Any]:
    """Write the NPZ files and train the CNN in one call (benchmarks and tests)."""
    paths = write_digits_data(out_dir, seed)
    weights = out_dir / "digits_cnn.pt"
    metrics = fit_digits(paths["train"], weights, paths["test"].name, epochs, seed)
    return {
        **paths,
        "weights": weights,
        "factory": "edgekit.toolkit.demo.models:digits_cnn",
        "accuracy": metrics["test_accuracy"],
    }
