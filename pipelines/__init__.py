"""The Prefect flows and their tasks: the wiring of the stages, nothing else."""
