"""`mlops bench ...`: measurements beside the product, never imported by it.

Each module times a real path of the platform (a pipeline, the API against its peers,
batch scoring, a monitoring check, the scaled fraud flow) and returns the figures that
docs/benchmarks.md records, with the machine they were measured on.
"""
