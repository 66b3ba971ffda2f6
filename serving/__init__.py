"""Serving: the prediction API (app factory, routes, predictors, online reads) and batch scoring.

`app.create_app` wires the collaborators (`collaborators`, started by `lifespan`) to the
routes (`routes/`); the predictors score without HTTP. `batch/` scores whole files
(`mlops score`) and is never imported by the API.
"""
