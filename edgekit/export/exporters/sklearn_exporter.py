"""scikit-learn -> ONNX with skl2onnx: estimators and Pipelines, ColumnTransformer included.

Probabilities come out as a plain tensor (zipmap disabled) and class labels go to the manifest.
Pipelines with a ColumnTransformer take one ONNX input per column, so string columns stay strings.

A missing text value is NaN to scikit-learn but a string tensor cannot hold NaN, so on the ONNX
side it is the empty string (MISSING_TEXT, recorded per column in the signature). The model is
converted from a copy whose string imputers and encoders treat "" as they treated NaN; parity
then compares the untouched model on NaN with the ONNX model on "".

ONNX input names are what skl2onnx makes of the column names (`od280/od315` becomes
`od280_od315`): each input records its user column in the signature (`column`), and every
reader maps the user's names onto the ONNX ones (edge_agent.serving.validation.input_aliases).

scikit-learn's trees cast their input to float32 after the steps before them ran in float64.
A pipeline with steps before a tree ensemble is therefore converted with float64 inputs and a
Cast to float32 right before the trees (skl2onnx's CastTransformer), so a sample near a split
threshold takes the same branch on both sides. A scaler before a KBinsDiscretizer or a
Binarizer gets the same: float64 up to the bins, float32 after them.
"""

from __future__ import annotations

import copy
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np

from edge_agent.errors import BadInputError
from edgekit.export.data import SampleData, column_mismatch
from edgekit.export.exporters import ExportOptions, ExportResult, register
from edgekit.export.onnx_edit import rename_tensor
from edgekit.export.onnx_types import tensor_spec
from edgekit.export.versions import library_versions

_FAMILIES = {
    "sklearn.linear_model": "linear",
    "sklearn.svm": "svm",
    "sklearn.neighbors": "neighbors",
    "sklearn.neural_network": "mlp",
    "sklearn.tree": "tree",
    "sklearn.ensemble": "tree",
}

MISSING_TEXT = ""

FLOAT32_BEFORE_TREES = (
    "the steps before the tree ensemble (or bins) run in float32 in ONNX but in float64 in "
    "scikit-learn (which casts to float32 only before the trees), so samples near a split "
    "threshold can take the other branch"
)
FLOAT32_BEFORE_TREES_HINT = (
    "trees need no scaling: drop the scaler from the pipeline, or make the steps before the "
    "trees convertible in float64 (skl2onnx double converters), or accept the difference with "
    "--atol after checking the label agreement"
)

FLOAT64_TREES_HINT = (
    "HistGradientBoosting compares float64 inputs with float64 thresholds and onnxruntime's tree "
    "operators run in float32 only, so rows within float32 rounding of a threshold take the "
    "other branch (more of them after a scaler); compare the label agreement and loosen with "
    "--atol if the differences are acceptable, or use GradientBoosting/RandomForest, which "
    "cast to float32 as ONNX does and convert exactly"
)

_CONVERTER_HINT = (
    "skl2onnx has no converter for it: register one with skl2onnx.update_registered_converter "
    "(shape calculator + converter), import that module in your factory, or use a supported estimator"
)


# Some converters (IsolationForest's) refuse the newest ai.onnx.ml opset skl2onnx picks on its
# own and ask for 3, the one `--opset` already pins; the conversion is retried there.
_ML_OPSET_TOO_NEW = re.compile(r"version \d+ of domain 'ai\.onnx\.ml' not supported")


def _ml_opset_3() -> dict[str, int]:
    """skl2onnx's default main opset with ai.onnx.ml at 3."""
    from skl2onnx import get_latest_tested_opset_version

    return {"": get_latest_tested_opset_version(), "ai.onnx.ml": 3}


_STEP_HINT = (
    "skl2onnx converts the estimator but not this configuration of a step (its message names "
    "it): replace that step or option with one it converts (docs/sklearn_corpus.md lists what "
    "passes), or register your own converter with skl2onnx.update_registered_converter in a "
    "factory"
)


