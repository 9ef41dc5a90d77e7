"""Starting measurements in their own processes, and describing the machine they ran on."""

import json
import os
import platform
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any, Dict, Optional

import torch

REPO_ROOT = Path(__file__).resolve().parent.parent
RESULTS_DIR = Path(__file__).resolve().parent / "results"


def run_worker(config: Dict[str, Any], timeout_s: Optional[float]) -> Dict[str, Any]:
    """Run :mod:`benchmarks.worker` on ``config`` in a fresh interpreter.

    Returns:
        The worker's result, or ``{"error": ...}`` when it failed or ran past ``timeout_s``.
    """
    with tempfile.TemporaryDirectory(prefix="memoria-bench-") as scratch:
        config_path, result_path = Path(scratch) / "config.json", Path(scratch) / "result.json"
        config_path.write_text(json.dumps(config))
        command = [sys.executable, "-m", "benchmarks.worker", str(config_path), str(result_path)]
        try:
            completed = subprocess.run(
                command, cwd=REPO_ROOT, capture_output=True, text=True, timeout=timeout_s, env=_worker_env()
            )
        except subprocess.TimeoutExpired:
            return {"error": f"timed out after {timeout_s:.0f} s"}
        if completed.returncode != 0 or not result_path.exists():
            lines = completed.stderr.strip().splitlines()
            return {"error": lines[-1] if lines else f"exit status {completed.returncode}", "stderr": completed.stderr}
        return json.loads(result_path.read_text())


def _worker_env() -> Dict[str, str]:
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(REPO_ROOT), env.get("PYTHONPATH")]))
    return env


def machine() -> Dict[str, Any]:
    """CPU model and count, memory, torch version and threads, and the GPU if one is visible."""
    info: Dict[str, Any] = {
        "cpu": _cpu_model(),
        "cpus": os.cpu_count(),
        "python": platform.python_version(),
        "torch": torch.__version__,
        "torch_threads": torch.get_num_threads(),
    }
    try:
        with open("/proc/meminfo") as meminfo:
            info["memory_gib"] = round(int(meminfo.readline().split()[1]) / 2**20, 1)
    except OSError:
        pass
    if torch.cuda.is_available():
        info["gpu"] = torch.cuda.get_device_name(0)
        info["cuda"] = torch.version.cuda
    return info


def _cpu_model() -> str:
    try:
        with open("/proc/cpuinfo") as cpuinfo:
            for line in cpuinfo:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def mib(num_bytes: float) -> float:
    """Bytes to MiB."""
    return num_bytes / 2**20
