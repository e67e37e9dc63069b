"""The scikit-learn corpus: every estimator skl2onnx has a converter for, fitted on a bundled
data set and taken through export and evaluate (issue 14).

Each member either passes or fails with a named reason from REASONS; `run_member` returns
which, and docs/sklearn_corpus.md is written from a run by scripts/sklearn_corpus.py. Data is
small and iterations few, so the whole corpus takes a few minutes on two cores.
"""

from __future__ import annotations

import functools
import tempfile
import time
import warnings
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

# Why a member may fail. A member listed in EXPECTED_FAILURES must fail with exactly this
# reason; every other member must pass.
REASONS = {
    "not_tabular": "not a model of a numeric table: it takes dicts, text, labels or a kernel "
    "matrix (DictVectorizer, FeatureHasher, LabelEncoder, ...), so there is nothing to export "
    "from a CSV",
    "multi_output": "needs a 2-D target; edgekit's export takes one label column",
    "converter_refuses": "skl2onnx's converter refuses this model or configuration "
    "(its message is in the table)",
    "parity": "ONNX outputs differ from scikit-learn beyond the family's tolerance, so export "
    "refuses it (exit 1); the detail column gives the difference",
    "onnxruntime_error": "the converted graph fails to load or run in onnxruntime on the "
    "export data (the detail column gives onnxruntime's message)",
    "unexpected": "an error edgekit did not expect: a bug to report",
}

# id -> reason key, measured on scikit-learn 1.9 / skl2onnx 1.20 (docs/sklearn_corpus.md).
EXPECTED_FAILURES: dict[str, str] = {
    "DictVectorizer": "not_tabular",
    "FeatureHasher": "not_tabular",
    "GaussianProcessClassifier": "onnxruntime_error",
    "KernelCenterer": "not_tabular",
    "LabelBinarizer": "not_tabular",
    "LabelEncoder": "not_tabular",
    "MultiOutputClassifier": "multi_output",
    "MultiOutputRegressor": "multi_output",
    "MultiTaskElasticNet": "multi_output",
    "MultiTaskElasticNetCV": "multi_output",
    "MultiTaskLasso": "multi_output",
    "MultiTaskLassoCV": "multi_output",
    "QuantileTransformer": "parity",
    "RadiusNeighborsRegressor": "onnxruntime_error",
    "RandomTreesEmbedding": "converter_refuses",
    "TargetEncoder": "converter_refuses",
}

# Members over ~2.5 s on two cores: marked slow (they still run in CI).
SLOW = {"QuantileTransformer", "TunedThresholdClassifierCV", "StackingClassifier"}


@dataclass(frozen=True)
class Member:
    id: str
    role: str  # classifier | regressor | transformer
    dataset: str
    make: Callable[[], Any]


# Constructor arguments that keep the corpus small and fast (few iterations, few trees).
FAST: dict[str, dict[str, Any]] = {
    "AdaBoostClassifier": {"n_estimators": 5},
    "AdaBoostRegressor": {"n_estimators": 5},
    "BaggingClassifier": {"n_estimators": 3},
    "BaggingRegressor": {"n_estimators": 3},
    "ExtraTreesClassifier": {"n_estimators": 10},
    "ExtraTreesRegressor": {"n_estimators": 10},
    "RandomForestClassifier": {"n_estimators": 10},
    "RandomForestRegressor": {"n_estimators": 10},
    "GradientBoostingClassifier": {"n_estimators": 10},
    "GradientBoostingRegressor": {"n_estimators": 10},
    "HistGradientBoostingClassifier": {"max_iter": 10},
    "HistGradientBoostingRegressor": {"max_iter": 10},
    "MLPClassifier": {"hidden_layer_sizes": (16,), "max_iter": 100},
    "MLPRegressor": {"hidden_layer_sizes": (16,), "max_iter": 100},
    "LogisticRegression": {"max_iter": 300},
    "LogisticRegressionCV": {"max_iter": 200, "cv": 3, "Cs": 3},
    "SGDClassifier": {"max_iter": 50},
    "SGDRegressor": {"max_iter": 50},
    "Perceptron": {"max_iter": 50},
    "PassiveAggressiveClassifier": {"max_iter": 50},
    "PassiveAggressiveRegressor": {"max_iter": 50},
    "LinearSVC": {"max_iter": 500},
    "LinearSVR": {"max_iter": 500},
    "SVC": {"probability": False},
    "NuSVC": {"nu": 0.3},
    "RidgeCV": {},
    "LassoCV": {"cv": 3},
    "ElasticNetCV": {"cv": 3},
    "LassoLarsCV": {"cv": 3},
    "LarsCV": {"cv": 3},
    "OrthogonalMatchingPursuitCV": {"cv": 3},
    "MultiTaskLassoCV": {"cv": 3},
    "MultiTaskElasticNetCV": {"cv": 3},
    "TweedieRegressor": {"max_iter": 100},
    "PoissonRegressor": {"max_iter": 100},
    "GammaRegressor": {"max_iter": 100},
    "QuantileRegressor": {"solver": "highs"},
    "KMeans": {"n_clusters": 3, "n_init": 1},
    "MiniBatchKMeans": {"n_clusters": 3, "n_init": 1},
    "PCA": {"n_components": 5},
    "IncrementalPCA": {"n_components": 5},
    "TruncatedSVD": {"n_components": 5},
    "KernelPCA": {"n_components": 5},
    "FastICA": {"n_components": 5, "max_iter": 100},
    "NMF": {"n_components": 5, "max_iter": 100},
    "SelectKBest": {"k": 5},
    "SelectPercentile": {},
    "KBinsDiscretizer": {"n_bins": 4, "encode": "ordinal"},
    "QuantileTransformer": {"n_quantiles": 50},
    "GenericUnivariateSelect": {},
    "RFE": {},
    "RFECV": {"cv": 2, "step": 3},
    "SelectFromModel": {},
    "SequentialFeatureSelector": {},
    "IsotonicRegression": {},
    "RandomTreesEmbedding": {"n_estimators": 5},
    "GaussianRandomProjection": {"n_components": 5},
    "SparseRandomProjection": {"n_components": 5},
    "LatentDirichletAllocation": {"n_components": 3, "max_iter": 5},
    "RadiusNeighborsClassifier": {"radius": 10.0},
    "RadiusNeighborsRegressor": {"radius": 10.0},
    "GaussianProcessClassifier": {"max_iter_predict": 20},
}


