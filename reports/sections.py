"""The sections of a walkthrough page, one function per section, each read from the evidence.

Every number in a section's text and plot is computed from the champion's evidence
(`reports.evidence.ModelEvidence`); `reports.page` puts them together into the page.
The threshold section draws the rule the case study declares (`mlops.case_studies`):
the expected cost of each threshold, or precision, recall and F1.
"""

from __future__ import annotations

import html
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any, Final

import numpy as np

from mlops.case_studies import CASE_STUDIES
from mlops.settings import Settings
from reports.blocks import Section, inline_svg, sign_colour
from reports.evidence import ModelEvidence

if TYPE_CHECKING:
    from matplotlib.axes import Axes

__all__ = ["TOP_CONTRIBUTIONS", "TOP_FEATURES", "page_sections"]

TOP_FEATURES: Final = 15
TOP_CONTRIBUTIONS: Final = 8


def page_sections(evidence: ModelEvidence, settings: Settings) -> Iterator[Section]:
    """The page's sections in reading order: ranking, threshold and decisions, what the
    model leans on, explained rows, then drift and latency in service."""
    yield _roc(evidence)
    yield _precision_recall(evidence)
    yield _calibration(evidence)
    yield _threshold(evidence)
    yield _confusion(evidence)
    yield _importance(evidence)
    for number, _ in enumerate(evidence.explanations, start=1):
        yield _explanation(evidence, number)
    yield _drift(evidence, settings)
    yield _latency(evidence, settings)


def _roc(evidence: ModelEvidence) -> Section:
    from sklearn.metrics import roc_auc_score, roc_curve

    y, s = evidence.labels, evidence.scores
    fpr, tpr, _ = roc_curve(y, s)
    whole = evidence.bundle.meta.test_metrics.get("roc_auc")

    def draw(ax: Axes) -> None:
        ax.plot(fpr, tpr, label="model")
        ax.plot([0, 1], [0, 1], linestyle="--", color="grey", label="chance")
        ax.set(xlabel="false positive rate", ylabel="true positive rate")
        ax.legend(loc="lower right")

    return Section(
        "roc",
        "Ranking: ROC curve",
        [
            f"How well the score ranks positives above negatives at every threshold. On these "
            f"rows the area under the curve is {roc_auc_score(y, s):.4f}"
            + (f" (whole test window: {whole:.4f})" if whole is not None else "")
            + ". ROC-AUC ignores the base rate, so with rare positives it flatters: read it "
            "with the precision-recall curve beside it."
        ],
        inline_svg("roc", draw),
        len(fpr),
    )


def _precision_recall(evidence: ModelEvidence) -> Section:
    from sklearn.metrics import average_precision_score, precision_recall_curve

    y, s = evidence.labels, evidence.scores
    precision, recall, _ = precision_recall_curve(y, s)
    base_rate = float(np.mean(y))

    def draw(ax: Axes) -> None:
        ax.plot(recall, precision, label="model")
        ax.axhline(base_rate, linestyle="--", color="grey", label=f"base rate {base_rate:.3f}")
        ax.set(xlabel="recall", ylabel="precision")
        ax.legend(loc="upper right")

    return Section(
        "precision-recall",
        "Precision and recall",
        [
            f"Of the rows flagged, how many are positives (precision), against how many "
            f"positives are flagged (recall). Average precision on these rows is "
            f"{average_precision_score(y, s):.4f}, against a base rate of {base_rate:.4f}: a "
            "model that guessed would draw the dashed line. Under class imbalance this is the "
            "curve that moves when the model gets better at what matters."
        ],
        inline_svg("precision-recall", draw),
        len(recall),
    )


def _calibration(evidence: ModelEvidence) -> Section:
    from sklearn.calibration import calibration_curve
    from sklearn.metrics import brier_score_loss

    y, s = evidence.labels, evidence.scores
    observed, predicted = calibration_curve(y, s, n_bins=10, strategy="quantile")

    def draw(ax: Axes) -> None:
        ax.plot(predicted, observed, marker="o", label="model")
        ax.plot([0, 1], [0, 1], linestyle="--", color="grey", label="perfectly calibrated")
        ax.set(xlabel="mean predicted probability", ylabel="observed positive rate")
        ax.legend(loc="upper left")

    return Section(
        "calibration",
        "Calibration: can the score be read as a probability?",
        [
            f"The rows are cut into {len(predicted)} bins of equal size by score; each point is "
            "a bin's mean score against its share of positives. Points on the diagonal mean a "
            f"score of 0.3 really is a 30% risk. Brier score on these rows: "
            f"{brier_score_loss(y, s):.4f} (lower is better). A model trained with class "
            "weights or resampling scores above the true rate by design; its threshold is "
            "chosen on those scores, so decisions stay right even when the curve bends."
        ],
        inline_svg("calibration", draw),
        len(predicted),
    )


