# The registry webhook receiver of the team stack (compose service `webhook`): the project itself,
# installed with its pinned dependencies, running `python -m steps.webhook` (what `make webhook` runs).
# Built from the repository root (compose: context ../..); webhook.Dockerfile.dockerignore keeps the
# local stores, venvs and data out of the build context.
FROM python:3.11-slim-bookworm
WORKDIR /app
COPY pyproject.toml README.md ./
COPY src ./src
RUN pip install --no-cache-dir .
COPY steps ./steps
COPY config ./config
ENV PYTHONUNBUFFERED=1 MLFLOW_DISABLE_TELEMETRY=true
CMD ["python", "-m", "steps.webhook"]
