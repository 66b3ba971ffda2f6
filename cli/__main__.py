"""`python -m cli` behaves like `mlops`."""

from cli.main import app

app(prog_name="mlops")
