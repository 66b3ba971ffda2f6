"""Feast's feature definitions, one module a case study; `features.store` applies them."""
