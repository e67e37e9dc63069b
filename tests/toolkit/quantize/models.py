"""Model factories for the quantize/evaluate tests (loaded as `path/models.py:function`)."""

from __future__ import annotations

import numpy as np


def diabetes_mlp():
    """A torch MLP regressor on diabetes (10 features -> 1 value), trained for a few seconds."""
    import torch
    from sklearn.datasets import load_diabetes
    from torch import nn

    torch.manual_seed(0)
    data = load_diabetes()
    x = torch.from_numpy(data.data.astype(np.float32))
    y = torch.from_numpy(data.target.astype(np.float32))[:, None]
    model = nn.Sequential(
        nn.Linear(10, 64), nn.ReLU(), nn.Linear(64, 64), nn.ReLU(), nn.Linear(64, 1)
    )
    opt = torch.optim.Adam(model.parameters(), lr=0.02)
    for _ in range(300):
        opt.zero_grad()
        nn.functional.mse_loss(model(x), y).backward()
        opt.step()
    return model.eval()


def small_forest():
    """A tree ensemble: no operator in it can be INT8-quantized by onnxruntime."""
    from sklearn.datasets import load_breast_cancer
    from sklearn.ensemble import RandomForestClassifier

    x, y = load_breast_cancer(return_X_y=True, as_frame=True)
    return RandomForestClassifier(n_estimators=5, max_depth=3, random_state=0).fit(x, y)
