"""LlamaBoard in a real headless browser: our stages and template are offered, and a gDPO run
started from the page trains.

The server is the stock LLaMA-Factory web UI started in a scratch working directory (it
writes ``llamaboard_cache/`` and ``saves/`` there); the browser is Debian's chromium driven
through chromedriver. Everything a user does happens on the page: pick the model, template,
stage and dataset, type the extra arguments, preview the command, press Start. Set
``VS2_SKIP_BROWSER=1`` to skip (as ``.ci/setup`` then installs no chromium).
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

import pytest
import yaml

from tests.support.paths import REPO

pytestmark = [pytest.mark.browser, pytest.mark.slow]

if os.environ.get("VS2_SKIP_BROWSER") == "1":
    pytest.skip("VS2_SKIP_BROWSER=1", allow_module_level=True)

GDPO_DATA = REPO / "vs2_plugin" / "assets" / "demo_data" / "gdpo"
GDPO_LABEL = "video-SALMONN 2 gDPO (DPO + lambda * NLL on ground truth)"
ALIGN_LABEL = "video-SALMONN 2 audio alignment (only the audio aligner trains)"
PAIRS, GROUND_TRUTH = "vs2_demo_gdpo_pairs_text", "vs2_demo_gdpo_gt_text"
#: LlamaBoard's warning once a model with the "default" template (here: "Custom") is picked
NO_INSTRUCT_WARNING = "non-instruct model"
#: what a user types into "Extra arguments" for a short CPU run of gDPO
EXTRA_ARGS = {
    "gdpo_lambda": 0.1,
    "gt_dataset": GROUND_TRUTH,
    "max_steps": 2,
    "per_device_train_batch_size": 1,
    "gradient_accumulation_steps": 1,
    "logging_steps": 1,
    "use_cpu": True,
    "bf16": False,
    "preprocessing_num_workers": 1,
    "report_to": "none",
}
SERVER_START_S = 180
TRAIN_S = 300
CHROMIUM_FLAGS = (
    "--headless=new",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-dev-shm-usage",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--window-size=1600,3000",
)


def _require(what: str, found) -> None:
    if not found:
        pytest.fail(
            f"{what} not found: run .ci/setup (it installs chromium, chromium-driver and selenium) "
            "or set VS2_SKIP_BROWSER=1 to skip the browser tests"
        )


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def stop_group(proc: subprocess.Popen) -> None:
    """End the process group we started (the server and the training run it spawned)."""
    if proc.poll() is not None:
        return
    for sig, wait in ((signal.SIGTERM, 15), (signal.SIGKILL, 15)):
        try:
            os.killpg(proc.pid, sig)
        except ProcessLookupError:
            return
        try:
            proc.wait(timeout=wait)
            return
        except subprocess.TimeoutExpired:
            continue


@pytest.fixture(scope="module")
def board(tmp_path_factory, venv_bin):
    """LlamaBoard on 127.0.0.1:<free port>; yields (url, working directory, server log path)."""
    workdir = tmp_path_factory.mktemp("llamaboard-browser")
    port = free_port()
    log_path = workdir / "server.log"
    env = dict(os.environ)
    env.update(
        PATH=f"{venv_bin}{os.pathsep}{env.get('PATH', '')}",  # the UI starts `llamafactory-cli train`
        OMP_NUM_THREADS="1",
        GRADIO_ANALYTICS_ENABLED="False",
        HF_HUB_OFFLINE="1",
        DISABLE_VERSION_CHECK="1",
        NO_PROXY="127.0.0.1,localhost",
        no_proxy="127.0.0.1,localhost",
    )
    code = (
        "from llamafactory.webui.interface import create_ui; "
        f"create_ui().queue().launch(server_name='127.0.0.1', server_port={port}, prevent_thread_lock=False)"
    )
    with open(log_path, "w") as log:
        proc = subprocess.Popen(
            [sys.executable, "-c", code],
            cwd=workdir,
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    url = f"http://127.0.0.1:{port}/"
    try:
        deadline = time.monotonic() + SERVER_START_S
        while True:
            if proc.poll() is not None:
                pytest.fail(f"LlamaBoard exited with {proc.returncode}:\n{log_path.read_text()[-4000:]}")
            try:
                with urllib.request.urlopen(url, timeout=5) as response:
                    if response.status == 200:
                        break
            except OSError:
                pass
            if time.monotonic() > deadline:
                pytest.fail(
                    f"LlamaBoard did not answer on {url} within {SERVER_START_S} s:\n{log_path.read_text()[-4000:]}"
                )
            time.sleep(1)
        yield url, workdir, log_path
    finally:
        stop_group(proc)


@pytest.fixture(scope="module")
def driver(tmp_path_factory):
    webdriver = _import_selenium()
    from selenium.webdriver.chrome.service import Service

    chromium = shutil.which("chromium") or shutil.which("chromium-browser")
    chromedriver = shutil.which("chromedriver")
    _require("chromium", chromium)
    _require("chromedriver", chromedriver)
    options = webdriver.ChromeOptions()
    options.binary_location = chromium
    for flag in CHROMIUM_FLAGS:
        options.add_argument(flag)
    options.add_argument(f"--user-data-dir={tempfile.mkdtemp(dir=tmp_path_factory.getbasetemp())}")
    browser = webdriver.Chrome(service=Service(chromedriver), options=options)
    try:
        browser.set_page_load_timeout(60)
        yield browser
    finally:
        browser.quit()  # also stops chromedriver


def _import_selenium():
    try:
        from selenium import webdriver
    except ImportError:
        _require("selenium (pip install selenium)", False)
    return webdriver


# ------------------------------------------------------------------------------------ page helpers
class Page:
    """The few gestures the test needs, located by the labels a user reads."""

    def __init__(self, browser):
        from selenium.common.exceptions import StaleElementReferenceException
        from selenium.webdriver.common.by import By
        from selenium.webdriver.common.keys import Keys
        from selenium.webdriver.support.ui import WebDriverWait

        self.browser, self.By, self.Keys, self.Wait = browser, By, Keys, WebDriverWait
        self.Stale = StaleElementReferenceException

    def wait(self, condition, timeout: float = 30, message: str = ""):
        """Poll ``condition`` until truthy; the page re-renders, so stale elements just mean "again"."""
        return self.Wait(self.browser, timeout, poll_frequency=0.25, ignored_exceptions=(self.Stale,)).until(
            lambda _: condition(), message
        )

    def visible(self, css: str):
        found = []
        for element in self.browser.find_elements(self.By.CSS_SELECTOR, css):
            try:
                if element.is_displayed():
                    found.append(element)
            except self.Stale:
                continue
        return found

    def field(self, label: str, inner: str):
        """The ``inner`` element of the visible block whose caption reads ``label``."""

        def find():
            for caption in self.visible('span[data-testid="block-info"]'):
                if caption.text.strip() == label:
                    found = caption.find_elements(self.By.XPATH, f"./ancestor::*[.//{inner}][1]//{inner}")
                    if found:
                        return found[0]
            return None

        return self.wait(find, message=f"no visible field labelled {label!r}")

    def type_into(self, element, text: str) -> None:
        element.click()
        element.send_keys(self.Keys.CONTROL, "a")
        element.send_keys(self.Keys.DELETE)
        element.send_keys(text)

    def set_text(self, label: str, text: str) -> None:
        self.type_into(self.field(label, "textarea"), text)

    def options(self) -> list[str]:
        return [o.get_attribute("aria-label") for o in self.visible('ul[role="listbox"] li[role="option"]')]

    def open_dropdown(self, input_element, filter_text: str = "", expect: str = "") -> list[str]:
        """Click a dropdown, optionally type to filter it; returns the options it lists.

        Some dropdowns get their choices from the server when they are clicked (LlamaBoard's
        dataset list is computed on focus), so with ``expect`` we wait until that option is in.
        """
        self.type_into(input_element, filter_text)

        def listed():
            offered = self.options()
            return offered if offered and (not expect or expect in offered) else None

        return self.wait(listed, message=f"the dropdown did not list {expect or 'any option'!r}")

    def choose(self, input_element, option: str) -> None:
        """Pick ``option`` from a dropdown (a multiselect stays open: Escape closes it)."""
        self.open_dropdown(input_element, option, expect=option)

        def click_option():
            for item in self.visible('ul[role="listbox"] li[role="option"]'):
                if item.get_attribute("aria-label") == option:
                    item.click()
                    return True
            return False

        self.wait(click_option, message=f"option {option!r} not offered")
        if self.visible('ul[role="listbox"]'):
            input_element.send_keys(self.Keys.ESCAPE)
        self.wait(lambda: not self.visible('ul[role="listbox"]'), message="the dropdown did not close")

    def dropdown(self, label: str):
        return self.wait(
            lambda: (self.visible(f'input[role="listbox"][aria-label="{label}"]') or [None])[0],
            message=f"no visible dropdown labelled {label!r}",
        )

    def button(self, text: str):
        return self.wait(
            lambda: next((b for b in self.visible("button") if b.text.strip() == text), None),
            message=f"no visible button {text!r}",
        )

    def open_accordion(self, title: str) -> None:
        header = self.wait(
            lambda: next((b for b in self.visible("button.label-wrap") if b.text.strip().startswith(title)), None),
            message=f"no section {title!r}",
        )
        header.click()

    def text(self) -> str:
        return self.browser.find_element(self.By.TAG_NAME, "body").text

    def toast(self, words: str):
        """The visible notification (gr.Info / gr.Warning) whose text contains ``words``."""
        return next((t for t in self.visible('[data-testid="toast-body"]') if words in t.text), None)

    def dismiss_toast(self, words: str, timeout: float = 60) -> None:
        """Wait for the notification containing ``words``, close it, wait until it is gone."""
        toast = self.wait(lambda: self.toast(words), timeout, f"no notification saying {words!r}")
        toast.find_element(self.By.CSS_SELECTOR, '[data-testid="toast-close"]').click()
        self.wait(lambda: self.toast(words) is None, message=f"the notification {words!r} did not close")


# ------------------------------------------------------------------------------------------ test
def logged_loss_steps(output_dir: Path) -> list[int]:
    lines = (output_dir / "trainer_log.jsonl").read_text().splitlines()
    return [entry["current_steps"] for entry in map(json.loads, filter(str.strip, lines)) if "loss" in entry]


def test_gdpo_from_llamaboard(board, driver, tiny_model_dir, tmp_path):
    url, workdir, server_log = board
    page = Page(driver)
    try:
        driver.get(url)
        page.wait(lambda: page.visible('input[role="listbox"][aria-label="Stage"]'), 60, "the page did not render")

        # the model: our model group is listed; a local directory goes in as "Custom"
        model_name = page.dropdown("Model name")
        assert "video-SALMONN-2-7B" in page.open_dropdown(model_name, "video-SALMONN")
        page.choose(model_name, "Custom")
        # Choosing a model makes the server reset "Model path" and "Chat template"; the last step of
        # that chain warns that "default" is not an instruct template. Once the warning is shown
        # the reset has landed and what we type next stays.
        page.dismiss_toast(NO_INSTRUCT_WARNING)
        page.set_text("Model path", str(tiny_model_dir))
        page.choose(page.dropdown("Chat template"), "video_salmonn2")

        # the stage: both of ours are offered
        stage = page.dropdown("Stage")
        offered = page.open_dropdown(stage)
        assert GDPO_LABEL in offered and ALIGN_LABEL in offered, offered
        page.choose(stage, GDPO_LABEL)

        # the data: gDPO trains on pairs, so only ranking datasets are listed
        page.set_text("Data dir", str(GDPO_DATA))
        dataset = page.field("Dataset", "input")
        offered = page.open_dropdown(dataset, expect=PAIRS)
        assert PAIRS in offered and GROUND_TRUTH not in offered, offered
        page.choose(dataset, PAIRS)

        page.open_accordion("Extra configurations")
        page.set_text("Extra arguments", json.dumps(EXTRA_ARGS))
        output_name = page.dropdown("Output dir").get_attribute("value")
        assert output_name, "LlamaBoard proposed no output dir"

        page.button("Preview command").click()
        page.wait(lambda: "--stage gdpo" in page.text(), 30, "the preview does not show --stage gdpo")
        preview = page.text()
        for line in (
            "--stage gdpo",
            "--template video_salmonn2",
            f"--dataset {PAIRS}",
            f"--gt_dataset {GROUND_TRUTH}",
            f"--model_name_or_path {tiny_model_dir}",
        ):
            assert line in preview, f"{line!r} missing from the preview:\n{preview}"

        page.button("Start").click()
        page.wait(
            lambda: "Finished." in page.text() or "Failed." in page.text(),
            TRAIN_S,
            f"training did not finish within {TRAIN_S} s",
        )
        shown = page.text()
        assert "Failed." not in shown, f"LlamaBoard reports a failed run:\n{shown[-4000:]}"

        out = workdir / "saves" / "Custom" / "lora" / output_name
        saved = yaml.safe_load((out / "training_args.yaml").read_text())
        assert saved["stage"] == "gdpo" and saved["template"] == "video_salmonn2"
        assert (out / "adapter_model.safetensors").is_file(), sorted(p.name for p in out.iterdir())
        assert logged_loss_steps(out) == [1, 2]
        history = json.loads((out / "trainer_state.json").read_text())["log_history"]
        assert all("gdpo/nll_loss" in entry for entry in history if "loss" in entry)
    except BaseException:
        print(f"--- server log ---\n{server_log.read_text()[-6000:]}")
        raise
    finally:
        driver.save_screenshot(str(tmp_path / "llamaboard.png"))
