"""Where raw data comes from: the case studies' simulators and the loaders of real files.

What ingestion reads, in the raw schemas the data contracts of `features` declare. The
served fraud world (`sources.fraud_world`) continues a simulated history for traffic and
retraining.
"""
