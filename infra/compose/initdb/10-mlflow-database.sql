-- Runs once, when the postgres volume is first initialised: MLflow's tracking/registry database beside Dagster's.
CREATE DATABASE mlflow;
