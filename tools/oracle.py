"""Load memoria-pytorch 1.0.0 (the reference implementation) as a black-box oracle.

The reference package is also called ``memoria``, so it is installed in isolation with
``pip install --no-deps --target DIR`` and imported here under another name. Nothing of its source is used by
our library; tests and benchmarks only call its public API and compare results.
"""

import importlib.util
import os
import subprocess
import sys
from pathlib import Path
from types import ModuleType

REPO_ROOT = Path(__file__).resolve().parent.parent
DEFAULT_DIR = REPO_ROOT / ".reference"


def reference_dir(version: str = "1.0.0") -> Path:
    """Directory the reference is installed in (``$MEMORIA_REFERENCE_DIR/<version>`` or ``.reference/<version>``)."""
    base = Path(os.environ.get("MEMORIA_REFERENCE_DIR", DEFAULT_DIR))
    return base / version


def install_reference(version: str = "1.0.0") -> Path:
    """Install ``memoria-pytorch==version`` without dependencies into :func:`reference_dir` if it is missing."""
    target = reference_dir(version)
    if not (target / "memoria" / "__init__.py").exists():
        target.mkdir(parents=True, exist_ok=True)
        subprocess.run(
            [
                sys.executable,
                "-m",
                "pip",
                "install",
                "-q",
                "--no-deps",
                "--target",
                str(target),
                f"memoria-pytorch=={version}",
            ],
            check=True,
        )
    return target


def load_reference(version: str = "1.0.0", install: bool = False) -> ModuleType:
    """Import the reference package under the name ``memoria_reference_<version>``.

    Args:
        version: the memoria-pytorch release to load.
        install: install it first when it is missing (needs the package registry).

    Raises:
        ModuleNotFoundError: the reference is not installed and ``install`` is False.
    """
    name = "memoria_reference_" + version.replace(".", "_")
    if name in sys.modules:
        return sys.modules[name]
    root = install_reference(version) if install else reference_dir(version)
    init = root / "memoria" / "__init__.py"
    if not init.exists():
        raise ModuleNotFoundError(
            f"memoria-pytorch=={version} is not installed in {root}; run `python -m tools.oracle {version}`"
        )
    spec = importlib.util.spec_from_file_location(name, init, submodule_search_locations=[str(init.parent)])
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    spec.loader.exec_module(module)
    return module


if __name__ == "__main__":
    for requested in sys.argv[1:] or ["1.0.0"]:
        print(install_reference(requested))
