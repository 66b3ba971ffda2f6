"""The kernel every layer may use: settings, the case studies, names and shared contracts.

What two stages share lives here: the case-study registry (`case_studies`), the aliases
and metric names (`names`), registry moves (`registry`), the model bundle and ONNX scorer,
the training reference sample (`reference`), the prediction log (`prediction_log`) and the
latest monitoring results (`monitoring_results`). Kept light on purpose: `serving` imports
it, so no training library is imported here.
"""
