"""The `mlops` command line: the root (`cli.main`) registers one module per command group.

Commands import the heavy stack (Prefect, MLflow, Feast) inside their functions, after
`cli.common.prepare()` has pointed the tools at MLOPS_HOME, so `mlops --help` is instant.
No module imports the root.
"""
