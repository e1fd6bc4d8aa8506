"""The MLflow UI, seen through a headless Chromium: a sweep is one collapsed row (its parent run)
that unfolds into its jobs, and a job's page shows its test strict F1.

``python tests/test_ui.py STORE.db OUT_DIR`` takes the screenshots in docs/mlflow-ui/ from a store.
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


def make_store(tmp_path: Path) -> tuple[str, str, list[str]]:
    """A store with one sweep: a parent (kind=sweep) and two children with their test strict F1."""
    from mlflow import MlflowClient

    uri = f"sqlite:///{tmp_path}/mlflow.db"
    client = MlflowClient(uri)
    experiment = client.create_experiment("bioner-grid", artifact_location=(tmp_path / "art").as_uri())
    parent = client.create_run(experiment, run_name="demo sweep (2 jobs)", tags={"kind": "sweep", "sweep": "demo-1"})
    children = []
    for name, f1 in (("vanilla · tiny_bert-ncbi_disease-0.0003-16-42", 0.612), ("welt · tiny_bert-ncbi_disease-0.0003-16-42", 0.645)):
        run = client.create_run(experiment, run_name=name, tags={"mlflow.parentRunId": parent.info.run_id, "sweep": "demo-1"})
        client.log_metric(run.info.run_id, "test/strict_f1", f1)
        client.set_terminated(run.info.run_id, "FINISHED")
        children.append(run.info.run_id)
    client.set_terminated(parent.info.run_id, "FINISHED")
    return uri, experiment, children


def test_runs_view_lists_the_sweep_parent_with_its_children_and_a_child_shows_its_f1(tmp_path):
    uri, experiment, children = make_store(tmp_path)
    proc, base = start_ui(uri)
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
        proc.terminate()
        proc.wait(timeout=30)


def screenshots(uri: str, out: Path) -> None:
    """The docs' screenshots from a store holding a sweep (its first experiment)."""
    from mlflow import MlflowClient

    client = MlflowClient(uri)
    experiment = client.get_experiment_by_name("bioner-grid").experiment_id
    child = next(r for r in client.search_runs([experiment]) if "mlflow.parentRunId" in r.data.tags)
    proc, base = start_ui(uri)
    driver = browser(1500, 700)
    out.mkdir(parents=True, exist_ok=True)
    try:
        driver.get(f"{base}/#/experiments/{experiment}/runs")
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
        driver.set_window_size(1500, 1100)
        driver.get(f"{base}/#/experiments/{experiment}/runs/{child.info.run_id}")
        wait_for_text(driver, "test/strict_f1")
        time.sleep(3)
        driver.save_screenshot(str(out / "run-overview.png"))
        driver.get(f"{base}/#/experiments/{experiment}/runs/{child.info.run_id}/model-metrics")
        wait_for_text(driver, "test")  # the charts come in sections by stage: dev, test, train, ...
        time.sleep(5)
        driver.save_screenshot(str(out / "run-metrics.png"))
    finally:
        driver.quit()
        proc.terminate()


if __name__ == "__main__":
    sys.path.insert(0, str(Path(__file__).resolve().parent))
    screenshots(sys.argv[1], Path(sys.argv[2]))