def _describe(model: Any) -> str:
    """`Ridge`, or `Pipeline ending in Ridge`: the failing step may be any of a pipeline's."""
    final = type(final_estimator(model)).__name__
    outer = type(model).__name__
    return final if outer == final else f"{outer} ending in {final}"


def final_estimator(model: Any) -> Any:
    from sklearn.pipeline import Pipeline

    while isinstance(model, Pipeline):
        model = model.steps[-1][1]
    return model


def _casts_to_float32(estimator: Any) -> bool:
    """Estimators whose predict casts X to float32 first (scikit-learn's DTYPE for trees):
    decision trees, forests, extra trees, gradient boosting, and bagging over trees (each
    bagged tree casts its own input). HistGradientBoosting bins in float64 and is not one of
    them."""
    from sklearn.ensemble import BaggingClassifier, BaggingRegressor
    from sklearn.ensemble._forest import BaseForest
    from sklearn.ensemble._gb import BaseGradientBoosting
    from sklearn.tree import BaseDecisionTree

    trees = BaseDecisionTree | BaseForest | BaseGradientBoosting
    if isinstance(estimator, BaggingClassifier | BaggingRegressor):
        fitted = getattr(estimator, "estimators_", None) or []
        return bool(fitted) and all(isinstance(e, trees) for e in fitted)
    return isinstance(estimator, trees)


def _float64_trees(estimator: Any) -> bool:
    from sklearn.ensemble import HistGradientBoostingClassifier, HistGradientBoostingRegressor

    return isinstance(estimator, HistGradientBoostingClassifier | HistGradientBoostingRegressor)


def cast_before_trees(model: Any) -> Any | None:
    """A copy of a Pipeline whose final tree ensemble follows other steps, with a cast to
    float32 inserted right before it (what scikit-learn does inside the trees' predict),
    or None when the model is not such a pipeline."""
    from skl2onnx.sklapi import CastTransformer
    from sklearn.pipeline import Pipeline

    if not isinstance(model, Pipeline):
        return None
    if not _casts_to_float32(final_estimator(model)):
        return _cast_after_thresholds(model)
    if all(step in (None, "passthrough") for _, step in model.steps[:-1]):
        inner = model.steps[-1][1]
        return cast_before_trees(inner) if isinstance(inner, Pipeline) else None
    adapted = copy.deepcopy(model)
    holder = adapted
    while isinstance(holder.steps[-1][1], Pipeline):
        holder = holder.steps[-1][1]
    cast = CastTransformer(dtype=np.float32)
    holder.steps.insert(len(holder.steps) - 1, ("edgekit_cast_float32", cast))
    return adapted


def _thresholds(step: Any) -> bool:
    """Steps whose output jumps at thresholds (bin edges): a float32 input one rounding away
    from an edge lands in the other bin, and the output (a small integer or 0/1) is exact in
    float32 once computed."""
    from sklearn.preprocessing import Binarizer, KBinsDiscretizer

    return isinstance(step, KBinsDiscretizer | Binarizer)


def _cast_after_thresholds(model: Any) -> Any | None:
    """A copy of a top-level Pipeline with a cast to float32 after its last thresholding
    step that follows other steps (all up to it then run in float64, as in scikit-learn), or
    None when there is none."""
    from skl2onnx.sklapi import CastTransformer

    last = max((i for i, (_, step) in enumerate(model.steps) if _thresholds(step)), default=None)
    if last is None or last == len(model.steps) - 1:
        return None
    if all(step in (None, "passthrough") for _, step in model.steps[:last]):
        return None
    adapted = copy.deepcopy(model)
    adapted.steps.insert(last + 1, ("edgekit_cast_float32", CastTransformer(dtype=np.float32)))
    return adapted


def family_of(model: Any) -> str:
    module = type(final_estimator(model)).__module__
    for prefix, family in _FAMILIES.items():
        if module.startswith(prefix):
            return family
    return "other"


def _contains_column_transformer(model: Any) -> bool:
    from sklearn.compose import ColumnTransformer

    if isinstance(model, ColumnTransformer):
        return True
    params = model.get_params(deep=True) if hasattr(model, "get_params") else {}
    return any(isinstance(v, ColumnTransformer) for v in params.values())


