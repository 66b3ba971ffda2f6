"""Names every stage must spell the same way: the registry's aliases and the metrics.

An alias names the role a registered version plays: serving answers with `champion`,
and a newly trained version that has not (yet) beaten it waits as `challenger`
(`mlops.registry` moves them). A metric has one name wherever it appears: the keys of a
version's `test_metrics`, MLflow metric keys (prefixed `test_`, `cv_`, `prequential_`),
the pipelines' JSON summaries, the monitoring checks and the docs.
"""

from __future__ import annotations

from typing import Final

CHAMPION: Final = "champion"
"""The alias serving follows: the version that answers requests."""
CHALLENGER: Final = "challenger"
"""The alias of a version waiting to be compared with the champion (or shadowing it)."""

METRICS: Final[dict[str, str]] = {
    "roc_auc": "area under the ROC curve: how well the score ranks positives first",
    "average_precision": "area under the precision-recall curve (scikit-learn's average "
    "precision): ranking quality where positives are rare",
    "precision": "share of the decisions at the threshold that are positives",
    "recall": "share of the positives the threshold catches",
    "f1": "harmonic mean of precision and recall at the threshold",
    "brier": "mean squared error of the probability (calibration and sharpness)",
    "lift_top_decile": "positive rate among the top-scored 10% over the base rate",
    "positive_rate": "share of positives in the evaluated rows",
    "threshold": "the decision threshold the metrics at the threshold used",
    "card_precision_at_100": "fraud: share of the 100 cards a day with the highest scores "
    "that were compromised, averaged over the days (the Handbook's card precision@k)",
    "expected_cost": "fraud: missed frauds and false alarms priced by the settings' costs",
    "expected_cost_per_transaction": "fraud: expected_cost over the evaluated payments",
    "alert_rate": "fraud: share of payments flagged at the threshold",
    "fraud_rate": "fraud: share of frauds in the evaluated payments",
}
"""Every metric the platform reports, by its one name, with what it measures."""
