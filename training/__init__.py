"""Training: datasets, candidates, evaluation, tuning, ONNX export, registration and the gate.

Each case study's training entry point (`train.train_and_register` for churn,
`fraud_train.train_fraud` for fraud) ends in `registration.register_winner`: export to
ONNX, parity, the bundle, the monitoring reference, a new registered version, and the
promotion gate (`promotion_gate`).
"""
