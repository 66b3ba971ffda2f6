-- One database per service of the stack, each owned by a role of its own that can reach
-- nothing else. Run by the Postgres image's entrypoint on first start (an empty volume;
-- /docker-entrypoint-initdb.d) as `psql -v ON_ERROR_STOP=1 -f init.sql`, as the
-- POSTGRES_USER superuser, which no service uses.
--
-- Each role is named like its database and logs in with POSTGRES_<DATABASE>_PASSWORD from
-- the environment (compose gives the postgres service and the role's users the same
-- variable). A missing, empty or placeholder (change-me...) password stops the script
-- before anything is made. Each role owns its database (it runs its own migrations:
-- MLflow and Prefect run Alembic on start, and the owner may create Prefect's pg_trgm,
-- a trusted extension), has no other attribute (not superuser, no CREATEDB, no
-- CREATEROLE), and PUBLIC loses CONNECT on the four databases, so a role cannot open
-- another's. Keeping them apart also lets each be backed up or dropped alone.
--
-- `psql -v prefix=x_` prefixes every role and database name: tests/infra/test_postgres_roles.py
-- runs this script on a shared server that way, then drops what it made.
-- Requires psql 15 or later (\getenv); the image's is 16.

\if :{?prefix}
\else
\set prefix ''
\endif

\set mlflow :prefix mlflow
\set prefect :prefix prefect
\set feast :prefix feast
\set predictions :prefix predictions

\getenv mlflow_password POSTGRES_MLFLOW_PASSWORD
\getenv prefect_password POSTGRES_PREFECT_PASSWORD
\getenv feast_password POSTGRES_FEAST_PASSWORD
\getenv predictions_password POSTGRES_PREDICTIONS_PASSWORD
\if :{?mlflow_password}
\else
\set mlflow_password ''
\endif
\if :{?prefect_password}
\else
\set prefect_password ''
\endif
\if :{?feast_password}
\else
\set feast_password ''
\endif
\if :{?predictions_password}
\else
\set predictions_password ''
\endif

-- The passwords, by variable, for the check below (psql variables do not reach a DO block).
SELECT set_config('mlops.init_passwords', json_build_object(
    'POSTGRES_MLFLOW_PASSWORD', :'mlflow_password',
    'POSTGRES_PREFECT_PASSWORD', :'prefect_password',
    'POSTGRES_FEAST_PASSWORD', :'feast_password',
    'POSTGRES_PREDICTIONS_PASSWORD', :'predictions_password'
)::text, false) AS checked_passwords \gset

-- The prefixes are mlops.settings.PLACEHOLDER_PREFIXES (tests/infra/test_postgres_roles.py
-- tries each).
DO $$
DECLARE
    refused text;
BEGIN
    SELECT string_agg(
        key || ' is ' || CASE WHEN btrim(value) = '' THEN 'empty'
                              ELSE 'a placeholder (change-me..., replace-with...)' END,
        '; ' ORDER BY key)
    INTO refused
    FROM json_each_text(current_setting('mlops.init_passwords')::json)
    WHERE btrim(value) = ''
       OR lower(btrim(value)) LIKE ANY (ARRAY['change-me%', 'changeme%', 'replace-with%']);
    PERFORM set_config('mlops.init_passwords', '', false);
    IF refused IS NOT NULL THEN
        RAISE EXCEPTION 'the stack''s database roles refuse their passwords: %', refused
            USING HINT = 'set secrets of your own in .env (README.md, "Stack")';
    END IF;
END
$$;

-- MLflow tracking server: runs, metrics, the model registry.
CREATE ROLE :"mlflow" LOGIN PASSWORD :'mlflow_password';
CREATE DATABASE :"mlflow" OWNER :"mlflow";
REVOKE ALL ON DATABASE :"mlflow" FROM PUBLIC;

-- Prefect server: flows, deployments, work pools, flow-run state.
CREATE ROLE :"prefect" LOGIN PASSWORD :'prefect_password';
CREATE DATABASE :"prefect" OWNER :"prefect";
REVOKE ALL ON DATABASE :"prefect" FROM PUBLIC;

-- Feast SQL registry (MLOPS_FEAST_REGISTRY_URL): entities, feature views, feature services.
CREATE ROLE :"feast" LOGIN PASSWORD :'feast_password';
CREATE DATABASE :"feast" OWNER :"feast";
REVOKE ALL ON DATABASE :"feast" FROM PUBLIC;

-- The API's prediction log (MLOPS_PREDICTION_LOG_URL), read back by monitoring.
CREATE ROLE :"predictions" LOGIN PASSWORD :'predictions_password';
CREATE DATABASE :"predictions" OWNER :"predictions";
REVOKE ALL ON DATABASE :"predictions" FROM PUBLIC;
