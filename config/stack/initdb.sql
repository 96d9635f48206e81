-- Run by the postgres image on the first start of an empty volume (config/stack/compose.yaml).
-- mlflow (runs, registry) is POSTGRES_DB; these two sit beside it, owned by the same role.
CREATE DATABASE optuna OWNER housing;       -- shared sweep studies: sweep.storage=postgresql://housing@host/optuna
CREATE DATABASE mlflow_auth OWNER housing;  -- basic-auth users and permissions (MLFLOW_AUTH=1)
