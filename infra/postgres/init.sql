-- One database per service of the stack, created by the Postgres image's entrypoint on
-- first start (an empty volume; /docker-entrypoint-initdb.d). They belong to the
-- POSTGRES_USER that runs this script. Keeping them apart lets each service migrate its
-- own schema (MLflow and Prefect run Alembic migrations on start) and be backed up or
-- dropped alone.

-- MLflow tracking server: runs, metrics, the model registry.
CREATE DATABASE mlflow;
-- Prefect server: flows, deployments, work pools, flow-run state.
CREATE DATABASE prefect;
-- Feast SQL registry: entities, feature views, feature services.
CREATE DATABASE feast;
-- The API's prediction log (MLOPS_PREDICTION_LOG_URL), read back by monitoring.
CREATE DATABASE predictions;
