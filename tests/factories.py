"""Model factories used by the shared fixtures (loaded as `tests/factories.py:function`)."""

from __future__ import annotations

import numpy as np


def tabular_pipeline():
    from edgekit.toolkit.demo.models import TABULAR_TARGET, breast_cancer_frame
    from edgekit.toolkit.demo.models import tabular_pipeline as make

    frame = breast_cancer_frame()
    model = make()
    model.set_params(clf__max_iter=300)
    return model.fit(frame.drop(columns=[TABULAR_TARGET]), frame[TABULAR_TARGET])


def diabetes_ridge():
    from sklearn.datasets import load_diabetes
    from sklearn.linear_model import Ridge

    frame = load_diabetes(as_frame=True).frame
    return Ridge(alpha=0.5).fit(frame.drop(columns=["target"]), frame["target"])


def trained_digits_cnn():
    import torch
    from sklearn.datasets import load_digits
    from torch import nn

    from edgekit.toolkit.demo.models import digits_cnn

    torch.manual_seed(0)
    digits = load_digits()
    x = torch.from_numpy((digits.images / 16.0).astype(np.float32)[:, None])
    y = torch.from_numpy(digits.target.astype(np.int64))
    model = digits_cnn()
    opt = torch.optim.Adam(model.parameters(), lr=3e-3)
    for _ in range(3):
        for start in range(0, len(x), 64):
            opt.zero_grad()
            nn.functional.cross_entropy(
                model(x[start : start + 64]), y[start : start + 64]
            ).backward()
            opt.step()
    return model.eval()