def _walk(est: Any) -> Iterator[Any]:
    """Every fitted estimator inside `est` (Pipelines, ColumnTransformers, FeatureUnions)."""
    from sklearn.compose import ColumnTransformer
    from sklearn.pipeline import FeatureUnion, Pipeline

    yield est
    if isinstance(est, Pipeline):
        children = [step for _, step in est.steps]
    elif isinstance(est, ColumnTransformer):
        children = [t for _, t, _ in getattr(est, "transformers_", est.transformers)]
    elif isinstance(est, FeatureUnion):
        children = [t for _, t in est.transformer_list]
    else:
        children = []
    for child in children:
        if child is not None and not isinstance(child, str):
            yield from _walk(child)


def _fitted_on_text(est: Any) -> bool:
    """An encoder whose categories, or an imputer whose fill values, are strings: the step
    was fitted on text columns, so it must be fed text even where the data reader saw numbers
    (a postcode column of 06000, 75001, ... that pandas reads as integers)."""
    for step in _walk(est):
        found = list(getattr(step, "categories_", None) or [])
        stats = getattr(step, "statistics_", None)
        if stats is not None:
            found.append(np.asarray(stats))
        if any(c.dtype == object and any(isinstance(v, str) for v in c) for c in found):
            return True
    return False


def text_columns(model: Any) -> list[str]:
    """The data columns that a ColumnTransformer inside `model` hands to steps fitted on text."""
    from sklearn.compose import ColumnTransformer

    found: list[str] = []
    for est in _walk(model):
        names = getattr(est, "feature_names_in_", None)
        indices = getattr(est, "_transformer_to_input_indices", None)
        if not isinstance(est, ColumnTransformer) or names is None or indices is None:
            continue
        for name, step, _cols in est.transformers_:
            if not isinstance(step, str) and _fitted_on_text(step):
                found += [str(names[i]) for i in indices.get(name, [])]
    return list(dict.fromkeys(found))


def _refuse_categorical_splits(model: Any) -> None:
    """HistGradientBoosting's native categorical splits (`categorical_features`): skl2onnx
    converts them as numeric thresholds, so the ONNX model disagrees with scikit-learn on
    most rows (label agreement 0.57 on a 4-category column). Refused before converting."""
    for est in _walk(model):
        categorical = getattr(est, "is_categorical_", None)
        if categorical is not None and np.any(categorical):
            raise BadInputError(
                f"cannot convert {type(est).__name__} with categorical_features to ONNX: "
                "skl2onnx converts its categorical splits as numeric thresholds, so the ONNX "
                "model would give other answers",
                hint="encode those columns in a ColumnTransformer (OrdinalEncoder or "
                "OneHotEncoder) before the model and train it with categorical_features=None",
            )


def _is_nan(value: Any) -> bool:
    return isinstance(value, float) and value != value


def adapt_missing_text(model: Any) -> tuple[Any, list[str]]:
    """A copy of `model` in which text imputers and encoders read MISSING_TEXT as NaN.

    skl2onnx converts a string SimpleImputer only when its missing value is a string, and
    turns a NaN category into the text "nan"; on the ONNX side a missing text is "" instead.
    Returns the model to convert (the original when nothing needed changing) and notes.
    """
    from sklearn.impute import SimpleImputer
    from sklearn.preprocessing import OneHotEncoder, OrdinalEncoder

    def needs(est: Any) -> bool:
        if isinstance(est, SimpleImputer):
            stats = getattr(est, "statistics_", None)
            return _is_nan(est.missing_values) and stats is not None and stats.dtype == object
        if isinstance(est, OneHotEncoder | OrdinalEncoder):
            return any(
                c.dtype == object and any(_is_nan(v) for v in c)
                for c in getattr(est, "categories_", [])
            )
        return False

    if not any(needs(e) for e in _walk(model)):
        return model, []
    adapted = copy.deepcopy(model)
    notes = []
    for est in _walk(adapted):
        if not needs(est):
            continue
        if isinstance(est, SimpleImputer):
            est.missing_values = MISSING_TEXT
            notes.append("text SimpleImputer: a missing value is fed as the empty string")
        else:
            est.categories_ = [
                np.array([MISSING_TEXT if _is_nan(v) else v for v in c], dtype=object)
                if c.dtype == object
                else c
                for c in est.categories_
            ]
            notes.append(
                f"{type(est).__name__}: the NaN category is the empty string on the ONNX side"
            )
    return adapted, sorted(set(notes))


