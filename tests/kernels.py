"""Chapters run in kept kernels, as papermill would run them, for the tests that run many.

A kernel's start and xailib's imports cost about 6 s a run (twice that on a loaded CI worker):
``test_notebooks`` runs 40 bad-parameter cases and ``test_single_network`` twelve small chapter
runs. Each run resets the kernel's namespace and history (``InteractiveShell.reset(new_session=
True)``, so ``In`` holds only this run's cells, as the parameter checks read it), then executes
the notebook's code cells with papermill's own injected parameters cell, up to the first error.
The imports stay loaded between runs. What papermill adds besides, its report of a failed cell,
stays tested where a test runs papermill itself.
"""
from __future__ import annotations

from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
SHOWN = ("stream", "display_data", "execute_result")


class Kernels:
    """Kernels kept by name (one per notebook by default); :meth:`close` shuts them down."""

    def __init__(self):
        self.open = {}

    def run(self, notebook: str, parameters: dict, env: dict | None = None, kernel: str | None = None,
            outputs: list | None = None):
        """(index of the code cell that failed, the error's name, its value) or None, and the
        notebook's code cells. ``env``: environment variables set in the kernel for this run (and
        removed after it); ``kernel``: the kept kernel to use (default: the notebook's own);
        ``outputs``: a list that receives (code cell index, output message content) of every
        output the run shows."""
        from jupyter_client.manager import start_new_kernel
        from papermill.parameterize import parameterize_notebook
        import nbformat
        name = kernel or notebook
        if name not in self.open:
            self.open[name] = start_new_kernel(kernel_name="python3", cwd=str(ROOT / "notebooks"))
        _, kc = self.open[name]
        path = ROOT / "notebooks" / f"{notebook}.ipynb"
        nb = parameterize_notebook(nbformat.read(str(path), as_version=4), parameters)
        code = [c for c in nb.cells if c.cell_type == "code"]
        env = env or {}
        self._execute(kc, f"import os; os.environ.update({env!r}); get_ipython().reset(new_session=True)")
        try:
            for i, cell in enumerate(code):
                shown = [] if outputs is not None else None
                error = self._execute(kc, cell.source, shown)
                if shown:
                    outputs.extend((i, content) for content in shown)
                if error:
                    return (i, *error), code
            return None, code
        finally:
            self._execute(kc, f"import os\nfor k in {list(env)!r}: os.environ.pop(k, None)")

    def run_or_fail(self, notebook: str, parameters: dict, cache, kernel: str):
        """:meth:`run` into the cache folder ``cache`` (nothing published); a failed cell fails the
        calling test with its traceback. The outputs and the notebook's code cells."""
        import pytest
        outputs = []
        failed, code = self.run(notebook, parameters, env={"XAILIB_CACHE": str(cache), "XAILIB_PUBLISH": "0"},
                                kernel=kernel, outputs=outputs)
        if failed is not None:
            trace = "\n".join(line for _, o in outputs for line in o.get("traceback", []))
            pytest.fail(f"{notebook}: code cell {failed[0]} stopped with {failed[1]}: {failed[2]}\n{trace}")
        return outputs, code

    @staticmethod
    def _execute(kc, source: str, shown: list | None = None):
        """Run ``source``; the first error's (name, value), or None. ``shown`` receives every
        output's content, an error's (with its traceback) included."""
        errors = []

        def hook(msg):
            kind, content = msg["msg_type"], msg["content"]
            if kind == "error":
                errors.append((content["ename"], content["evalue"]))
            if shown is not None and kind in (*SHOWN, "error"):
                shown.append(content)
        kc.execute_interactive(source, output_hook=hook, timeout=600)
        return errors[0] if errors else None

    def close(self):
        for km, kc in self.open.values():
            kc.stop_channels()
            km.shutdown_kernel(now=True)
