"""Monitoring: a batch against the reference stored with the model; pure, no MLflow.

reference (what registration stores) -> drift and performance (what a batch says) -> verdict
(ok | drift | degraded); calibration measures the thresholds on resampled and shifted batches.
inference_log writes and reads what serve and predict scored (partitioned parquet), the batch
`make monitor` checks when no BATCH is given.
"""
