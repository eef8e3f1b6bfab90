-- One database per service on the compose stack's PostgreSQL, owned by the stack's user (POSTGRES_USER).
-- The postgres image runs this once, when its data volume is empty; each service migrates its own schema at start-up
-- (MLflow too). To start over: docker compose down --volumes.
CREATE DATABASE gateway;
CREATE DATABASE feedback;
CREATE DATABASE trainer;
CREATE DATABASE mlflow;
