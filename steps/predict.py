"""Entry point `predict`: score a CSV or parquet file with the champion (or any model URI).

mlflow run . --env-manager local -e predict -P input=new.csv -P output=predictions.csv
"""

import argparse
import logging
import sys
from pathlib import Path

import mlflow
import pandas as pd
from mlflow.tracking import MlflowClient

from housing_mlops.config.loading import load_config, parse_overrides
from housing_mlops.errors import HousingError
from housing_mlops.pipeline import logs
from housing_mlops.pipeline.tracking import tracking_uri

log = logging.getLogger(__name__)

ROOT = Path(__file__).resolve().parents[1]


def read_table(path: Path) -> pd.DataFrame:
    if not path.is_file():
        raise HousingError(f"input file not found: {path.resolve()}")
    if path.suffix == ".parquet":
        return pd.read_parquet(path)
    if path.suffix == ".csv":
        return pd.read_csv(path)
    raise HousingError(f"{path.name}: expected a .csv or .parquet file")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="steps/predict.py")
    parser.add_argument("--input", required=True)
    parser.add_argument("--output", required=True)
    parser.add_argument("--model-uri", default="")
    parser.add_argument("--hydra-options", default="")
    args = parser.parse_args(argv)
    logs.configure("predict")
    try:
        cfg, _ = load_config(ROOT / "config", parse_overrides(args.hydra_options))
        mlflow.set_tracking_uri(tracking_uri(ROOT))
        name = cfg.registry.model_name
        uri = args.model_uri or f"models:/{name}@champion"
        frame = read_table(Path(args.input))
        model = mlflow.pyfunc.load_model(uri)
        version = MlflowClient().get_model_version_by_alias(name, "champion").version if not args.model_uri else uri
        features = frame[[c for c in cfg.data.features() if c in frame.columns]]
        out = frame.assign(prediction=model.predict(features), model_version=str(version))
        output = Path(args.output)
        out.to_parquet(output) if output.suffix == ".parquet" else out.to_csv(output, index=False)
    except (HousingError, mlflow.exceptions.MlflowException) as exc:
        log.error(str(exc).splitlines()[0])
        return 1
    log.info(f"{len(out)} rows scored with {uri} (version {version}) -> {args.output}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
