"""The book builds with Sphinx warnings treated as errors, and its pages render in a browser:
figures, tables, the claims tables, and maths typeset by the MathJax bundled with the book."""
import functools
import http.server
import re
import shutil
import socketserver
import subprocess
import sys
import threading
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
CHAPTERS = sorted(p.stem for p in (ROOT / "notebooks").glob("*.ipynb"))
BROWSERS = ("chromium", "chromium-browser", "google-chrome")


@pytest.fixture(scope="module")
def html(tmp_path_factory):
    out = tmp_path_factory.mktemp("book")
    jb = Path(sys.executable).parent / "jupyter-book"
    cmd = [str(jb if jb.exists() else shutil.which("jupyter-book")), "build", str(ROOT),
           "--path-output", str(out), "-W", "-n", "--keep-going", "--builder", "html"]
    run = subprocess.run(cmd, capture_output=True, text=True, timeout=900)
    assert run.returncode == 0, (run.stdout + run.stderr)[-6000:]
    return out / "_build" / "html"


def test_book_builds_without_warnings(html):
    assert (html / "index.html").exists()
    chapter = (html / "notebooks" / "01_benchmark_and_methods.html").read_text()
    assert "The benchmark and the methods" in chapter and "<img" in chapter


def test_the_book_reads_offline(html):
    """MathJax comes with the book, not from a CDN, and no page loads the widget manager."""
    assert (html / "_static" / "mathjax" / "tex-chtml.js").exists()
    for name in CHAPTERS:
        page = (html / "notebooks" / f"{name}.html").read_text()
        scripts = re.findall(r'<script[^>]+src="([^"]+)"', page)
        assert any("mathjax/tex-chtml.js" in s for s in scripts), name
        remote = [s for s in scripts if s.startswith(("http:", "https:", "//"))]
        assert not remote, (name, remote)


@pytest.fixture(scope="module")
def served(html):
    class Quiet(http.server.SimpleHTTPRequestHandler):
        def log_message(self, *args):
            pass

    handler = functools.partial(Quiet, directory=str(html))
    with socketserver.TCPServer(("127.0.0.1", 0), handler) as httpd:
        threading.Thread(target=httpd.serve_forever, daemon=True).start()
        yield f"http://127.0.0.1:{httpd.server_address[1]}"
        httpd.shutdown()


@pytest.mark.parametrize("name", CHAPTERS)
def test_each_chapter_renders_in_a_browser(served, name):
    browser = next((shutil.which(b) for b in BROWSERS if shutil.which(b)), None)
    if browser is None:
        pytest.skip("no headless Chromium: install Debian's package (apt-get install chromium) to run the browser test")
    run = subprocess.run([browser, "--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                          "--enable-logging=stderr", "--v=0", "--virtual-time-budget=20000", "--dump-dom",
                          f"{served}/notebooks/{name}.html"], capture_output=True, text=True, timeout=180)
    dom = run.stdout
    assert run.returncode == 0 and "</html>" in dom, run.stderr[-2000:]
    visible = re.sub(r"<(script|style|pre)\b.*?</\1>", "", dom, flags=re.S)     # prose, tables, figures
    assert "<img" in visible, "figures"
    assert "<table" in visible, "tables"
    assert "mjx-container" in visible, "maths typeset by MathJax"
    assert "\\(" not in visible and "$$" not in visible, "raw LaTeX left on the page"
    if name != "01_benchmark_and_methods":
        assert "verdict" in visible and re.search(r"holds|not resolved|does not hold", visible), "its claims table"
    errors = [line for line in run.stderr.splitlines()
              if "CONSOLE" in line and ("ERROR" in line or "Uncaught" in line)]
    assert not errors, errors[:5]
