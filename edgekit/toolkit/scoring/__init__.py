"""Scoring predictions: reading a model's outputs as labels, scores or embeddings (predictions),
pooling token embeddings (pooling) and the sklearn.metrics figures and agreement measures
(metrics).

Below both `edgekit.toolkit.quantize` (the accuracy search of `--method auto` judges candidates with it)
and `edgekit.toolkit.evaluate` (the gate), so neither of those imports the other to score a model.
"""
