"""Promotion in the MLflow UI as a person does it, in a real browser (issue 19, item 1).

`mlflow server` on loopback over a copy of the session's trained store with a second version;
headless Chromium, driven by Playwright, opens the registered model and the version page, reads
the gate's verdict in the model card, and moves `champion` with the UI's own alias editor (no
API call). The server sends the move to `make webhook`'s receiver, which records it in the champion
history and tags the version `promotion.verdict=manual-override` (the gate held v2), and the UI
shows the tag. A running `make serve` (following champion every second) answers with v2 without a
restart, and `make predict` scores with it; `make rollback` moves it back, the UI shows it and
serving follows, with no failed request on the way. A screenshot of every step is kept in the
test's folder, named in any failure.
"""

import json
import os
import re
import shutil
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pandas as pd
import pytest

from tests.conftest import MODEL, ROOT, Store, Trained
from tests.e2e.hooks import MlflowServer, Receiver, wait_for
from tests.e2e.served import frame_body, make, post_with_headers, register_again, serving

pytestmark = [pytest.mark.e2e, pytest.mark.ui]
# Debian's chromium (.ci/run installs it), else Google Chrome (GitHub's runners have it), else HOUSING_BROWSER
BROWSERS = (os.environ.get("HOUSING_BROWSER", ""), "/usr/bin/chromium", "/usr/bin/google-chrome")
# as root Chromium needs --no-sandbox; the rest keeps it off the network (offline machines refuse
# its background connections, many at a time)
BROWSER_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]


def browser() -> str:
    found = next((path for path in BROWSERS if path and Path(path).is_file()), None)
    if found is None:
        pytest.skip("no browser: apt-get install chromium (or set HOUSING_BROWSER); .ci/run installs it")
    return found


@pytest.fixture
def ui_server(trained: Trained, tmp_path: Path) -> Iterator[tuple[Store, str, Receiver]]:
    """A copy of the trained store with v2 registered (the gate holds it), served by `mlflow server`
    (webhooks to loopback allowed), and `make webhook`'s receiver listening to it."""
    store = trained.copy(tmp_path / "store")
    register_again(store)
    server = MlflowServer(store, tmp_path)
    receiver = Receiver(store, server, tmp_path)
    try:
        server.start()
        receiver.start()
        yield store, server.url, receiver
    finally:
        receiver.stop()
        server.stop()


def shows_aliases(page: Any, expected: list[str]) -> None:
    """Wait until a version's page shows exactly `expected` beside "Aliases:" (sorted, e.g.
    ['challenger', 'champion']); the page renders the label before the version's aliases arrive."""
    label = page.get_by_text("Aliases").first
    label.wait_for(timeout=30_000)
    deadline = time.monotonic() + 30
    while True:
        text = label.evaluate("e => e.parentElement.parentElement.innerText")
        shown = sorted(re.findall(r"@\s*([\w-]+)", text))
        if shown == expected or time.monotonic() > deadline:
            break
        time.sleep(0.3)
    assert shown == expected, f"the page shows aliases {shown} after 30 s, expected {expected}"


