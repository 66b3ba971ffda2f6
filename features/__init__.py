"""Features: data contracts and validation, pure transforms, and the Feast store.

The raw schemas with their quarantine rules (`churn_schema`, `fraud_schema`), the
transforms shared by training and serving (`churn_transforms`, `fraud_windows`,
`fraud_online`), and the Feast repo (`feature_repo/`, definitions only) with its store
helpers (`store`).
"""