def _unsupported_estimators(model: Any) -> list[str]:
    """Names of the estimators in `model` that skl2onnx has no converter for."""
    from skl2onnx._supported_operators import sklearn_operator_name_map

    found = []
    candidates = list(_walk(model))
    if hasattr(model, "get_params"):
        candidates += list(model.get_params(deep=True).values())
    for obj in candidates:
        if hasattr(obj, "fit") and type(obj) not in sklearn_operator_name_map:
            from sklearn.compose import ColumnTransformer
            from sklearn.pipeline import FeatureUnion, Pipeline

            if not isinstance(obj, Pipeline | ColumnTransformer | FeatureUnion):
                found.append(type(obj).__name__)
    return sorted(set(found))


def _frame_columns(model: Any, data: SampleData) -> Any:
    """The DataFrame restricted to and ordered by the model's columns, or a clear error."""
    frame: Any = data.frame
    expected = getattr(model, "feature_names_in_", None)
    columns = [str(c) for c in frame.columns]
    if expected is not None:
        expected = [str(c) for c in expected]
        mismatch = column_mismatch(expected, columns)
        if mismatch:
            hint = "give the columns the model was trained on; drop the label with `target_column`"
            if data.absent_target is not None:
                hint = (
                    f"`target_column` {data.absent_target!r} is not a column of "
                    f"{data.path.name} (names are case-sensitive): give the label's column name"
                )
            raise BadInputError(f"data columns do not match the model's: {mismatch}", hint=hint)
        return frame[expected]
    n_expected = getattr(model, "n_features_in_", None)
    if n_expected is not None and n_expected != len(columns):
        raise BadInputError(
            f"the model expects {n_expected} features and the data has {len(columns)} columns",
            hint="drop the label with `target_column` or check the data file",
        )
    return frame


