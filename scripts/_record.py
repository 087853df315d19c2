"""The record a results-making script writes beside its tables (roar.json, meta.json): what it was
asked, the command that remakes it, its wall time, when it finished and with which versions."""
import json
import platform
import sys
import time
from datetime import datetime, timezone
from pathlib import Path

import torch


def write_record(path: Path, script: str, t_start: float, **fields) -> dict:
    """Write ``fields`` with the script's name and command, its wall seconds since ``t_start``,
    the finishing time and the torch and Python versions and thread count to ``path`` (JSON)."""
    record = dict(script=script, command="python " + " ".join([script] + sys.argv[1:]), **fields,
                  wall_seconds=round(time.time() - t_start, 1),
                  finished=datetime.now(timezone.utc).isoformat(timespec="seconds"),
                  versions=dict(torch=torch.__version__, python=platform.python_version(),
                                threads=torch.get_num_threads()))
    path.write_text(json.dumps(record, indent=1) + "\n")
    return record
