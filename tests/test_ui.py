"""The MLflow UI, seen through a headless Chromium: a sweep is one collapsed row (its parent run)
that unfolds into its jobs, the parent's page opens on the sweep's table (its description: chosen
on dev, test shown), and a job's page shows its test strict F1. One `mlflow ui` serves every test.

``python tests/test_ui.py sqlite:///STORE.db OUT_DIR [EXPERIMENT] [UI_ADDRESS]`` takes the screenshots in
docs/mlflow-ui/ from a store holding a sweep in EXPERIMENT (``bioner-grid`` by default), on a running
`mlflow ui` at UI_ADDRESS (``http://…``), else on its own.
"""

from __future__ import annotations

import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

pytestmark = pytest.mark.slow  # `mlflow ui` takes up to a minute to start on a busy machine


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start_ui(uri: str, timeout: float = 240):
    """``mlflow ui`` on ``uri`` at a free port; (process, base address) once it answers."""
    port = free_port()
    mlflow_bin = Path(sys.executable).with_name("mlflow")
    proc = subprocess.Popen([str(mlflow_bin), "ui", "--backend-store-uri", uri, "--host", "127.0.0.1", "--port", str(port)],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    base = f"http://127.0.0.1:{port}"
    end = time.time() + timeout
    while time.time() < end:
        try:
            urllib.request.urlopen(base + "/health", timeout=5)
            return proc, base
        except OSError:
            time.sleep(2)
    proc.terminate()
    raise AssertionError(f"mlflow ui did not answer at {base} within {timeout} s")


def browser(width=1500, height=800):
    from test_report import browser as chromium

    driver = chromium()
    driver.set_window_size(width, height)
    return driver


def wait_for_text(driver, text: str, timeout: float = 60) -> str:
    end = time.time() + timeout
    while time.time() < end:
        body = driver.find_element("tag name", "body").text
        if text in body:
            return body
        time.sleep(1)
    raise AssertionError(f"{text!r} not on the page:\n{driver.find_element('tag name', 'body').text[:2000]}")


def expand_parents(driver) -> None:
    """Click the expander of every collapsed parent row of the runs table."""
    for button in driver.find_elements("css selector", ".ag-row button.du-bois-light-btn-link"):
        if not button.text.strip() and not button.get_attribute("aria-label"):  # the +/- icon of a parent row
            button.click()
            time.sleep(1)


def close_assistant(driver) -> None:
    for button in driver.find_elements("css selector", "button[aria-label='Close']"):
        button.click()


def show_columns(driver, names) -> None:
    """Tick metric (or param, tag) columns in the runs table's Columns menu: one click each for a user."""
    from selenium.webdriver.common.keys import Keys

    menu = next(b for b in driver.find_elements("css selector", "button") if b.text.strip() == "Columns")
    menu.click()
    time.sleep(2)
    for name in names:
        item = driver.find_element("xpath", f"//span[@class='du-bois-light-tree-title' and text()='{name}']")
        driver.execute_script("arguments[0].scrollIntoView({block: 'center'}); arguments[0].click()", item)
        time.sleep(1)
    driver.find_element("tag name", "body").send_keys(Keys.ESCAPE)
    time.sleep(1)


def make_store(tmp_path: Path) -> tuple[str, str, str, list[str]]:
    """A store with one sweep: a parent (kind=sweep) and two children with their dev and test strict
    F1, closed as a sweep closes its parent (``sweep.close``: its description is the sweep's table)."""
    from mlflow import MlflowClient

    from bioner_grid import sweep
    from bioner_grid.store import RunStore

    uri = f"sqlite:///{tmp_path}/mlflow.db"
    client = MlflowClient(uri)
    experiment = client.create_experiment("bioner-grid", artifact_location=(tmp_path / "art").as_uri())
    parent = client.create_run(experiment, run_name="demo sweep (2 jobs)", tags={"kind": "sweep", "sweep": "demo-1"})
    children = []
    for scheme, dev, test in (("vanilla", 0.601, 0.612), ("welt", 0.633, 0.645)):
        tags = {"mlflow.parentRunId": parent.info.run_id, "sweep": "demo-1", "model": "tiny_bert",
                "dataset": "ncbi_disease", "scheme": scheme, "lr": "0.0003", "batch_size": "16", "seed": "42"}
        run = client.create_run(experiment, run_name=f"{scheme} · tiny_bert-ncbi_disease-0.0003-16-42", tags=tags)
        client.log_metric(run.info.run_id, "dev/strict_f1", dev)
        client.log_metric(run.info.run_id, "test/strict_f1", test)
        client.set_terminated(run.info.run_id, "FINISHED")
        children.append(run.info.run_id)
    store = RunStore(uri, "bioner-grid")
    sweep.close(store, parent.info.run_id, "demo-1", {"jobs_launched": 2},
                sweep.children(store, experiment, parent.info.run_id))
    return uri, experiment, parent.info.run_id, children


@pytest.fixture(scope="module")
def ui(tmp_path_factory):
    """One store and one `mlflow ui` (up to a minute to start) for every test of this file."""
    uri, experiment, parent, children = make_store(tmp_path_factory.mktemp("ui"))
    proc, base = start_ui(uri)
    yield base, experiment, parent, children
    proc.terminate()
    proc.wait(timeout=30)


def test_runs_view_lists_the_sweep_parent_with_its_children_and_a_child_shows_its_f1(ui):
    base, experiment, _, children = ui
    driver = browser()
    try:
        driver.get(f"{base}/#/experiments/{experiment}/runs")
        wait_for_text(driver, "demo sweep (2 jobs)")
        body = driver.find_element("tag name", "body").text
        assert "vanilla · tiny_bert" not in body  # collapsed under the parent
        expand_parents(driver)
        wait_for_text(driver, "vanilla · tiny_bert")
        wait_for_text(driver, "welt · tiny_bert")
        driver.get(f"{base}/#/experiments/{experiment}/runs/{children[1]}")
        body = wait_for_text(driver, "test/strict_f1")
        assert "0.645" in body
    finally:
        driver.quit()


def test_the_parent_run_opens_on_the_sweeps_table_chosen_on_dev(ui):
    base, experiment, parent, _ = ui
    driver = browser(1500, 1000)
    try:
        driver.get(f"{base}/#/experiments/{experiment}/runs/{parent}")
        # the first lines show before "Show more": the answer
        wait_for_text(driver, "Best on dev: scheme=welt · dev strict F1 63.3, test strict F1 64.5 (1 seed)")
        # the table is a real HTML table, rendered from the description's Markdown, whole after "Show more"
        for toggle in driver.find_elements("css selector", "[data-testid='show-comment-toggle']"):
            toggle.click()
            time.sleep(1)
        header = driver.find_element("xpath", "//table[.//th[contains(., 'dev strict F1')]]")
        cells = [[c.text.strip() for c in row.find_elements("tag name", "td")] for row in header.find_elements("css selector", "tbody tr")]
        assert [c for c in cells if c] == [["welt", "63.3", "64.5", "1"], ["vanilla", "60.1", "61.2", "1"]]
    finally:
        driver.quit()


def screenshots(uri: str, out: Path, base: str | None = None, experiment_name: str = "bioner-grid") -> None:
    """The docs' screenshots from a store holding a sweep in ``experiment_name``, on a running UI
    at ``base`` or on one started here."""
    from mlflow import MlflowClient

    client = MlflowClient(uri)
    experiment = client.get_experiment_by_name(experiment_name).experiment_id
    runs = client.search_runs([experiment])
    parent = next(r for r in runs if r.data.tags.get("kind") == "sweep")
    child = next(r for r in runs if r.data.tags.get("mlflow.parentRunId") == parent.info.run_id
                 and r.info.status == "FINISHED")
    proc = None
    if base is None:
        proc, base = start_ui(uri)
    ml = "?workflowType=machine_learning"  # the UI's "Model training" layout, as the sweep's printed address
    driver = browser(1500, 700)
    out.mkdir(parents=True, exist_ok=True)
    try:
        # the parent's page: the answer and the table's first rows, as it opens; then the whole table
        driver.get(f"{base}/#/experiments/{experiment}/runs/{parent.info.run_id}{ml}")
        wait_for_text(driver, "Best on")
        close_assistant(driver)
        time.sleep(3)
        driver.save_screenshot(str(out / "sweep-parent.png"))
        for toggle in driver.find_elements("css selector", "[data-testid='show-comment-toggle']"):
            toggle.click()
        time.sleep(2)
        driver.save_screenshot(str(out / "sweep-parent-table.png"))
        driver.get(f"{base}/#/experiments/{experiment}/runs{ml}")
        wait_for_text(driver, "sweep (")
        close_assistant(driver)
        time.sleep(3)
        driver.save_screenshot(str(out / "runs-sweep-collapsed.png"))
        expand_parents(driver)
        time.sleep(3)
        driver.save_screenshot(str(out / "runs-sweep-expanded.png"))
        driver.set_window_size(2100, 700)
        show_columns(driver, ["dev/strict_f1", "test/strict_f1"])
        time.sleep(2)
        driver.save_screenshot(str(out / "runs-sweep-f1-column.png"))
        # the chart view of the unfolded sweep: its sections open on dev (the corpus figures are params)
        driver.set_window_size(1500, 1000)
        chart_mode = driver.find_element("xpath", "//label[.//input[@name='runs-view-mode' and @value='CHART']]")
        chart_mode.click()  # the sweep stays unfolded: its jobs' charts
        time.sleep(8)
        driver.save_screenshot(str(out / "charts.png"))
        driver.set_window_size(1500, 1100)
        driver.get(f"{base}/#/experiments/{experiment}/runs/{child.info.run_id}{ml}")
        wait_for_text(driver, "test/strict_f1")
        time.sleep(3)
        driver.save_screenshot(str(out / "run-overview.png"))
        driver.get(f"{base}/#/experiments/{experiment}/runs/{child.info.run_id}/model-metrics{ml}")
        wait_for_text(driver, "test")  # the charts come in sections by stage: dev, memory, test, time, train
        time.sleep(5)
        driver.save_screenshot(str(out / "run-metrics.png"))
    finally:
        driver.quit()
        if proc is not None:
            proc.terminate()


if __name__ == "__main__":
    sys.path.insert(0, str(Path(__file__).resolve().parent))
    rest = sys.argv[3:]
    screenshots(sys.argv[1], Path(sys.argv[2]), next((a for a in rest if a.startswith("http")), None),
                next((a for a in rest if not a.startswith("http")), "bioner-grid"))