class SklearnExporter:
    name = "sklearn"

    def text_columns(self, obj: Any) -> list[str]:
        return text_columns(obj)

    def accepts(self, obj: Any) -> bool:
        try:
            from sklearn.base import BaseEstimator
        except ImportError:
            return False
        return isinstance(obj, BaseEstimator)

    def export(
        self, obj: Any, data: SampleData, options: ExportOptions, workdir: Path
    ) -> ExportResult:
        from sklearn.base import is_classifier, is_regressor
        from sklearn.exceptions import NotFittedError
        from sklearn.utils.validation import check_is_fitted

        try:
            check_is_fitted(obj)
        except NotFittedError as exc:
            raise BadInputError(
                f"the {type(obj).__name__} is not fitted", hint="fit it before exporting"
            ) from exc
        unsupported = _unsupported_estimators(obj)
        if unsupported:
            raise BadInputError(
                f"cannot convert {', '.join(unsupported)} to ONNX", hint=_CONVERTER_HINT
            )

        _refuse_categorical_splits(obj)
        if is_classifier(obj):
            task = "classification"
        elif is_regressor(obj):
            task = "regression"
        else:
            task = options.task or "raw"

        onnx_model, native_x, raw_feeds, types, input_kind, columns, notes, hint = (
            self._convert_model(obj, data, task, options)
        )
        onnx_name = _onnx_names(onnx_model, types)
        feeds = {onnx_name[raw]: arr for raw, arr in raw_feeds.items()}
        user_name = {onnx: raw for raw, onnx in onnx_name.items() if onnx != raw}
        scores = task == "classification" and not _has_predict_proba(obj)
        if scores and len(onnx_model.graph.output) > 1:
            # without predict_proba skl2onnx's second output holds decision scores
            rename_tensor(onnx_model, onnx_model.graph.output[1].name, "scores")
        if task == "classification":
            _label_per_row(onnx_model)
        outputs = [tensor_spec(o) for o in onnx_model.graph.output]
        native = self._predict(obj, native_x, task, outputs, data.path)
        if scores and "scores" in native:
            _declare_columns(onnx_model, outputs, "scores", native["scores"].shape[1])
        path = workdir / "model.onnx"
        path.write_bytes(onnx_model.SerializeToString())
        labels = _labels(obj, outputs[0]) if task == "classification" else None
        signature = {
            "inputs": [
                {**tensor_spec(i), "role": "features"}
                | ({"column": user_name[i.name]} if i.name in user_name else {})
                for i in onnx_model.graph.input
            ],
            "outputs": outputs,
            "input_kind": input_kind,
            "columns": columns,
            "labels": labels,
        }
        opset = next(
            (o.version for o in onnx_model.opset_import if o.domain in ("", "ai.onnx")), None
        )
        return ExportResult(
            onnx_path=path,
            framework="sklearn",
            family=family_of(obj),
            task=task,
            signature=signature,
            feeds=feeds,
            native_outputs=native,
            versions=library_versions(),
            opset=opset,
            notes=notes,
            parity_hint=hint,
        )

    def _convert_model(
        self, obj: Any, data: SampleData, task: str, options: ExportOptions
    ) -> tuple[Any, ...]:
        """Convert `obj`, in float64 up to a cast before its trees when it needs that; fall back
        to float32 (with the cause as the parity hint) when a step has no float64 converter.

        Returns (onnx model, native input, feeds and initial types keyed by the raw names,
        input kind, columns, notes, parity hint or None)."""
        with_cast = cast_before_trees(obj)
        hint = FLOAT64_TREES_HINT if _float64_trees(final_estimator(obj)) else None
        notes: list[str] = []
        if with_cast is not None:
            native_x, feeds, types, input_kind, columns = self._inputs(obj, data, double=True)
            convertible, notes = adapt_missing_text(with_cast)
            try:
                onnx_model = self._convert(convertible, types, task, options)
                _check_loads(onnx_model)
            except BadInputError as exc:
                notes = [
                    "no float64 conversion of the steps before the trees or bins "
                    f"({exc.message[:200]}): they run in float32"
                ]
                hint = f"{FLOAT32_BEFORE_TREES}; {FLOAT32_BEFORE_TREES_HINT}"
            else:
                notes.append(
                    "steps before the tree ensemble (or bins) run in float64 and are cast to "
                    "float32 before the trees (after the bins), as in scikit-learn"
                )
                return onnx_model, native_x, feeds, types, input_kind, columns, notes, hint
        native_x, feeds, types, input_kind, columns = self._inputs(obj, data)
        convertible, adapted = adapt_missing_text(obj)
        onnx_model = self._convert(convertible, types, task, options)
        return onnx_model, native_x, feeds, types, input_kind, columns, notes + adapted, hint

    def _inputs(self, model: Any, data: SampleData, double: bool = False) -> tuple[Any, ...]:
        """(native input, feeds keyed by column/tensor name, skl2onnx initial types, input
        kind, columns). `double`: numeric inputs as float64 (a cast before trees follows)."""
        from skl2onnx.common.data_types import (
            DoubleTensorType,
            FloatTensorType,
            StringTensorType,
        )

        num_type = DoubleTensorType if double else FloatTensorType
        num_dtype = np.float64 if double else np.float32
        num_name = "float64" if double else "float32"

        if data.frame is None:
            if len(data.named) != 1:
                raise BadInputError(
                    "a scikit-learn model takes one table: give CSV, Parquet or a single NPY array"
                )
            x = next(iter(data.named.values()))
            if x.ndim != 2:
                raise BadInputError(
                    f"a scikit-learn model takes a 2-D table; the data has shape {x.shape}"
                )
            n_expected = getattr(model, "n_features_in_", x.shape[1])
            if n_expected != x.shape[1]:
                raise BadInputError(
                    f"the model expects {n_expected} features and the data has {x.shape[1]}"
                )
            x32 = x.astype(num_dtype)
            cols = [
                {"name": f"x{i}", "kind": "numeric", "dtype": num_name} for i in range(x.shape[1])
            ]
            return x, {"X": x32}, [("X", num_type([None, x.shape[1]]))], "tabular", cols

        frame = _frame_columns(model, data)
        numeric = {c: frame[c].dtype.kind in "fiub" for c in frame.columns}
        if _contains_column_transformer(model):
            feeds, types, cols = {}, [], []
            for col in frame.columns:
                name = str(col)
                if numeric[col]:
                    feeds[name] = frame[col].to_numpy(dtype=num_dtype).reshape(-1, 1)
                    types.append((name, num_type([None, 1])))
                    cols.append({"name": name, "kind": "numeric", "dtype": num_name})
                else:
                    values = (
                        frame[col]
                        .astype(object)
                        .where(frame[col].notna(), MISSING_TEXT)
                        .astype(str)
                    )
                    feeds[name] = values.to_numpy().reshape(-1, 1)
                    types.append((name, StringTensorType([None, 1])))
                    cols.append(
                        {
                            "name": name,
                            "kind": "categorical",
                            "dtype": "string",
                            "missing": MISSING_TEXT,
                        }
                    )
            return frame, feeds, types, "tabular", cols
        text = [str(c) for c, is_num in numeric.items() if not is_num]
        if text:
            raise BadInputError(
                f"columns {text} hold text but the model has no ColumnTransformer to encode them",
                hint="encode them in a Pipeline with a ColumnTransformer (OneHotEncoder) or drop them",
            )
        x32 = frame.to_numpy(dtype=num_dtype)
        cols = [{"name": str(c), "kind": "numeric", "dtype": num_name} for c in frame.columns]
        native_x = (
            frame if getattr(model, "feature_names_in_", None) is not None else frame.to_numpy()
        )
        return native_x, {"X": x32}, [("X", num_type([None, x32.shape[1]]))], "tabular", cols

    def _convert(
        self, model: Any, initial_types: list[Any], task: str, options: ExportOptions
    ) -> Any:
        from skl2onnx import convert_sklearn

        target_opset = {"": options.opset, "ai.onnx.ml": 3} if options.opset else None
        conv_options = _conversion_options(model, task)
        try:
            try:
                return convert_sklearn(
                    model,
                    initial_types=initial_types,
                    target_opset=target_opset,
                    options=conv_options,
                )
            except RuntimeError as exc:
                if target_opset is not None or not _ML_OPSET_TOO_NEW.search(str(exc)):
                    raise
                return convert_sklearn(
                    model,
                    initial_types=initial_types,
                    target_opset=_ml_opset_3(),
                    options=conv_options,
                )
        except (
            Exception
        ) as exc:  # skl2onnx raises RuntimeError, NotImplementedError and its own types
            from skl2onnx.common.exceptions import MissingConverter, MissingShapeCalculator

            name = _describe(model)
            if isinstance(exc, MissingConverter | MissingShapeCalculator):
                raise BadInputError(
                    f"cannot convert {name} to ONNX: {exc}", hint=_CONVERTER_HINT
                ) from exc
            raise BadInputError(
                f"skl2onnx failed to convert {name}: {type(exc).__name__}: {exc}",
                hint=_STEP_HINT,
            ) from exc

    def _predict(
        self, model: Any, x: Any, task: str, outputs: list[dict[str, Any]], path: Path
    ) -> dict[str, np.ndarray]:
        """The native outputs, or bad input when the model cannot predict on the data."""
        try:
            return self._native_outputs(model, x, task, outputs)
        except Exception as exc:  # the user's model on the user's data: any error it raises
            raise BadInputError(
                f"the {type(model).__name__} fails to predict on {path.name}: "
                f"{type(exc).__name__}: {str(exc)[:300]}",
                hint="give data as the model was trained on (the same columns, each with the "
                "same type), or check that the model predicts on it in scikit-learn",
            ) from exc

    def _native_outputs(
        self, model: Any, x: Any, task: str, outputs: list[dict[str, Any]]
    ) -> dict[str, np.ndarray]:
        names = [o["name"] for o in outputs]
        if task == "classification":
            native = {names[0]: np.asarray(model.predict(x))}
            outputs[0]["role"] = "label"
            if len(names) < 2:
                return native
            if _has_predict_proba(model):
                outputs[1]["role"] = "probabilities"
                native[names[1]] = np.asarray(model.predict_proba(x))
            elif hasattr(model, "decision_function"):
                outputs[1]["role"] = "raw"
                scores = np.asarray(model.decision_function(x))
                if scores.ndim == 1:  # binary: skl2onnx emits two columns
                    scores = _binary_scores(final_estimator(model), scores)
                native[names[1]] = scores
            else:
                outputs[1]["role"] = "raw"
            return native
        for o in outputs:
            o["role"] = "value" if task == "regression" else "raw"
        pred = np.asarray(model.predict(x) if hasattr(model, "predict") else model.transform(x))
        native = {names[0]: pred.reshape(len(pred), -1)}
        if _is_outlier_detector(model) and len(names) > 1:
            # skl2onnx's second output is decision_function (IsolationForest, OneClassSVM, ...)
            native[names[1]] = np.asarray(model.decision_function(x)).reshape(len(pred), -1)
        return native


