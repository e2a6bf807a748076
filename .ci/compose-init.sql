CREATE DATABASE mlflow OWNER contrail;
