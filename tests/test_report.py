"""The report a user can send: made by `mosaic_run --report`, opened in a real headless browser
(Debian's chromium; .ci/run installs it). The Snakemake report is a JavaScript app: each check
opens it, lets the app show one view as a click would, and reads the rendered DOM."""

import base64
import json
import re
import shutil
import sqlite3
import subprocess
import sys
from contextlib import closing

import pytest
from conftest import BIN, ROOT, command_env

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
VALUES = ["test_loss", "train_loss", "duration", "overfit", "trainability", "slope"]


def report_variable(html, name):
    """A `var name = {...};` data block of the report."""
    return json.loads(re.search(rf"var {name} = (\{{.*?\}});\s*</script>", html, re.S).group(1))


def decoded(data_uri):
    return base64.b64decode(data_uri.split("base64,", 1)[1])


class Browser:
    """Opens the report in headless chromium; `show` is the app call a click would make."""

    def __init__(self, report, folder):
        self.report, self.folder, self.views = report, folder, 0

    def dom(self, show=None, screenshot=None):
        page = self.report
        if show is not None:
            self.views += 1
            page = self.folder / f"view{self.views}.html"
            script = f"<script>window.addEventListener('load', () => setTimeout(() => {{ {show} }}, 300));</script>"
            head, body_end, tail = self.report.read_text().rpartition("</body>")  # the page's own, the last
            page.write_text(head + script + body_end + tail)
        options = [CHROMIUM, "--headless", "--no-sandbox", "--disable-gpu", "--window-size=1400,1000",
                   f"--user-data-dir={self.folder / 'profile'}", "--virtual-time-budget=15000"]
        if screenshot:
            subprocess.run([*options, f"--screenshot={screenshot}", page.as_uri()], capture_output=True, timeout=180)
        done = subprocess.run([*options, "--dump-dom", page.as_uri()], capture_output=True, text=True, timeout=180)
        assert "<div" in done.stdout, done.stderr[-2000:]
        return done.stdout


@pytest.mark.slow
@pytest.mark.skipif(CHROMIUM is None, reason="no chromium here (apt-get install chromium; .ci/run installs it)")
def test_report_opened_in_a_browser_shows_the_ini_the_plots_and_their_captions(tmp_path):
    folder = tmp_path / "exp"
    folder.mkdir()
    for name in ("experiment.ini", "classes.py"):
        shutil.copy(ROOT / ".test" / name, folder / name)
    done = subprocess.run([str(BIN / "mosaic_run"), "experiment.ini", "database.db", "--report"], cwd=folder,
                          capture_output=True, text=True, timeout=600, env=command_env())
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-2000:]
    report = folder / "database_report.html"
    assert f"mosaic: report {report}" in done.stdout
    html = report.read_text()
    results, categories = report_variable(html, "results"), report_variable(html, "categories")
    plots = folder / "database_plots"

    # Every plot is inside the file, byte for byte, as a data URI: the report works offline.
    metaplots = categories["Dataset points"]["Comparison plots"]
    assert sorted(metaplots) == sorted(str(plots / f"metaplot_points_{value}.png") for value in VALUES)
    for path in [*metaplots, str(plots / "plotloss.pdf")]:
        assert decoded(results[path]["data_uri"]) == open(path, "rb").read()
    assert results[str(plots / "plotloss.pdf")]["mime_type"] == "application/pdf"

    browser = Browser(report, tmp_path)
    landing = browser.dom()
    assert "Mosaic compares machine-learning architectures" in landing
    for category in ("Experiment", "Loss curves", "Dataset points"):
        assert category in landing

    (ini,) = categories["Experiment"]["Other"]
    shown = browser.dom(f"app.showResultInfo({json.dumps(ini)})")
    for line in ("[PROCESS]", "class = tiny", "width = 1, 2"):
        assert line in shown

    overfit = str(plots / "metaplot_points_overfit.png")
    show_plot = (f"app.setView({{navbarMode: 'resultinfo', resultPath: {json.dumps(overfit)}, content: 'img', "
                 f"contentPath: results[{json.dumps(overfit)}].data_uri}})")
    shown = browser.dom(show_plot, screenshot=tmp_path / "overfit.png")
    images = re.findall(r'<img src="(data:image/png;[^"]*base64,[^"]+)"', shown)
    assert [decoded(uri) for uri in images] == [open(overfit, "rb").read()]
    assert "the gap between the final test loss and the final train loss" in shown  # the caption
    assert (tmp_path / "overfit.png").stat().st_size > 10_000

    pdf = str(plots / "plotloss.pdf")
    shown = browser.dom(f"app.setView({{content: 'pdf', contentPath: results[{json.dumps(pdf)}].data_uri}})")
    assert '<iframe src="data:application/pdf' in shown

    # The comparison tables and verdicts (the compare rule), where the workflow makes them.
    comparisons = [path for path in results if path.endswith("comparison.md")]
    for path in comparisons:
        text = open(path).read()
        assert decoded(results[path]["data_uri"]).decode() == text
        shown = browser.dom(f"app.showResultInfo({json.dumps(path)})")
        links = [decoded(uri).decode() for uri in re.findall(r'href="(data:[^"]*base64,[^"]+)"', shown)]
        for line in filter(None, (line.strip("#*-| ") for line in text.splitlines())):
            assert line in shown or any(line in link for link in links), line


