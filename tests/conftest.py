"""Kernel start-up retried when it loses a port race.

jupyter_client chooses a kernel's five ports by binding to port 0 and releasing the socket; the
kernel binds them again a moment later. With two pytest-xdist workers starting kernels (nbval's and
papermill's) side by side, another process can take a port in between, and the kernel dies with
"Address already in use" before it answers (seen once in CI, stop 38). That start-up is retried on
fresh ports, up to three times; a kernel that starts and then fails a cell is never retried.
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