def _threshold(evidence: ModelEvidence) -> Section:
    """The section of the rule that chose the case study's threshold."""
    rule = CASE_STUDIES[evidence.case_study].threshold_rule
    grid = np.unique(np.quantile(evidence.scores, np.linspace(0.0, 1.0, 101)))
    if rule == "min_expected_cost":
        return _threshold_by_cost(evidence, grid)
    return _threshold_by_f1(evidence, grid)


def _threshold_by_cost(evidence: ModelEvidence, grid: np.ndarray) -> Section:
    from training.fraud_metrics import expected_cost

    if evidence.costs is None:
        raise ValueError(f"the {evidence.case_study} threshold is chosen by cost: no costs given")
    y, s = evidence.labels, evidence.scores
    chosen = evidence.bundle.meta.threshold
    missed_cost, alarm_cost = evidence.costs
    costs = np.array(
        [
            expected_cost(y, s, t, cost_missed_fraud=missed_cost, cost_false_alarm=alarm_cost)
            for t in grid
        ]
    )
    best = float(grid[int(np.argmin(costs))])

    def draw(ax: Axes) -> None:
        ax.plot(grid, costs, label="expected cost on these rows")
        ax.axvline(chosen, color="grey", linestyle="--", label=f"chosen {chosen:.3f}")
        ax.set(xlabel="threshold", ylabel="cost", xscale="linear")
        ax.legend(loc="upper right")

    paragraphs = [
        f"Each threshold's cost on these rows: {missed_cost:g} per missed fraud plus "
        f"{alarm_cost:g} per false alarm (<code>MLOPS_FRAUD_COST_MISSED_FRAUD</code>, "
        "<code>MLOPS_FRAUD_COST_FALSE_ALARM</code>). The dashed line is the threshold the "
        f"pipeline chose, {chosen:.4f}, by the same cost on the prequential validation "
        f"scores, never on the test week; on the test rows the cheapest would have been "
        f"{best:.4f}. The gap is what choosing without peeking costs."
    ]
    svg = inline_svg("threshold", draw)
    return Section("threshold", "Threshold by cost", paragraphs, svg, len(grid))


def _threshold_by_f1(evidence: ModelEvidence, grid: np.ndarray) -> Section:
    from sklearn.metrics import f1_score, precision_score, recall_score

    y, s = evidence.labels, evidence.scores
    chosen = evidence.bundle.meta.threshold
    curves = {
        "precision": [precision_score(y, s >= t, zero_division=0) for t in grid],
        "recall": [recall_score(y, s >= t, zero_division=0) for t in grid],
        "F1": [f1_score(y, s >= t, zero_division=0) for t in grid],
    }

    def draw(ax: Axes) -> None:
        for label, values in curves.items():
            ax.plot(grid, values, label=label)
        ax.axvline(chosen, color="grey", linestyle="--", label=f"chosen {chosen:.3f}")
        ax.set(xlabel="threshold", ylabel="on these rows")
        ax.legend(loc="best")

    paragraphs = [
        "The churn case study has no declared costs, so its threshold maximises F1 on the "
        f"out-of-fold scores of cross-validation (never on the test rows): {chosen:.4f}, the "
        "dashed line. Moving it trades recall (churners reached) for precision (offers wasted). "
        "With a retention offer's cost and a churner's value, the fraud page's cost curve is "
        "the one to draw instead."
    ]
    return Section(
        "threshold",
        "Threshold: precision, recall and F1",
        paragraphs,
        inline_svg("threshold", draw),
        len(grid) * len(curves),
    )


def _confusion(evidence: ModelEvidence) -> Section:
    y, s = evidence.labels, evidence.scores
    threshold = evidence.bundle.meta.threshold
    flagged = s >= threshold
    cells = np.array(
        [
            [np.sum((y == 0) & ~flagged), np.sum((y == 0) & flagged)],
            [np.sum((y == 1) & ~flagged), np.sum((y == 1) & flagged)],
        ]
    )

    def draw(ax: Axes) -> None:
        ax.pcolormesh(np.log1p(cells), cmap="Blues")
        for (row, col), count in np.ndenumerate(cells):
            ax.text(col + 0.5, row + 0.5, f"{count:,}", ha="center", va="center", fontsize=14)
        ax.set_xticks([0.5, 1.5], ["not flagged", "flagged"])
        ax.set_yticks([0.5, 1.5], ["negative", "positive"])
        ax.invert_yaxis()
        ax.set(xlabel="decision at the threshold", ylabel="label")

    (tn, fp), (fn, tp) = cells.tolist()
    return Section(
        "confusion",
        f"Decisions at the threshold {threshold:.4f}",
        [
            f"Of {int(cells.sum()):,} rows, {tp:,} positives were flagged and {fn:,} missed; "
            f"{fp:,} negatives were flagged by mistake and {tn:,} correctly left alone. "
            f"Precision {tp / max(tp + fp, 1):.3f}, recall {tp / max(tp + fn, 1):.3f} on these "
            "rows. These four counts are what the business pays for; the curves above are "
            "how the threshold that produced them was found."
        ],
        inline_svg("confusion", draw, size=(4.6, 3.6)),
        int(cells.size),
    )


