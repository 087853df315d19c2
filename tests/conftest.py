"""Kernel start-up retried when it loses a port race.

jupyter_client chooses a kernel's five ports by binding to port 0 and releasing the socket; the
kernel binds them again a moment later. With two pytest-xdist workers starting kernels (nbval's and
papermill's) side by side, another process can take a port in between, and the kernel dies with
"Address already in use" before it answers (seen once in CI, stop 38). That start-up is retried on
fresh ports, up to three times; a kernel that starts and then fails a cell is never retried.

And the order in which two pytest-xdist workers take the files: the longest first.
"""
import functools

import nbval.kernel
import papermill

ATTEMPTS = 3


def _lost_a_port_race(err: BaseException) -> bool:
    text = str(err)
    return isinstance(err, RuntimeError) and ("Kernel died before replying to kernel_info" in text
                                              or "Address already in use" in text)


def _retried(start):
    @functools.wraps(start)
    def wrapper(*args, **kwargs):
        for attempt in range(1, ATTEMPTS + 1):
            try:
                return start(*args, **kwargs)
            except RuntimeError as err:     # PapermillExecutionError (a failed cell) is not one
                if attempt == ATTEMPTS or not _lost_a_port_race(err):
                    raise
    wrapper.retries_kernel_start = True
    return wrapper


if not getattr(papermill.execute_notebook, "retries_kernel_start", False):
    papermill.execute_notebook = _retried(papermill.execute_notebook)
    nbval.kernel.start_new_kernel = _retried(nbval.kernel.start_new_kernel)


# The order two pytest-xdist workers take whole files in (scripts/test.sh: --dist loadfile, with
# xdist's own reordering by test count turned off): the longest first, so that no long file starts
# when the other worker has nothing left (stop 44: one 330-s file ran alone for the last 175 s).
# Worker-seconds measured in one CI run (stop 45); a file not listed runs after these, in the
# collection's order. Only the order changes: each file's tests (a notebook's cells) stay in order.
LONGEST_FIRST = [
    "notebooks/03_impact_score.ipynb",          # 447 s
    "notebooks/10_leaderboard.ipynb",           # 411
    "notebooks/08_trustworthiness.ipynb",       # 399
    "tests/test_single_network.py",             # 327, and two chapters again on a local cluster
    "notebooks/06_sanity_checks.ipynb",         # 354
    "notebooks/02_rise.ipynb",                  # 352
    "notebooks/09_faithfulness.ipynb",          # 193
    "notebooks/05_neuromask.ipynb",             # 191
    "notebooks/04_adversarial_patch.ipynb",     # 163
    "tests/test_map_store.py",                  # 173 before its chapter runs moved to test_single_network
    "tests/test_imagenet_real.py",              # two chapters on EfficientNet-Lite0 at 224 px (new)
    "notebooks/07_localisation.ipynb",          # 120
    "notebooks/11_model_interpretability.ipynb",  # about 200 (nine dissections, Lite0's two, 1152 maps)
    "tests/test_shards.py",                     # 118
    "tests/test_notebooks.py",                  # 367 before its bad-parameter cases shared kernels
    "tests/test_variants.py",                   # 106
    "tests/test_larger_runs.py",                # 226 before the batch-invariant replays went alone
    "tests/test_book.py",                       # 54
    "notebooks/01_benchmark_and_methods.ipynb",  # 34 (its maps already stored by the others)
]


def pytest_collection_modifyitems(session, config, items):
    rank = {f: i for i, f in enumerate(LONGEST_FIRST)}
    items.sort(key=lambda item: rank.get(item.nodeid.split("::")[0], len(rank)))


import pytest  # noqa: E402


@pytest.fixture(autouse=True)
def _nothing_kept_between_tests():
    """Each test starts without the work xailib.metrics.shared keeps between calls: a test that
    patches a method would otherwise read another test's explanations."""
    from xailib.metrics import shared
    shared.forget()
    yield
