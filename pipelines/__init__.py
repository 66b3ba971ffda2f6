"""Prefect flows, the `mlops` command line, and the data sources they ingest."""
