"""Fraud model candidates: imbalance handling, an IsolationForest anomaly score, and the
ONNX graph that computes that score in front of the classifier.

Frauds are under 1% of transactions, so every supervised candidate comes with one way of
handling the imbalance (`IMBALANCE`): nothing, class weights (`class_weight="balanced"`
for the logistic baseline, `scale_pos_weight = negatives / positives` for XGBoost), SMOTE
oversampling or random undersampling (imbalanced-learn). Resampling happens on the
training rows only, at fit time; the fitted model is a plain classifier, so it exports
like any other.

The anomaly score is `-IsolationForest.score_samples` (higher is more unusual, in (0, 1]).
`AnomalyAugmentedClassifier` appends it to the transaction features before the classifier.
Its ONNX export (`to_onnx`) keeps the serving contract, one float32 row of the
transaction features in and a probability out: the forest is written as one
`TreeEnsembleRegressor` whose leaves hold scikit-learn's path lengths, evaluated in double
precision like scikit-learn does, and the classifier's own graph is joined behind a
`Concat` node with `onnx.compose.merge_models`. Double precision matters: the score takes
few distinct values (sums of integer depths), XGBoost places splits exactly on them, and a
float32 sum one ulp off would send a row down the other branch.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Final, Literal

import numpy as np
import onnx
from imblearn.over_sampling import SMOTE
from imblearn.under_sampling import RandomUnderSampler
from onnx import TensorProto, helper, numpy_helper
from sklearn.base import BaseEstimator, ClassifierMixin
from sklearn.ensemble import IsolationForest
from sklearn.ensemble._iforest import _average_path_length
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import StandardScaler
from xgboost import XGBClassifier

from training.export import INPUT_NAME, TARGET_OPSET, to_onnx_model

Family = Literal["logistic", "xgboost"]
Imbalance = Literal["none", "class_weight", "smote", "undersample"]
IMBALANCE: Final[tuple[Imbalance, ...]] = ("none", "class_weight", "smote", "undersample")
ANOMALY_FEATURE: Final = "anomaly_score"

# Resampling aims at this many genuine transactions per fraud, from either side: 1:1
# undersampling throws away most of the genuine behaviour the window features describe,
# and 1:1 SMOTE doubles the training set for synthetic rows that mostly repeat each other.
RESAMPLED_RATIO: Final = 10
# A forest of the usual size on subsamples of 256 rows: cheap to fit on a week of data.
FOREST_TREES: Final = 100
FOREST_MAX_SAMPLES: Final = 256
# The ai.onnx.ml version whose TreeEnsembleRegressor takes double thresholds and weights.
ML_OPSET_DOUBLE_TREES: Final = 3
# The IR version of opset 15, which every onnxruntime we support loads.
IR_VERSION: Final = 8

XGBOOST_DEFAULTS: Final[dict[str, Any]] = {
    "n_estimators": 100,
    "learning_rate": 0.1,
    "max_depth": 5,
    "min_child_weight": 1.0,
    "subsample": 0.9,
    "colsample_bytree": 0.9,
    "reg_lambda": 1.0,
}


@dataclass(frozen=True)
class ModelSpec:
    """One supervised candidate: model family, imbalance handling, anomaly input, params."""

    family: Family
    imbalance: Imbalance = "none"
    anomaly_feature: bool = False
    params: dict[str, Any] = field(default_factory=dict)

    @property
    def name(self) -> str:
        suffix = "+anomaly" if self.anomaly_feature else ""
        return f"{self.family}_{self.imbalance}{suffix}"

    def fit_classifier(self, x: np.ndarray, y: np.ndarray, seed: int) -> Any:
        """Fit the classifier on rows already holding every input (anomaly score included)."""
        x_fit, y_fit = resample(self.imbalance, x, y, seed)
        if self.family == "logistic":
            weight = "balanced" if self.imbalance == "class_weight" else None
            model: Any = Pipeline(
                [
                    ("scale", StandardScaler()),
                    (
                        "model",
                        LogisticRegression(
                            C=1.0, max_iter=1000, class_weight=weight, random_state=seed
                        ),
                    ),
                ]
            )
            return model.fit(x_fit, y_fit)
        model = XGBClassifier(
            **self.xgboost_params(len(y_fit), int(y_fit.sum()), seed),
            # A week of transactions is small for XGBoost: one thread is about as fast
            # as two, and does not fight the other fits and onnxruntime for the cores.
            n_jobs=1,
        )
        return model.fit(x_fit, y_fit)

    def xgboost_params(self, n_rows: int, n_positives: int, seed: int) -> dict[str, Any]:
        """XGBoost's parameters for training rows with `n_positives` frauds out of `n_rows`.

        One source for the in-process classifier and the one trained on a Dask cluster
        (`training.fraud_train_dask`), so both learn the same model.
        """
        positives = max(n_positives, 1)
        spw = (n_rows - positives) / positives if self.imbalance == "class_weight" else 1.0
        return {
            **XGBOOST_DEFAULTS,
            **self.params,
            "scale_pos_weight": spw,
            "tree_method": "hist",
            "eval_metric": "aucpr",
            "random_state": seed,
        }

    def log_params(self) -> dict[str, Any]:
        """The spec as MLflow params: family, imbalance, anomaly input, `model.*` params."""
        return {
            "family": self.family,
            "imbalance": self.imbalance,
            "anomaly_feature": self.anomaly_feature,
            **{f"model.{k}": v for k, v in {**self._defaults(), **self.params}.items()},
        }

    def _defaults(self) -> dict[str, Any]:
        return dict(XGBOOST_DEFAULTS) if self.family == "xgboost" else {"C": 1.0}


def resample(
    imbalance: Imbalance, x: np.ndarray, y: np.ndarray, seed: int
) -> tuple[np.ndarray, np.ndarray]:
    """The training rows after SMOTE or undersampling; unchanged for the other strategies.

    Both resamplers aim at `RESAMPLED_RATIO` genuine rows per fraud; rows already that
    balanced are returned as they are.
    """
    if imbalance not in ("smote", "undersample"):
        return x, y
    frauds, genuine = int(y.sum()), int(len(y) - y.sum())
    if frauds * RESAMPLED_RATIO >= genuine:
        return x, y
    target = 1.0 / RESAMPLED_RATIO
    if imbalance == "smote":
        # k must stay below the number of frauds, which a small training week may not have.
        k = min(5, max(frauds - 1, 1))
        sampler: Any = SMOTE(sampling_strategy=target, k_neighbors=k, random_state=seed)
    else:
        sampler = RandomUnderSampler(sampling_strategy=target, random_state=seed)
    return _as_arrays(sampler.fit_resample(x, y))


def _as_arrays(result: Any) -> tuple[np.ndarray, np.ndarray]:
    x, y = result
    return np.asarray(x, dtype=np.float32), np.asarray(y)


def fit_detector(x: np.ndarray, seed: int) -> IsolationForest:
    """An IsolationForest over the transaction features (unsupervised: labels unused)."""
    return IsolationForest(
        n_estimators=FOREST_TREES,
        max_samples=min(FOREST_MAX_SAMPLES, len(x)),
        max_features=1.0,
        random_state=seed,
        n_jobs=1,
    ).fit(x)


def anomaly_score(detector: IsolationForest, x: np.ndarray) -> np.ndarray:
    """Higher is more unusual: scikit-learn's `-score_samples`, computed as the ONNX graph does.

    scikit-learn adds each tree's path length in float64; here each tree's path length is
    first rounded to float32, the precision an ONNX tree ensemble outputs. A sum of a few
    hundred float32 values is exact in float64 whatever the order, so this function and the
    graph agree to the last bit, and differ from scikit-learn by float32 rounding only.
    """
    rows = np.ascontiguousarray(x, dtype=np.float32)
    depth_sum = np.zeros(len(rows), dtype=np.float64)
    for estimator, lengths in zip(detector.estimators_, _leaf_path_lengths(detector), strict=True):
        depth_sum += lengths[estimator.apply(rows)]
    return np.asarray(2.0 ** -(depth_sum / _depth_normaliser(detector)))


def _leaf_path_lengths(detector: IsolationForest) -> list[np.ndarray]:
    """Per tree and node: the path length scikit-learn credits a row ending there, float32."""
    return [
        (depths + average - 1.0).astype(np.float32).astype(np.float64)
        for depths, average in zip(
            detector._decision_path_lengths, detector._average_path_length_per_tree, strict=True
        )
    ]


def _depth_normaliser(detector: IsolationForest) -> float:
    return float(len(detector.estimators_) * _average_path_length([detector._max_samples])[0])


def with_anomaly(x: np.ndarray, score: np.ndarray) -> np.ndarray:
    """The rows with the anomaly score appended as the last column, float32."""
    return np.hstack([x, score.astype(np.float32)[:, None]], dtype=np.float32)


class AnomalyAugmentedClassifier(ClassifierMixin, BaseEstimator):
    """A classifier that takes the transaction features plus their anomaly score.

    Fitted from its parts (see `training.fraud_train`); `predict_proba` takes the
    transaction features only and computes the score itself, as the ONNX graph does.
    """

    # What MLflow's skops format must be told to trust when it reloads this model: our
    # own class and the parts it holds (we wrote them in the same process).
    skops_trusted_types: Final = (
        "training.fraud_models.AnomalyAugmentedClassifier",
        "sklearn.tree._tree.Tree",
        "xgboost.core.Booster",
        "xgboost.sklearn.XGBClassifier",
    )

    def __init__(self, detector: IsolationForest, classifier: Any) -> None:
        self.detector = detector
        self.classifier = classifier

    @property
    def classes_(self) -> np.ndarray:
        return np.asarray(self.classifier.classes_)

    @property
    def n_features_in_(self) -> int:
        return int(self.detector.n_features_in_)

    def predict_proba(self, X: np.ndarray) -> np.ndarray:
        rows = np.ascontiguousarray(X, dtype=np.float32)
        return np.asarray(
            self.classifier.predict_proba(with_anomaly(rows, anomaly_score(self.detector, rows)))
        )

    def predict(self, X: np.ndarray) -> np.ndarray:
        return np.asarray(self.classes_[np.argmax(self.predict_proba(X), axis=1)])

    def to_onnx(self, n_features: int) -> onnx.ModelProto:
        """One ONNX graph: `n_features` float32 inputs -> anomaly score -> the classifier."""
        augment = isolation_forest_augmenter(self.detector, n_features)
        classifier = to_onnx_model(self.classifier, n_features + 1)
        return compose_augmenter(augment, classifier)


def isolation_forest_augmenter(detector: IsolationForest, n_features: int) -> onnx.ModelProto:
    """ONNX graph: float32 rows [N, n] -> the rows with `anomaly_score` appended [N, n + 1].

    The score is computed as scikit-learn computes it: per tree, the depth of the leaf
    plus the average path length of the rows left in it, minus 1; summed over the trees
    in double precision; then `2 ** -(depths / (n_trees * c(max_samples)))`.
    """
    if detector.n_features_in_ != n_features:
        raise ValueError(f"detector was fitted on {detector.n_features_in_} features")
    if detector._max_features != n_features:
        raise ValueError("only a forest that looks at every feature (max_features=1.0)")
    graph = helper.make_graph(
        _anomaly_score_nodes(detector),
        "isolation_forest_augmenter",
        [helper.make_tensor_value_info(INPUT_NAME, TensorProto.FLOAT, [None, n_features])],
        [helper.make_tensor_value_info("augmented", TensorProto.FLOAT, [None, n_features + 1])],
        initializer=[
            numpy_helper.from_array(np.array([1], dtype=np.int64), "tree_axis"),
            numpy_helper.from_array(
                np.array(_depth_normaliser(detector), dtype=np.float64), "normaliser"
            ),
            numpy_helper.from_array(np.array(2.0, dtype=np.float64), "two"),
        ],
    )
    return helper.make_model(
        graph,
        ir_version=IR_VERSION,
        opset_imports=[
            helper.make_opsetid("", TARGET_OPSET),
            helper.make_opsetid("ai.onnx.ml", ML_OPSET_DOUBLE_TREES),
        ],
    )


def _anomaly_score_nodes(detector: IsolationForest) -> list[onnx.NodeProto]:
    """The augmenter's nodes: the forest's path lengths, their normalised sum as the score,
    the score appended to the input rows (initializers `tree_axis`, `normaliser`, `two`)."""
    return [
        # Thresholds in double, as scikit-learn compares them (float32 rows, float64 splits).
        helper.make_node("Cast", [INPUT_NAME], ["rows_double"], to=TensorProto.DOUBLE),
        _path_lengths_node(detector, "rows_double", "path_lengths"),
        helper.make_node("Cast", ["path_lengths"], ["path_lengths_double"], to=TensorProto.DOUBLE),
        helper.make_node("ReduceSum", ["path_lengths_double", "tree_axis"], ["depth_sum"]),
        helper.make_node("Div", ["depth_sum", "normaliser"], ["normalised"]),
        helper.make_node("Neg", ["normalised"], ["exponent"]),
        helper.make_node("Pow", ["two", "exponent"], ["score_double"]),
        helper.make_node("Cast", ["score_double"], [ANOMALY_FEATURE], to=TensorProto.FLOAT),
        helper.make_node("Concat", [INPUT_NAME, ANOMALY_FEATURE], ["augmented"], axis=1),
    ]


def _path_lengths_node(detector: IsolationForest, rows: str, output: str) -> onnx.NodeProto:
    """A `TreeEnsembleRegressor` giving, per row, each tree's path length: one target per tree.

    The ensemble's output is float32, which holds one tree's path length exactly (see
    `anomaly_score`) but not their sum, so the trees are summed after, in double.
    """
    attrs = _forest_attributes(detector)
    return helper.make_node(
        "TreeEnsembleRegressor",
        [rows],
        [output],
        domain="ai.onnx.ml",
        n_targets=len(detector.estimators_),
        aggregate_function="SUM",
        post_transform="NONE",
        nodes_treeids=attrs["nodes_treeids"],
        nodes_nodeids=attrs["nodes_nodeids"],
        nodes_featureids=attrs["nodes_featureids"],
        nodes_modes=attrs["nodes_modes"],
        nodes_values_as_tensor=numpy_helper.from_array(
            np.asarray(attrs["nodes_values"], dtype=np.float64), "nodes_values"
        ),
        nodes_truenodeids=attrs["nodes_truenodeids"],
        nodes_falsenodeids=attrs["nodes_falsenodeids"],
        target_treeids=attrs["target_treeids"],
        target_nodeids=attrs["target_nodeids"],
        target_ids=attrs["target_ids"],
        target_weights_as_tensor=numpy_helper.from_array(
            np.asarray(attrs["target_weights"], dtype=np.float64), "target_weights"
        ),
    )


def _forest_attributes(detector: IsolationForest) -> dict[str, list[Any]]:
    """The forest as `TreeEnsembleRegressor` attribute lists: every node of every tree, and
    for each leaf the path length scikit-learn credits a row ending there (target = tree)."""
    attrs: dict[str, list[Any]] = {
        k: []
        for k in (
            "nodes_treeids",
            "nodes_nodeids",
            "nodes_featureids",
            "nodes_modes",
            "nodes_values",
            "nodes_truenodeids",
            "nodes_falsenodeids",
            "target_treeids",
            "target_nodeids",
            "target_ids",
            "target_weights",
        )
    }
    for tree_id, (estimator, lengths) in enumerate(
        zip(detector.estimators_, _leaf_path_lengths(detector), strict=True)
    ):
        tree = estimator.tree_
        for node in range(tree.node_count):
            leaf = tree.children_left[node] == -1
            attrs["nodes_treeids"].append(tree_id)
            attrs["nodes_nodeids"].append(node)
            attrs["nodes_featureids"].append(0 if leaf else int(tree.feature[node]))
            attrs["nodes_modes"].append("LEAF" if leaf else "BRANCH_LEQ")
            attrs["nodes_values"].append(0.0 if leaf else float(tree.threshold[node]))
            attrs["nodes_truenodeids"].append(0 if leaf else int(tree.children_left[node]))
            attrs["nodes_falsenodeids"].append(0 if leaf else int(tree.children_right[node]))
            if leaf:
                attrs["target_treeids"].append(tree_id)
                attrs["target_nodeids"].append(node)
                attrs["target_ids"].append(tree_id)
                attrs["target_weights"].append(float(lengths[node]))
    return attrs


def compose_augmenter(augment: onnx.ModelProto, classifier: onnx.ModelProto) -> onnx.ModelProto:
    """One graph: `augment`'s output feeds `classifier`'s input; the input stays `features`."""
    # merge_models wants one version per opset domain and one IR version; the classifier's
    # ai.onnx.ml operators (tree ensembles, linear classifier, scaler) are unchanged in v3.
    versions = {o.domain: o.version for o in classifier.opset_import}
    for opset in augment.opset_import:
        versions[opset.domain] = max(versions.get(opset.domain, 0), opset.version)
    for model in (augment, classifier):
        del model.opset_import[:]
        model.opset_import.extend(helper.make_opsetid(d, v) for d, v in versions.items())
        model.ir_version = min(augment.ir_version, classifier.ir_version)
    (classifier_input,) = [i.name for i in classifier.graph.input]
    composed = onnx.compose.merge_models(
        augment,
        classifier,
        io_map=[("augmented", classifier_input)],
        prefix2="classifier_",
    )
    onnx.checker.check_model(composed)
    return composed
