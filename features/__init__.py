"""Data contracts, feature transforms and the Feast feature store definitions."""
