"""Starting measurements in their own processes, and describing the machine they ran on."""

import hashlib
import json
import os
import platform
import shutil
import subprocess
import sys
import tempfile
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Dict, Iterator, Optional

import torch

REPO_ROOT = Path(__file__).resolve().parent.parent


SNAPSHOT_PACKAGES = ("memoria", "benchmarks", "tools")
"""What a source snapshot copies: the library under test, this harness and the reference loader."""


@contextmanager
def source_snapshot() -> Iterator[Path]:
    """A frozen copy of the code a run measures, so that edits made while it runs reach none of its processes.

    Copies :data:`SNAPSHOT_PACKAGES` into a temporary directory and links the installed reference into it.
    """
    with tempfile.TemporaryDirectory(prefix="memoria-bench-src-") as directory:
        root = Path(directory)
        for package in SNAPSHOT_PACKAGES:
            if (REPO_ROOT / package).is_dir():
                shutil.copytree(
                    REPO_ROOT / package, root / package, ignore=shutil.ignore_patterns("__pycache__", "results")
                )
        if (REPO_ROOT / ".reference").exists():
            (root / ".reference").symlink_to(REPO_ROOT / ".reference")
        yield root


def source_fingerprint(root: Path = REPO_ROOT) -> Dict[str, str]:
    """The repository's commit (with ``-dirty`` if ``memoria/`` has uncommitted edits) and a hash of ``memoria/``."""
    digest = hashlib.sha256()
    for path in sorted((root / "memoria").rglob("*.py")):
        digest.update(path.relative_to(root).as_posix().encode() + b"\0" + path.read_bytes())
    try:
        commit = subprocess.run(
            ["git", "rev-parse", "--short", "HEAD"], cwd=REPO_ROOT, capture_output=True, text=True, check=True
        ).stdout.strip()
        dirty = subprocess.run(["git", "diff", "--quiet", "HEAD", "--", "memoria"], cwd=REPO_ROOT).returncode != 0
    except (OSError, subprocess.CalledProcessError):
        commit, dirty = "unknown", False
    return {"commit": commit + ("-dirty" if dirty else ""), "memoria_sha256": digest.hexdigest()[:16]}


def run_worker(config: Dict[str, Any], timeout_s: Optional[float], root: Path = REPO_ROOT) -> Dict[str, Any]:
    """Run :mod:`benchmarks.worker` on ``config`` in a fresh interpreter, importing the code under ``root``.

    Returns:
        The worker's result, or ``{"error": ...}`` when it failed or ran past ``timeout_s``.
    """
    with tempfile.TemporaryDirectory(prefix="memoria-bench-") as scratch:
        config_path, result_path = Path(scratch) / "config.json", Path(scratch) / "result.json"
        config_path.write_text(json.dumps(config))
        command = [sys.executable, "-m", "benchmarks.worker", str(config_path), str(result_path)]
        try:
            completed = subprocess.run(
                command, cwd=root, capture_output=True, text=True, timeout=timeout_s, env=_worker_env(root)
            )
        except subprocess.TimeoutExpired:
            return {"error": f"timed out after {timeout_s:.0f} s"}
        if completed.returncode != 0 or not result_path.exists():
            lines = completed.stderr.strip().splitlines()
            return {"error": lines[-1] if lines else f"exit status {completed.returncode}", "stderr": completed.stderr}
        return json.loads(result_path.read_text())


def _worker_env(root: Path) -> Dict[str, str]:
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(root), env.get("PYTHONPATH")]))
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
