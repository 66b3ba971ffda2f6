"""Case-study walkthrough pages built from the real runs under MLOPS_HOME (`mlops report`)."""