def _importance(evidence: ModelEvidence) -> Section:
    top = sorted(evidence.importance.items(), key=lambda kv: abs(kv[1]), reverse=True)
    top = top[:TOP_FEATURES]

    def draw(ax: Axes) -> None:
        names = [name for name, _ in reversed(top)]
        values = [value for _, value in reversed(top)]
        signed = any(v < 0 for v in values)  # coefficients have a direction, gain has none
        ax.barh(names, values, color=[sign_colour(v) for v in values] if signed else "#566573")
        ax.set(xlabel=evidence.importance_kind)

    leader, value = top[0]
    return Section(
        "importance",
        "Which features the model leans on",
        [
            f"The {len(top)} largest of {len(evidence.importance)} inputs by "
            f"{evidence.importance_kind}. The first is <code>{html.escape(leader)}</code> "
            f"({value:.4f}). For a linear model the sign is the direction (red raises the "
            "risk, blue lowers it); gain has no sign, so read the direction from the per-row "
            "contributions below. A feature that leads suspiciously (a value only known "
            "after the outcome) is where leakage shows first."
        ],
        inline_svg("importance", draw, size=(6.4, 5.0)),
        len(top),
    )


def _explanation(evidence: ModelEvidence, number: int) -> Section:
    example = evidence.explanations[number - 1]
    top = sorted(example.contributions.items(), key=lambda kv: abs(kv[1]), reverse=True)
    shown = top[:TOP_CONTRIBUTIONS]
    rest = sum(value for _, value in top[TOP_CONTRIBUTIONS:])

    def draw(ax: Axes) -> None:
        names = [*(name for name, _ in shown), f"{len(top) - len(shown)} others", "base value"]
        values = [*(value for _, value in shown), rest, example.bias]
        ax.barh(names[::-1], values[::-1], color=[sign_colour(v) for v in values[::-1]])
        ax.axvline(0, color="black", linewidth=0.8)
        ax.set(xlabel="contribution to the log-odds")

    outcome = "positive" if example.label == 1 else "negative"
    values = ", ".join(
        f"<code>{html.escape(name)}</code> = {example.values[name]:.4g}"
        for name, _ in shown[:3]
        if name in example.values
    )
    return Section(
        f"explanation-{number}",
        f"One prediction explained ({number}): {example.why_chosen}",
        [
            f"A test row labelled {outcome}, scored {example.score:.4f} (threshold "
            f"{evidence.bundle.meta.threshold:.4f}). Base value {example.bias:+.3f} plus the "
            f"contributions gives log-odds {example.log_odds:+.3f}, probability "
            f"{1 / (1 + np.exp(-example.log_odds)):.4f}: the served score, up to the ONNX "
            f"export's rounding. Method: {html.escape(evidence.contributions.method)}."
            + (f" Its leading inputs: {values}." if values else "")
        ],
        inline_svg(f"explanation-{number}", draw, size=(6.4, 3.8)),
        len(shown) + 2,
    )


def _no_drift_yet(evidence: ModelEvidence) -> Section:
    return Section(
        "drift",
        "Drift over time",
        [
            f"No monitoring check of <code>{evidence.bundle.name}</code> has run in this "
            "MLOPS_HOME yet, so there is no drift to show. Serve the model (<code>mlops "
            f"serve</code>), send traffic (<code>mlops simulate traffic --model "
            f"{evidence.case_study} --scenario ...</code>), run <code>mlops monitor "
            f"{evidence.case_study}</code>, then build this page again."
        ],
    )


