"""Helpers the tests of several folders share; fixtures live in the conftest of their folder."""
