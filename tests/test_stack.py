"""The team stack (config/stack/compose.yaml): PostgreSQL and an `mlflow server` on it. Docker is not
needed: the file is read as YAML and its server command is checked against the installed MLflow's
own `mlflow server --help`."""

import configparser
import re
import shlex
import subprocess
import sys
import tomllib
from pathlib import Path
from urllib.parse import urlsplit

import pytest
import yaml

from housing_mlops.config.loading import load_config
from tests.conftest import ROOT

STACK = ROOT / "config" / "stack"


def compose() -> dict:
    return yaml.safe_load((STACK / "compose.yaml").read_text())


def with_defaults(text: str) -> str:
    """`text` with each `${VAR:-default}` as its default: what compose runs with an empty .env."""
    return re.sub(r"\$\{\w+:-([^}]*)\}", r"\1", text)


def server_words() -> list[str]:
    """The words of the `mlflow server ...` command the mlflow service runs (after `exec`)."""
    script = compose()["services"]["mlflow"]["command"][-1]
    words = shlex.split(script)
    return words[words.index("exec") + 1 :]


def pinned(package: str) -> str:
    dependencies = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["dependencies"]
    (spec,) = [d for d in dependencies if d.startswith(f"{package}==")]
    return spec.split("==")[1]


@pytest.fixture(scope="module")
def server_help() -> str:
    done = subprocess.run(
        [str(Path(sys.prefix) / "bin" / "mlflow"), "server", "--help"], capture_output=True, text=True, timeout=120
    )
    assert done.returncode == 0, done.stderr
    return done.stdout


@pytest.mark.e2e  # runs `mlflow server --help`
def test_every_server_flag_exists_in_this_mlflow(server_help: str) -> None:
    words = server_words()
    assert words[:2] == ["mlflow", "server"]
    flags = {w for w in words if w.startswith("--")}
    # shell expansions that add a flag when their variable is set: `${MLFLOW_AUTH:+--app-name basic-auth}`
    flags |= set(re.findall(r":\+(--[a-z-]+)", " ".join(words)))
    known = set(re.findall(r"^\s+(?:-\w, )?(--[a-z-]+)", server_help, flags=re.MULTILINE))
    assert {"--backend-store-uri", "--serve-artifacts", "--artifacts-destination", "--app-name"} <= flags
    assert flags <= known, f"not options of mlflow server: {sorted(flags - known)}"
    assert "basic-auth" in compose()["services"]["mlflow"]["command"][-1]


def test_the_server_stores_runs_in_the_db_service_and_artifacts_on_a_volume() -> None:
    stack = compose()
    words = server_words()
    url = urlsplit(words[words.index("--backend-store-uri") + 1])
    assert url.scheme == "postgresql"
    assert url.hostname == "db"
    assert "db" in stack["services"]
    assert url.password is None  # the password comes from PGPASSWORD, never the command line
    db, server = stack["services"]["db"], stack["services"]["mlflow"]
    assert url.username == db["environment"]["POSTGRES_USER"]
    assert url.path == f"/{db['environment']['POSTGRES_DB']}"
    assert server["environment"]["PGPASSWORD"] == db["environment"]["POSTGRES_PASSWORD"]
    assert server["depends_on"]["db"]["condition"] == "service_healthy"
    destination = words[words.index("--artifacts-destination") + 1]
    mounts = {m.split(":")[1]: m.split(":")[0] for s in stack["services"].values() for m in s.get("volumes", [])}
    assert mounts[destination] in stack["volumes"]  # a named volume, declared
    assert mounts["/var/lib/postgresql/data"] in stack["volumes"]
    named = {m.split(":")[0] for s in stack["services"].values() for m in s.get("volumes", []) if not m.startswith(".")}
    assert named == set(stack["volumes"])
    for mount in (m for s in stack["services"].values() for m in s.get("volumes", []) if m.startswith("./")):
        assert (STACK / mount.split(":")[0]).is_file(), mount


def test_ports_are_bound_to_loopback_by_default() -> None:
    for name, service in compose()["services"].items():
        for port in service.get("ports", []):
            host, _, _ = with_defaults(port).split(":")
            assert host == "127.0.0.1", f"{name} publishes {port} beyond this machine by default"


def test_images_and_driver_are_pinned_to_the_project_versions() -> None:
    services = compose()["services"]
    assert services["mlflow"]["image"] == f"ghcr.io/mlflow/mlflow:v{pinned('mlflow')}"
    assert re.fullmatch(r"postgres:\d+\.\d+-\w+", services["db"]["image"])
    assert f'"psycopg[binary]=={pinned("psycopg")}"' in services["mlflow"]["command"][-1]


def test_every_service_has_a_healthcheck_and_the_server_runs_no_job_workers() -> None:
    services = compose()["services"]
    for name, service in services.items():
        assert service["healthcheck"]["test"], name
        assert service["restart"] == "unless-stopped", name
    assert "pg_isready" in services["db"]["healthcheck"]["test"][-1]
    assert "/health" in services["mlflow"]["healthcheck"]["test"][-1]
    assert services["mlflow"]["environment"]["MLFLOW_SERVER_ENABLE_JOB_EXECUTION"] == "false"


