"""The prediction API: FastAPI app factory, model holder and online feature reads."""