def _drift(evidence: ModelEvidence, settings: Settings) -> Section:
    if not evidence.drift:
        return _no_drift_yet(evidence)
    name = evidence.bundle.name
    points = evidence.drift
    times = [p.decided_at.to_pydatetime() for p in points]
    shares = [np.nan if p.drift_share is None else p.drift_share for p in points]
    scores = [
        np.nan if p.prediction_drift_score is None else p.prediction_drift_score for p in points
    ]

    def draw(ax: Axes) -> None:
        ax.plot(times, shares, marker="o", label="share of drifted features")
        ax.plot(times, scores, marker="s", label="prediction drift score")
        ax.axhline(
            settings.monitor_drift_share_alert, color="orange", linestyle="--", label="alert share"
        )
        ax.axhline(
            settings.monitor_drift_share_retrain, color="red", linestyle="--", label="retrain share"
        )
        ax.set(ylabel="drift", xlabel="check time (UTC)")
        ax.legend(loc="best")
        ax.figure.autofmt_xdate()

    actions = ", ".join(
        f"{p.decided_at:%Y-%m-%d %H:%M} v{p.model_version}: {html.escape(p.action)}"
        for p in points[-5:]
    )
    return Section(
        "drift",
        "Drift over time",
        [
            f"{len(points)} monitoring checks of <code>{name}</code> (from "
            "<code>mlops monitor</code>'s decision log): the share of features whose served "
            "distribution moved from the training reference, and the drift score of the "
            "model's own output. Drift is a change in the inputs; decay is a drop in quality, "
            "which needs labels and so arrives late. The dashed lines are the declared alert "
            f"and retrain shares ({settings.monitor_drift_share_alert:g}, "
            f"{settings.monitor_drift_share_retrain:g}). Latest decisions: {actions}."
        ],
        inline_svg("drift", draw),
        2 * len(points),
    )


def _latency(evidence: ModelEvidence, settings: Settings) -> Section:
    latency = evidence.latency
    timings = latency.timings_ms

    def draw(ax: Axes) -> None:
        # Log-spaced bins: the rare slow call (a context switch) stays visible beside the bulk.
        ax.hist(timings, bins=np.geomspace(timings.min(), timings.max(), 40).tolist())
        ax.set_xscale("log")
        for value, label, colour in (
            (latency.p50_ms, "p50", "black"),
            (latency.p99_ms, "p99", "red"),
        ):
            ax.axvline(value, color=colour, linestyle="--", label=f"{label} {_duration(value)}")
        ax.set(xlabel="ms per single-row call", ylabel="calls")
        ax.legend(loc="upper right")

    paragraphs = [
        f"{len(timings):,} single-row calls of the champion's ONNX model, timed on this machine "
        f"when the page was built, one onnxruntime thread as the API runs it: p50 "
        f"{_duration(latency.p50_ms)}, p99 {_duration(latency.p99_ms)}. This is the model "
        "alone; a "
        "request adds validation, the online feature read and the prediction log. The "
        "promotion gate holds a challenger's p99 to "
        f"{settings.promotion_latency_budget_ms:g} ms "
        "(<code>MLOPS_PROMOTION_LATENCY_BUDGET_MS</code>)."
    ]
    bench = evidence.serving_bench
    if bench is not None:
        ours = bench["servers"]["ours"]
        model = html.escape(str(bench.get("model", "")))
        machine = _machine(bench.get("machine"), bench.get("load_avg_before"))
        paragraphs.append(
            f"The API over HTTP, from <code>mlops bench serving --json</code> ({model}"
            f", wrk on loopback): at 1 connection p50 {ours['c1']['p50_ms']:.2f} ms, p99 "
            f"{ours['c1']['p99_ms']:.2f} ms, {ours['c1']['rps']:,.0f} req/s; at 16 "
            f"connections p50 {ours['c16']['p50_ms']:.2f} ms, p99 {ours['c16']['p99_ms']:.2f} "
            f"ms, {ours['c16']['rps']:,.0f} req/s. Machine: {machine}."
        )
    else:
        paragraphs.append(
            "No API benchmark on this home yet: <code>mlops bench serving</code> measures the "
            "API over HTTP and saves its figures where this page finds them (or pass a saved "
            "<code>--json</code> line with <code>--serving-bench FILE</code>)."
        )
    return Section(
        "latency", "Serving latency", paragraphs, inline_svg("latency", draw), len(timings)
    )


def _machine(machine: Any, load: Any) -> str:
    """`mlops bench serving`'s machine figures as a phrase: cores, memory, load."""
    if not isinstance(machine, dict):
        return "not recorded"
    parts = [f"{machine.get('cpus', '?')} cores", f"{machine.get('memory_gib', '?')} GiB"]
    if isinstance(load, int | float):
        parts.append(f"load average {load:.2f} at the start")
    return html.escape(", ".join(parts))


def _duration(ms: float) -> str:
    """Milliseconds, or microseconds below one: a tree model scores a row in a few µs."""
    return f"{ms:.3f} ms" if ms >= 1 else f"{ms * 1000:.1f} µs"
