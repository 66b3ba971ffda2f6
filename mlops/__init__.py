"""Shared kernel of the platform: the typed settings every stage reads.

Kept tiny on purpose: `serving` imports it, so nothing heavy may live here.
"""
