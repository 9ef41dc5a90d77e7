"""The package metadata as PyPI and pip see it: one version, declared dependencies, tested ranges, working links."""

import re
import runpy
from pathlib import Path

import pytest
import setuptools

import memoria

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def metadata():
    """The keyword arguments setup.py passes to ``setuptools.setup``."""
    captured = {}
    original = setuptools.setup
    setuptools.setup = lambda **kwargs: captured.update(kwargs)
    try:
        runpy.run_path(str(ROOT / "setup.py"), run_name="setup")
    finally:
        setuptools.setup = original
    return captured


def test_the_version_is_written_once(metadata):
    assert metadata["version"] == memoria.__version__
    assert memoria.__version__ not in (ROOT / "setup.py").read_text(encoding="utf-8")


def test_torch_floor_is_the_one_unravel_index_needs(metadata):
    assert metadata["install_requires"] == ["torch>=2.2"]


def test_no_extra_pins_an_exact_version(metadata):
    """An exact pin (==) makes pip fall back to old versions of everything around it: ranges only."""
    for extra, requirements in metadata["extras_require"].items():
        for requirement in requirements:
            assert "==" not in requirement, (extra, requirement)


def test_every_third_party_import_of_the_experiments_is_declared(metadata):
    """huggingface_hub is imported by the experiment's model configurations: the experiment extra declares it."""
    experiment = " ".join(metadata["extras_require"]["experiment"])
    sources = [p for p in (ROOT / "experiment").rglob("*.py")] if (ROOT / "experiment").exists() else []
    if not sources:
        pytest.skip("the experiment package is not part of this checkout (an sdist)")
    imported = set()
    for path in sources:
        imported |= set(
            re.findall(
                r"^\s*(?:from|import) (huggingface_hub|datasets|lightning|x_transformers)\b",
                path.read_text(encoding="utf-8"),
                re.M,
            )
        )
    for module in imported:
        assert module.replace("_", "-") in experiment.replace("_", "-"), module


def test_typing_marker_ships_with_the_package(metadata):
    assert "py.typed" in metadata["package_data"]["memoria"]
    assert (ROOT / "memoria" / "py.typed").exists()


def test_readme_on_pypi_has_no_relative_links(metadata):
    """Relative links work on GitHub only: the long description points them at the repository."""
    text = metadata["long_description"]
    links = re.findall(r"\]\(([^)]+)\)", text) + re.findall(r'src="([^"]+)"', text)
    assert links
    relative = [link for link in links if not link.startswith(("https://", "http://", "#", "mailto:"))]
    assert relative == []
    assert f"{metadata['url']}/blob/master/docs/algorithm.md" in text


def test_project_urls_and_classifiers(metadata):
    assert metadata["url"] == "https://github.com/cosmoquester/memoria"
    assert {"Source", "Issues", "Documentation"} <= set(metadata["project_urls"])
    assert "Typing :: Typed" in metadata["classifiers"]
    assert any(c.startswith("Programming Language :: Python :: 3.1") for c in metadata["classifiers"])