# A sitecustomize that makes `import pygments` fail in every Python process started with it on PYTHONPATH.
WITHOUT_PYGMENTS = """
import sys


class WithoutPygments:
    def find_spec(self, name, path=None, target=None):
        if name.split(".")[0] == "pygments":
            raise ModuleNotFoundError(f"No module named {name!r}", name=name)


sys.meta_path.insert(0, WithoutPygments())
"""


def test_a_module_the_report_needs_missing_is_named_with_the_command_that_installs_it(tmp_path, monkeypatch):
    from mosaic.errors import RunError
    from mosaic.ops.report import write_report

    monkeypatch.setitem(sys.modules, "pygments", None)  # `import pygments` raises ImportError
    monkeypatch.chdir(tmp_path)
    with pytest.raises(RunError, match=r"^no report written to .*report\.html: the Python package pygments, .*"
                                       r"is not installed: install it with `.*python.* -m pip install pygments`$"):
        write_report("experiment.ini", "database.db", "plots", "report.html")
    assert not (tmp_path / "report.html").exists()


@pytest.mark.slow
def test_mosaic_run_report_without_pygments_exits_1_and_keeps_the_database_and_plots(tmp_path):
    folder = tmp_path / "exp"
    folder.mkdir()
    for name in ("experiment.ini", "classes.py"):
        shutil.copy(ROOT / ".test" / name, folder / name)
    (tmp_path / "site").mkdir()
    (tmp_path / "site" / "sitecustomize.py").write_text(WITHOUT_PYGMENTS)
    env = {**command_env(), "PYTHONPATH": str(tmp_path / "site")}
    done = subprocess.run([str(BIN / "mosaic_run"), "experiment.ini", "database.db", "--report"], cwd=folder,
                          capture_output=True, text=True, timeout=600, env=env)
    assert done.returncode == 1, done.stdout[-2000:] + done.stderr[-2000:]
    assert "mosaic_run: no report written to" in done.stderr
    assert "-m pip install pygments`" in done.stderr
    assert not (folder / "database_report.html").exists()
    with closing(sqlite3.connect(folder / "database.db")) as db:  # what it could make stays
        assert db.execute("SELECT count(*) FROM runs WHERE status = 'done'").fetchone() == (2,)
    assert (folder / "database_plots" / "plotloss.pdf").read_bytes().startswith(b"%PDF")


def test_report_of_an_experiment_never_run_is_a_one_line_error(tmp_path, monkeypatch):
    from mosaic.errors import MosaicError
    from mosaic.ops.report import default_report, write_report

    for name in ("experiment.ini", "classes.py"):
        shutil.copy(ROOT / ".test" / name, tmp_path / name)
    monkeypatch.chdir(tmp_path)
    assert default_report("out/database.db") == str(tmp_path / "out" / "database_report.html")
    with pytest.raises(MosaicError, match=r"^no report written to .*report\.html: .+") as error:
        write_report("experiment.ini", "database.db", "plots", "report.html")
    assert "\n" not in str(error.value)
    assert not (tmp_path / "report.html").exists()