def _uniform_bins():
    from sklearn.preprocessing import KBinsDiscretizer

    # uniform edges are not data values, so float32 inputs fall in the same bins
    return KBinsDiscretizer(n_bins=4, encode="ordinal", strategy="uniform")


def _min_max():
    from sklearn.preprocessing import MinMaxScaler

    return MinMaxScaler()


# The step before the member when a StandardScaler does not fit it (non-negative counts for
# naive Bayes, categories for the encoders).
PRE: dict[str, Callable[[], Any]] = {
    "MultinomialNB": _min_max,
    "ComplementNB": _min_max,
    "CategoricalNB": _uniform_bins,
    "OneHotEncoder": _uniform_bins,
    "OrdinalEncoder": _uniform_bins,
    "TargetEncoder": _uniform_bins,
    "ColumnTransformer": lambda: None,  # it picks the DataFrame's columns by name
}


def _column_transformer_args() -> dict[str, Any]:
    from sklearn.preprocessing import StandardScaler

    columns = ["alcohol", "malic_acid", "ash"]  # wine's, by name as a user writes them
    return {"transformers": [("scale", StandardScaler(), columns)], "remainder": "passthrough"}


def _feature_union_args() -> dict[str, Any]:
    from sklearn.decomposition import PCA
    from sklearn.preprocessing import StandardScaler

    return {"transformer_list": [("pca", PCA(3)), ("scale", StandardScaler())]}


_EXTRA: dict[str, Callable[[], dict[str, Any]]] = {
    "ColumnTransformer": _column_transformer_args,
    "FeatureUnion": _feature_union_args,
    "OneHotEncoder": lambda: {"handle_unknown": "ignore"},
    "VotingClassifier": lambda: {"voting": "soft", "flatten_transform": False},
}

# Members that need another data set than their role's (binary-only estimators).
DATASET = {
    "GaussianProcessClassifier": "breast_cancer",
    "TunedThresholdClassifierCV": "breast_cancer",
}


@functools.cache
def _datasets() -> dict[str, Any]:
    from sklearn.datasets import load_breast_cancer, load_diabetes, load_iris, load_wine

    out = {}
    for name, loader in {
        "iris": load_iris,
        "wine": load_wine,
        "breast_cancer": load_breast_cancer,
        "diabetes": load_diabetes,
    }.items():
        frame = loader(as_frame=True).frame
        out[name] = frame
    return out


def supported_estimators() -> dict[str, tuple[str, type]]:
    """{class name: (role, class)} for every scikit-learn estimator skl2onnx converts."""
    from skl2onnx._supported_operators import sklearn_operator_name_map
    from sklearn.utils import all_estimators

    found = {}
    for role in ("classifier", "regressor", "cluster", "transformer"):
        for name, cls in all_estimators(type_filter=role):
            if cls in sklearn_operator_name_map and name not in found:
                found[name] = (role, cls)
    return dict(sorted(found.items()))


def _needs_estimator(cls: type) -> bool:
    import inspect

    params = inspect.signature(cls.__init__).parameters
    return any(
        p in params and params[p].default is inspect.Parameter.empty
        for p in ("estimator", "estimators", "base_estimator")
    )


