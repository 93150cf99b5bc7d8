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
from html import unescape

import pytest

from tests.fakes import BIN, ROOT, command_env, hold_folder_lock

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


# Shows every image of the report as its eye button would, one after the other, and writes what the browser
# loaded ({path: naturalWidth}; 0: not loaded, -1: no image shown) into the page, for --dump-dom to read.
CHECK_IMAGES = """
(async () => {
    const loaded = {};
    for (const [path, entry] of Object.entries(results)) {
        if (!entry.mime_type.startsWith("image/")) continue;
        app.setView({navbarMode: "resultinfo", resultPath: path, content: "img", contentPath: entry.data_uri});
        await new Promise(done => setTimeout(done, 200));
        const image = [...document.images].find(image => image.src === entry.data_uri);
        for (let wait = 0; image && !image.complete && wait < 50; wait++) {  // (decode() never settles here)
            await new Promise(done => setTimeout(done, 100));
        }
        loaded[path] = image ? image.naturalWidth : -1;
    }
    const out = document.createElement("pre");
    out.id = "images-loaded";
    out.textContent = JSON.stringify(loaded);
    document.body.appendChild(out);
})();
"""


@pytest.mark.slow
@pytest.mark.skipif(CHROMIUM is None, reason="no chromium here (apt-get install chromium; .ci/run installs it)")
def test_report_opened_in_a_browser_shows_the_verdicts_the_ini_and_every_plot(tmp_path):
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

    # Every plot is inside the file, byte for byte, as a data URI: the report works offline. The loss curves
    # are there as PNG pages (every browser shows them) beside the PDF (to download).
    metaplots = categories["Dataset points"]["Comparison plots"]
    assert sorted(metaplots) == sorted(str(plots / f"metaplot_points_{value}.png") for value in VALUES)
    pages = sorted(str(page) for page in (plots / "plotloss_pages").glob("page_*.png"))
    assert pages == [str(plots / "plotloss_pages" / "page_1.png")]  # 2 runs: one page of 3 x 3
    assert sorted(categories["Loss curves"]["Other"]) == sorted([*pages, str(plots / "plotloss.pdf")])
    for path in [*metaplots, *pages, str(plots / "plotloss.pdf")]:
        assert decoded(results[path]["data_uri"]) == open(path, "rb").read()
    assert results[str(plots / "plotloss.pdf")]["mime_type"] == "application/pdf"

    # The first page: the verdicts first, then what the report holds.
    browser = Browser(report, tmp_path)
    landing = unescape(browser.dom(screenshot=tmp_path / "first_page.png"))
    with closing(sqlite3.connect(folder / "database.db")) as db:
        verdicts = [verdict for (verdict,) in db.execute("SELECT verdict FROM verdicts")]
    assert verdicts
    for verdict in verdicts:
        assert 0 <= landing.find(verdict) < landing.index("Mosaic compares machine-learning architectures")
    for category in ("Experiment", "Loss curves", "Dataset points", "Verdicts"):
        assert category in landing

    (ini,) = categories["Experiment"]["Other"]
    shown = browser.dom(f"app.showResultInfo({json.dumps(ini)})")
    for line in ("[PROCESS]", "class = tiny", "width = 1, 2"):
        assert line in shown

    # Every image of the report, shown as its button shows it, is loaded by the browser.
    images = [path for path, entry in results.items() if entry["mime_type"].startswith("image/")]
    assert set(images) >= {*metaplots, *pages, str(plots / "values.png"), str(plots / "curves.png")}
    shown = browser.dom(CHECK_IMAGES)
    loaded = json.loads(unescape(re.search(r'<pre id="images-loaded">(.*?)</pre>', shown, re.S).group(1)))
    assert sorted(loaded) == sorted(images)
    assert {path: width for path, width in loaded.items() if width <= 0} == {}

    # The loss curves' first page as a user sees it (the screenshot stays in tmp_path).
    show_page = (f"app.setView({{navbarMode: 'resultinfo', resultPath: {json.dumps(pages[0])}, content: 'img', "
                 f"contentPath: results[{json.dumps(pages[0])}].data_uri}})")
    shown = browser.dom(show_page, screenshot=tmp_path / "loss_curves_page_1.png")
    assert [decoded(uri) for uri in re.findall(r'<img src="(data:image/png;[^"]*base64,[^"]+)"', shown)] == [
        open(pages[0], "rb").read()]
    assert "Page 1 of the loss curves" in shown  # the caption
    assert (tmp_path / "loss_curves_page_1.png").stat().st_size > 10_000

    overfit = str(plots / "metaplot_points_overfit.png")
    shown = browser.dom(f"app.showResultInfo({json.dumps(overfit)})")
    assert "the absolute gap between the final test and train losses divided by" in shown  # the caption

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
    from mosaic.ops.paths import default_report
    from mosaic.ops.report import write_report

    for name in ("experiment.ini", "classes.py"):
        shutil.copy(ROOT / ".test" / name, tmp_path / name)
    monkeypatch.chdir(tmp_path)
    assert default_report("out/database.db") == str(tmp_path / "out" / "database_report.html")
    with pytest.raises(MosaicError, match=r"^no report written to .*report\.html: .+") as error:
        write_report("experiment.ini", "database.db", "plots", "report.html")
    assert "\n" not in str(error.value)
    assert not (tmp_path / "report.html").exists()


def test_a_report_while_another_command_holds_the_folder_is_refused_and_starts_no_snakemake(tmp_path, monkeypatch):
    """The report is a Snakemake invocation like any other: through the runner, under the folder's session lock."""
    from mosaic.errors import BusyError, exit_code
    from mosaic.ops import report

    for name in ("experiment.ini", "classes.py"):
        shutil.copy(ROOT / ".test" / name, tmp_path / name)
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(report, "missing_modules", lambda: [])
    started = []
    monkeypatch.setattr(subprocess, "run", lambda command, **options: started.append(command))
    lock = hold_folder_lock(tmp_path)
    try:
        with pytest.raises(BusyError, match="another mosaic_run is running in this folder") as refused:
            report.write_report("experiment.ini", "database.db", "plots", "report.html")
    finally:
        lock.close()
    assert exit_code(refused.value) == 3 and started == []
    assert not (tmp_path / "report.html").exists()