def test_a_person_moves_champion_in_the_ui_predict_follows_and_rollback_shows(
    ui_server: tuple[Store, str, Receiver], tmp_path: Path
) -> None:
    sync_api = pytest.importorskip("playwright.sync_api", reason="playwright is not installed: make install")
    store, url, receiver = ui_server
    client = store.client
    assert str(client.get_model_version_by_alias(MODEL, "champion").version) == "1"
    assert client.get_model_version(MODEL, "2").tags["promotion.verdict"] == "hold"
    shots = tmp_path / "screenshots"
    shots.mkdir()
    rows = pd.read_csv(store.env["HOUSING_DATA_SOURCE"]).drop(columns="median_house_value").head(20)
    answers: list[tuple[int, str]] = []

    def served_version(serve_url: str) -> str:
        """The version `make serve` answers with now; every answer is kept to check none failed."""
        status, _, headers = post_with_headers(serve_url, frame_body(rows))
        answers.append((status, headers.get("x-model-version", "")))
        return answers[-1][1]

    # `make serve`, following champion every second, runs through the whole test
    with (
        serving(store, hydra="serving.poll_s=1", log=tmp_path / "serve.log") as serve_url,
        sync_api.sync_playwright() as playwright,
    ):
        chromium = playwright.chromium.launch(executable_path=browser(), args=BROWSER_ARGS)
        page = chromium.new_page(viewport={"width": 1400, "height": 1000})
        step = "start"
        try:
            step = "registered model"
            page.goto(f"{url}/#/models/{MODEL}")
            page.get_by_text("Version 2").first.wait_for(timeout=30_000)
            page.screenshot(path=shots / "1-model.png")

            step = "version 2 before"
            page.goto(f"{url}/#/models/{MODEL}/versions/2")
            shows_aliases(page, ["challenger"])
            # the model card shows the gate's verdict and the hardware target to the person deciding
            page.get_by_text("Promotion gate:").first.wait_for()
            page.get_by_text("Hardware target:").first.wait_for()
            page.screenshot(path=shots / "2-version-2.png")

            step = "alias editor"
            page.get_by_title("Edit aliases").click()
            dialog = page.get_by_role("dialog")
            box = dialog.get_by_role("combobox")
            box.click()
            box.fill("champion")
            box.press("Enter")
            page.screenshot(path=shots / "3-editor.png")
            dialog.get_by_role("button", name="Save aliases").click()
            dialog.wait_for(state="hidden")
            page.reload()
            shows_aliases(page, ["challenger", "champion"])
            page.screenshot(path=shots / "4-version-2-champion.png")
            assert str(client.get_model_version_by_alias(MODEL, "champion").version) == "2"

            step = "the receiver records the move"

            def history() -> list[str]:
                return json.loads(client.get_registered_model(MODEL).tags.get("champion_history", "[]"))

            wait_for(lambda: history() == ["1", "2"], "the UI's move in champion_history")
            tags = client.get_model_version(MODEL, "2").tags
            assert tags["promotion.verdict"] == "manual-override"
            assert "does not beat champion v1" in tags["promotion.reason"]
            assert "champion moved by hand from v1 to v2" in receiver.text()
            page.reload()
            page.get_by_text("manual-override").first.wait_for(timeout=30_000)  # the version's tags show it
            page.screenshot(path=shots / "4b-version-2-manual-override.png")

            step = "make serve follows the new champion, no restart"
            wait_for(lambda: served_version(serve_url) == "2", "make serve answering with v2")

            step = "predict with the new champion"
            source, out = tmp_path / "in.csv", tmp_path / "out.csv"
            rows.to_csv(source, index=False)
            make(store, "predict", f"INPUT={source}", f"OUTPUT={out}")
            assert set(pd.read_csv(out)["model_version"].astype(str)) == {"2"}

            step = "rollback"
            make(store, "rollback")
            assert str(client.get_model_version_by_alias(MODEL, "champion").version) == "1"
            assert history() == ["1"]
            page.goto(f"{url}/#/models/{MODEL}/versions/1")
            shows_aliases(page, ["champion"])
            page.screenshot(path=shots / "5-version-1-after-rollback.png")
            page.goto(f"{url}/#/models/{MODEL}/versions/2")
            shows_aliases(page, ["challenger"])
            wait_for(lambda: served_version(serve_url) == "1", "make serve answering with v1 after the rollback")
            assert {status for status, _ in answers} == {200}, "no failed request while serving followed"
            # answers only ever moved forward: v1 until the first poll after the UI's move, v2, v1 again
            changes = [v for k, (_, v) in enumerate(answers) if k == 0 or v != answers[k - 1][1]]
            assert changes in (["1", "2", "1"], ["2", "1"]), changes
        except Exception as exc:
            page.screenshot(path=shots / "failed.png")
            kept = shutil.copytree(shots, ROOT / ".pytest-ui-screenshots", dirs_exist_ok=True)
            raise AssertionError(f"UI step '{step}' failed; screenshots in {kept}: {exc}") from exc
        finally:
            chromium.close()
