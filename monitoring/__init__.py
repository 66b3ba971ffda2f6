"""Monitoring: Evidently checks of served traffic, delayed labels, decisions, the challenger test.

`checks.run_checks` compares a window of the prediction log with the training reference;
`decisions.decide` turns a result into nothing, an alert or retraining; `labels` joins the
delayed ground truth; `challenger_test` promotes a retrained model only on live labels.
"""