def _check_loads(onnx_model: Any) -> None:
    """Refuse a converted graph onnxruntime cannot load (a float64 step feeding a float32
    one, say), so the caller can fall back to the float32 conversion."""
    import onnxruntime as ort

    try:
        ort.InferenceSession(onnx_model.SerializeToString(), providers=["CPUExecutionProvider"])
    except Exception as exc:  # onnxruntime raises its own Fail/InvalidGraph types
        raise BadInputError(f"onnxruntime cannot load it: {str(exc)[:200]}") from exc


def _onnx_names(onnx_model: Any, types: list[tuple[str, Any]]) -> dict[str, str]:
    """{name given to skl2onnx: ONNX input name}. skl2onnx keeps the inputs in the order of
    the initial types but makes their names C identifiers (`od280/od315` -> `od280_od315`);
    the ColumnTransformer finds its columns by the raw names, so those must go in unchanged."""
    names = [i.name for i in onnx_model.graph.input]
    if len(names) != len(types):
        raise BadInputError(
            f"skl2onnx made {len(names)} ONNX inputs for {len(types)} columns",
            hint="report this model: edgekit cannot map its columns onto the ONNX inputs",
        )
    return {raw: onnx for onnx, (raw, _) in zip(names, types, strict=True)}


def _labels(model: Any, label_output: dict[str, Any]) -> list[Any]:
    """Class labels as the ONNX label output gives them (skl2onnx emits integral float
    and bool classes as int64), so the manifest maps outputs to labels without a cast."""
    classes = np.asarray(model.classes_)
    if label_output["dtype"] == "int64" and classes.dtype.kind in "fb":
        return [int(c) for c in classes]
    if label_output["dtype"] == "string":
        return [str(c) for c in classes]
    return [_py(c) for c in classes]


