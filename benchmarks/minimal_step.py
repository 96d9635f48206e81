"""The least a step does: open one run in the store at argv[1] and log one param (`process_floor`)."""

import sys

import mlflow

if __name__ == "__main__":
    mlflow.set_tracking_uri(sys.argv[1])
    with mlflow.start_run():
        mlflow.log_param("step", "minimal")
