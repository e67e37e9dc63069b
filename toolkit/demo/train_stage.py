"""Demo stage: train the tabular pipeline and the digits CNN."""

from __future__ import annotations

from toolkit.demo import DemoContext, stage
from toolkit.demo.models import train_digits, train_tabular


@stage(10, "train")
def train(ctx: DemoContext) -> None:
    data_dir = ctx.out / "data"
    tab = train_tabular(data_dir)
    cnn = train_digits(data_dir, epochs=5 if ctx.quick else 15)
    ctx.artifacts["tabular"] = tab
    ctx.artifacts["cnn"] = cnn
    ctx.console.print(
        f"  breast_cancer MLP pipeline: test accuracy {tab['accuracy']:.3f} → {tab['model']}"
    )
    ctx.console.print(f"  digits CNN: test accuracy {cnn['accuracy']:.3f} → {cnn['weights']}")
    ctx.results["train"] = {"tabular_accuracy": tab["accuracy"], "cnn_accuracy": cnn["accuracy"]}