def _conversion_options(model: Any, task: str) -> dict[int, dict[str, Any]] | None:
    """skl2onnx options per estimator (by id) inside `model`.

    - classifiers: no ZipMap (probabilities as a plain tensor). An entry even when empty:
      skl2onnx's Pipeline parser otherwise asks a classifier without ZipMap (LinearSVC), or a
      step that looks like one (RFE around a classifier), for a zipmap option and fails;
    - nearest neighbours: distances with onnxruntime's CDist kernel instead of a Scan loop
      (measured 15x faster at batch 1 on wine, same outputs)."""
    from sklearn.base import is_classifier
    from sklearn.pipeline import Pipeline

    options: dict[int, dict[str, Any]] = {}
    for est in _walk(model):
        if isinstance(est, Pipeline):
            continue
        allowed = _allowed_options(est)
        chosen: dict[str, Any] = {}
        if task == "classification" and is_classifier(est):
            if "zipmap" in allowed:
                chosen["zipmap"] = False
            options[id(est)] = chosen
        if "cdist" in (allowed.get("optim") or ()):
            chosen["optim"] = "cdist"
            options[id(est)] = chosen
    return options or None


def _allowed_options(estimator: Any) -> dict[str, Any]:
    """The conversion options skl2onnx's converter for this estimator accepts (LinearSVC,
    for one, has no ZipMap and refuses the zipmap option)."""
    from skl2onnx._supported_operators import sklearn_operator_name_map
    from skl2onnx.common._registration import get_converter

    alias = sklearn_operator_name_map.get(type(estimator))
    try:
        return dict(get_converter(alias).get_allowed_options() or {}) if alias else {}
    except (ValueError, KeyError, AttributeError):
        return {}


