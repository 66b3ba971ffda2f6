"""Evidently metrics of our own: average precision, which Evidently 0.7 does not have.

Defining the class registers it with Evidently under its type alias, so importing this
module is what lets Evidently run the metric and read snapshots that hold it. The alias
and the fingerprint path below are stored in every snapshot and dashboard panel that
uses the metric: keep them as they are.
"""

from __future__ import annotations

import numpy as np
from evidently import BinaryClassification, Dataset
from evidently.core.metric_types import SingleValue, SingleValueCalculation, SingleValueMetric
from evidently.core.report import Context
from sklearn.metrics import average_precision_score

__all__ = ["AveragePrecision", "AveragePrecisionCalculation"]


class AveragePrecision(SingleValueMetric):
    """Average precision of the probabilities of a binary classification (scikit-learn's)."""

    class Config:
        # Starts with Evidently's prefix so dashboard panels accept it; the dot keeps it
        # apart from any metric Evidently may add under the plain name.
        type_alias = "evidently:metric_v2:mlops.AveragePrecision"

    classification_name: str = "default"

    @classmethod
    def __get_classpath__(cls) -> str:
        # Evidently hashes this path into the metric's id in snapshots (and its tests'
        # references to it): the path where the class was first defined keeps the ids of
        # stored snapshots and new ones the same.
        return "monitoring.checks.AveragePrecision"


class AveragePrecisionCalculation(SingleValueCalculation[AveragePrecision]):
    """Computes `AveragePrecision` on the current rows and, when given, the reference's."""

    def calculate(
        self, context: Context, current_data: Dataset, reference_data: Dataset | None
    ) -> tuple[SingleValue, SingleValue | None]:
        return self._on(current_data), None if reference_data is None else self._on(reference_data)

    def display_name(self) -> str:
        return "Average precision"

    def _on(self, dataset: Dataset) -> SingleValue:
        task = dataset.data_definition.get_classification(self.metric.classification_name)
        if not isinstance(task, BinaryClassification) or task.prediction_probas is None:
            raise ValueError("AveragePrecision needs a binary classification with probabilities")
        frame = dataset.as_dataframe()
        actual = (frame[task.target] == task.pos_label).to_numpy()
        probas = frame[str(task.prediction_probas)].to_numpy(dtype=np.float64)
        return self.result(float(average_precision_score(actual, probas)))