def test_basic_auth_keeps_its_users_in_a_database_the_stack_creates() -> None:
    stack = compose()
    server = stack["services"]["mlflow"]
    ini_path = server["environment"]["MLFLOW_AUTH_CONFIG_PATH"]
    (mount,) = [m for m in server["volumes"] if m.split(":")[1] == ini_path]
    ini = configparser.ConfigParser()
    ini.read(STACK / mount.split(":")[0])
    url = urlsplit(ini["mlflow"]["database_uri"])
    assert url.hostname == "db"
    assert url.password is None
    created = re.findall(r"CREATE DATABASE (\w+) OWNER (\w+)", (STACK / "initdb.sql").read_text())
    assert (url.path.lstrip("/"), url.username) in created
    assert ("optuna", stack["services"]["db"]["environment"]["POSTGRES_USER"]) in created
    example = (STACK / "env.example").read_text()
    for variable in re.findall(r"\$\{(\w+):", (STACK / "compose.yaml").read_text()):
        assert f"\n{variable}=" in f"\n{example}", f"{variable} is missing from env.example"


def test_the_stack_folder_is_invisible_to_hydra() -> None:
    """config/ is Hydra's: the compose file sits in a group no defaults list names."""
    _, plain = load_config(ROOT / "config", [])
    assert "stack" not in plain
    assert "stack" not in (ROOT / "config" / "config.yaml").read_text()
    assert "config/stack/.env" in (ROOT / ".gitignore").read_text().splitlines()


@pytest.mark.e2e  # runs the service's shell script
@pytest.mark.parametrize(
    ("env", "extra"),
    [
        ({}, []),
        ({"MLFLOW_AUTH": "1"}, ["--app-name", "basic-auth"]),
        ({"MLFLOW_ALLOWED_HOSTS": "mlflow.example.org"}, ["--allowed-hosts", "mlflow.example.org"]),
    ],
)
def test_the_optional_flags_appear_only_when_their_variable_is_set(env: dict[str, str], extra: list[str]) -> None:
    """The script under /bin/sh as compose hands it over (`$$` is `$`), with pip and mlflow printing their argv."""
    script = compose()["services"]["mlflow"]["command"][-1].replace("$$", "$")
    script = script.replace("pip install", "printf '%s\\n' >/dev/null").replace(
        "exec mlflow", "exec printf '%s\\n' mlflow"
    )
    done = subprocess.run(
        ["/bin/sh", "-c", script], env={"PATH": "/usr/bin:/bin", **env}, capture_output=True, text=True
    )
    assert done.returncode == 0, done.stderr
    argv = done.stdout.splitlines()
    assert argv[:2] == ["mlflow", "server"]
    words = server_words()
    always = words[: next(i for i, w in enumerate(words) if w.startswith("$"))]  # the optional ones come last
    assert argv == always + extra


def receiver_options() -> list[str]:
    """The Hydra overrides the webhook service passes to `python -m steps.webhook` (its optional ones empty)."""
    script = compose()["services"]["webhook"]["command"][-1]
    words = shlex.split(script.replace("$${WEBHOOK_HYDRA}", ""))
    assert words[:4] == ["exec", "python", "-m", "steps.webhook"]
    return shlex.split(words[words.index("--hydra-options") + 1])


def test_the_webhook_service_is_the_receiver_on_the_compose_network() -> None:
    stack = compose()
    hook = stack["services"]["webhook"]
    assert "ports" not in hook  # only the mlflow service posts to it, over the compose network
    assert urlsplit(hook["environment"]["MLFLOW_TRACKING_URI"]).hostname == "mlflow"
    assert hook["depends_on"]["mlflow"]["condition"] == "service_healthy"
    cfg, _ = load_config(ROOT / "config", receiver_options())  # the overrides are valid config
    target = urlsplit(cfg.webhook.target())
    assert (target.scheme, target.hostname, target.port) == ("http", "webhook", cfg.webhook.port)
    assert cfg.webhook.host == "0.0.0.0"
    assert f"127.0.0.1:{cfg.webhook.port}/health" in hook["healthcheck"]["test"][-1]
    assert cfg.webhook.secret_env in hook["environment"]
    assert hook["environment"][cfg.webhook.secret_env].startswith("${HOUSING_WEBHOOK_SECRET:?")
    assert cfg.webhook.dispatch.token_env in hook["environment"]


def test_the_server_may_post_over_http_to_a_private_address_and_keeps_its_secrets_readable() -> None:
    """MLflow refuses http and private/loopback webhook targets unless told (its SSRF guard), and
    encrypts stored webhook secrets with a key it draws per process unless one is given."""
    env = compose()["services"]["mlflow"]["environment"]
    assert "http" in env["MLFLOW_WEBHOOK_ALLOWED_SCHEMES"].split(",")
    assert env["MLFLOW_WEBHOOK_ALLOW_PRIVATE_IPS"] == "true"
    assert env["MLFLOW_WEBHOOK_SECRET_ENCRYPTION_KEY"].startswith("${MLFLOW_WEBHOOK_SECRET_ENCRYPTION_KEY:?")


def test_the_receiver_image_runs_the_project_and_its_build_context_leaves_local_state_out() -> None:
    build = compose()["services"]["webhook"]["build"]
    context = (STACK / build["context"]).resolve()
    assert context == ROOT
    dockerfile = context / build["dockerfile"]
    text = dockerfile.read_text()
    assert 'CMD ["python", "-m", "steps.webhook"]' in text
    for copied in re.findall(r"^COPY (\S+)", text, flags=re.MULTILINE):
        assert (context / copied).exists(), copied
    ignore = Path(f"{dockerfile}.dockerignore").read_text().splitlines()
    assert ignore[ignore.index("*")] == "*"  # everything out, then only what the image copies
    assert "config/stack/.env" in ignore
    assert "!src/" in ignore