def _binary_scores(estimator: Any, d: np.ndarray) -> np.ndarray:
    """Binary decision scores laid out as skl2onnx emits them: libsvm-based SVC/NuSVC put
    the decision value first ([d, -d]), LinearSVC and RidgeClassifier emit d alone, other
    linear classifiers put it second ([-d, d])."""
    from sklearn.linear_model import RidgeClassifier, RidgeClassifierCV
    from sklearn.svm import SVC, LinearSVC, NuSVC

    if isinstance(estimator, SVC | NuSVC):
        return np.stack([d, -d], axis=1)
    if isinstance(estimator, LinearSVC | RidgeClassifier | RidgeClassifierCV):
        return d.reshape(-1, 1)
    return np.stack([-d, d], axis=1)


def _label_per_row(onnx_model: Any) -> None:
    """Give the label output one value per row. skl2onnx's QuadraticDiscriminantAnalysis
    emits labels as one row of N ([1, N]), which every reader would take for a batch of one."""
    from onnx import TensorProto, helper, numpy_helper

    out = onnx_model.graph.output[0]
    dims = out.type.tensor_type.shape.dim
    if len(dims) != 2 or not dims[0].HasField("dim_value") or dims[0].dim_value != 1:
        return
    raw = f"{out.name}_one_row"
    for node in onnx_model.graph.node:
        node.output[:] = [raw if o == out.name else o for o in node.output]
        node.input[:] = [raw if i == out.name else i for i in node.input]
    shape = f"{out.name}_per_row_shape"
    onnx_model.graph.initializer.append(
        numpy_helper.from_array(np.array([-1], dtype=np.int64), shape)
    )
    onnx_model.graph.node.append(
        helper.make_node("Reshape", [raw, shape], [out.name], name=f"{out.name}_per_row")
    )
    elem = out.type.tensor_type.elem_type or TensorProto.INT64
    out.CopyFrom(helper.make_tensor_value_info(out.name, elem, [None]))


def _declare_columns(onnx_model: Any, outputs: list[dict[str, Any]], name: str, cols: int) -> None:
    """Make the declared second dimension of output `name` say what the graph computes
    (skl2onnx declares two score columns for binary LinearSVC, which emits one)."""
    for out, spec in zip(onnx_model.graph.output, outputs, strict=True):
        dims = out.type.tensor_type.shape.dim
        if out.name == name and len(dims) == 2 and dims[1].dim_value not in (0, cols):
            dims[1].dim_value = cols
            spec["shape"] = [spec["shape"][0], cols]


def _is_outlier_detector(model: Any) -> bool:
    from sklearn.base import is_outlier_detector

    return bool(is_outlier_detector(model)) and hasattr(model, "decision_function")


def _has_predict_proba(model: Any) -> bool:
    try:
        return hasattr(model, "predict_proba")
    except AttributeError:  # SVC(probability=False) raises from the property
        return False


def _py(value: Any) -> Any:
    return value.item() if hasattr(value, "item") else value


register(SklearnExporter())
