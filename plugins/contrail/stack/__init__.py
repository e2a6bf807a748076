"""The embedded local stack: AWS emulator, MLflow server and Airflow, all on loopback."""