def members() -> list[Member]:
    """One member per supported estimator: classifiers on iris (multiclass) or breast cancer
    (binary, for the odd ones out), regressors on diabetes, clusterers after a scaler and
    transformers between a scaler and a logistic regression on wine."""
    from sklearn.linear_model import LinearRegression, LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    out = []
    for name, (role, cls) in supported_estimators().items():
        kwargs = dict(FAST.get(name, {}))
        if _needs_estimator(cls):
            base = LogisticRegression(max_iter=300) if role != "regressor" else LinearRegression()
            import inspect

            params = inspect.signature(cls.__init__).parameters
            if "estimators" in params:
                kwargs["estimators"] = [("a", base), ("b", base)]
            else:
                kwargs["estimator"] = base

        kwargs.update(_EXTRA.get(name, lambda: {})())

        def make(cls=cls, kwargs=kwargs, role=role, name=name):
            est = cls(**kwargs)
            if "random_state" in est.get_params():
                est.set_params(random_state=0)
            pre = PRE.get(name, StandardScaler)()
            steps = [s for s in (pre, est) if s is not None]
            if role == "transformer":
                return make_pipeline(*steps, LogisticRegression(max_iter=300))
            return make_pipeline(*steps)

        roles = {"classifier": "iris", "regressor": "diabetes", "transformer": "wine"}
        dataset = DATASET.get(name) or roles.get(role, "wine")
        out.append(Member(name, role, dataset, make))
    return out


NOT_TABULAR = {
    "DictVectorizer",
    "FeatureHasher",
    "LabelEncoder",
    "LabelBinarizer",
    "KernelCenterer",
    "TfidfTransformer",
}
MULTI_OUTPUT = {
    "MultiOutputClassifier",
    "MultiOutputRegressor",
    "MultiTaskElasticNet",
    "MultiTaskElasticNetCV",
    "MultiTaskLasso",
    "MultiTaskLassoCV",
}


def _reason_of(member: Member, exc: BaseException) -> str:
    from edge_agent.errors import CheckFailedError

    text = str(exc)
    if isinstance(exc, CheckFailedError) and "differ from the native model" in text:
        return "parity"
    if "cannot convert" in text or "skl2onnx failed" in text:
        return "converter_refuses"
    if "onnxruntime cannot run" in text:
        return "onnxruntime_error"
    if member.id in NOT_TABULAR:
        return "not_tabular"
    return "multi_output" if member.id in MULTI_OUTPUT else "unexpected"


def run_member(member: Member, workdir: Path | None = None) -> dict[str, Any]:
    """Fit, save as skops, export, evaluate. {'id', 'outcome': 'pass' | reason key, ...}."""
    import skops.io as sio

    from edge_agent.errors import EdgekitError
    from edgekit.export.builder import ExportRequest, export_bundle
    from edgekit.toolkit.evaluate.runner import EvaluateRequest, evaluate_bundle

    frame = _datasets()[member.dataset]
    x, y = frame.drop(columns="target"), frame["target"]
    started = time.perf_counter()
    record: dict[str, Any] = {"id": member.id, "role": member.role, "dataset": member.dataset}
    with tempfile.TemporaryDirectory(dir=workdir) as tmp:
        root = Path(tmp)
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                model = member.make().fit(x, y)
        except Exception as exc:
            reason = "multi_output" if member.id in MULTI_OUTPUT else "not_tabular"
            reason = reason if member.id in MULTI_OUTPUT | NOT_TABULAR else "unexpected"
            record.update(outcome=reason, detail=f"fit: {exc}"[:160])
            record["seconds"] = round(time.perf_counter() - started, 2)
            return record
        source = root / "m.skops"
        sio.dump(model, source)
        data = root / "data.csv"
        frame.to_csv(data, index=False)
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                _, report = export_bundle(
                    ExportRequest(
                        source=str(source), data=data, output=root / "b", target_column="target"
                    )
                )
                result = evaluate_bundle(
                    root / "b", EvaluateRequest(data=data, target_column="target")
                )
        except EdgekitError as exc:
            record.update(outcome=_reason_of(member, exc), detail=exc.message[:160])
        else:
            fp32 = result["variants"]["fp32"] if "variants" in result else {}
            metric = {k: v for k, v in (fp32.get("metrics") or {}).items() if isinstance(v, float)}
            record.update(outcome="pass", parity=_worst(report), metric=_first(metric))
    record["seconds"] = round(time.perf_counter() - started, 2)
    return record


def _worst(report: dict[str, Any]) -> str:
    parts = []
    for name, r in report["outputs"].items():
        if r.get("kind") == "label":
            parts.append(f"{name} {r['label_agreement']:.3f}")
        elif "max_abs_diff" in r:
            parts.append(f"{name} {r['max_abs_diff']:.2g}")
    return ", ".join(parts)


def _first(metrics: dict[str, float]) -> str:
    for key in ("accuracy", "r2"):
        if key in metrics:
            return f"{key} {metrics[key]:.3f}"
    return ""


def expected(member_id: str) -> str:
    return EXPECTED_FAILURES.get(member_id, "pass")


def ids() -> list[str]:
    return [m.id for m in members()]


np.seterr(all="ignore")
