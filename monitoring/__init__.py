"""Drift and quality reports on served and training data (Evidently)."""
