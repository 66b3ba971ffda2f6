"""Batch scoring (`mlops score`): a whole file scored with a registered version.

The API never imports this package: its native engine loads the training libraries.
"""
