"""The book builds with Sphinx warnings treated as errors."""
import shutil
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def test_book_builds_without_warnings(tmp_path):
    jb = Path(sys.executable).parent / "jupyter-book"
    cmd = [str(jb if jb.exists() else shutil.which("jupyter-book")), "build", str(ROOT),
           "--path-output", str(tmp_path), "-W", "-n", "--keep-going", "--builder", "html"]
    run = subprocess.run(cmd, capture_output=True, text=True, timeout=900)
    assert run.returncode == 0, (run.stdout + run.stderr)[-6000:]
    html = tmp_path / "_build" / "html"
    assert (html / "index.html").exists()
    chapter = (html / "notebooks" / "01_benchmark_and_methods.html").read_text()
    assert "The benchmark and the methods" in chapter and "<img" in chapter
