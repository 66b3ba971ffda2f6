"""Deployment and delivery files checked against their schemas and against the code."""
