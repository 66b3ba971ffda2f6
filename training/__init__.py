"""Training sets, models, evaluation, ONNX export and the model registry."""
