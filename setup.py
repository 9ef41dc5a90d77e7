"""Packaging metadata for memoria-pytorch. The version is written once, in memoria/__init__.py."""

import re
from pathlib import Path

from setuptools import find_packages, setup

ROOT = Path(__file__).resolve().parent
REPOSITORY = "https://github.com/cosmoquester/memoria"
BRANCH = "master"


def version() -> str:
    """``__version__`` of memoria/__init__.py, read without importing the package (which needs torch)."""
    text = (ROOT / "memoria" / "__init__.py").read_text(encoding="utf-8")
    return re.search(r'^__version__ = "([^"]+)"$', text, re.MULTILINE).group(1)


def pypi_readme() -> str:
    """README.md with its relative links (docs/, experiment/, images) made absolute, so that they work on PyPI."""
    text = (ROOT / "README.md").read_text(encoding="utf-8")
    return re.sub(
        r"(\]\(|<img src=\"|src=\")(?!https?://|#|mailto:)([^)\"\s]+)",
        lambda m: f"{m.group(1)}{_absolute(m.group(2))}",
        text,
    )


def _absolute(path: str) -> str:
    path = path[2:] if path.startswith("./") else path
    image = path.split("#")[0].lower().endswith((".png", ".jpg", ".jpeg", ".gif", ".svg"))
    return f"{REPOSITORY}/{'raw' if image else 'blob'}/{BRANCH}/{path}"


setup(
    name="memoria-pytorch",
    version=version(),
    description="Memoria: a human-inspired memory architecture for neural networks (ICML 2024)",
    long_description=pypi_readme(),
    long_description_content_type="text/markdown",
    author="Sangjun Park, Jinyeong Bak",
    license="MIT",
    license_files=["LICENSE"],
    url=REPOSITORY,
    project_urls={
        "Source": REPOSITORY,
        "Issues": f"{REPOSITORY}/issues",
        "Documentation": f"{REPOSITORY}/blob/{BRANCH}/docs/algorithm.md",
        "Paper": "https://arxiv.org/abs/2310.03052",
    },
    python_requires=">=3.10",
    packages=find_packages(include=["memoria", "memoria.*"]),
    package_data={"memoria": ["py.typed"]},
    install_requires=["torch>=2.2"],  # torch.unravel_index arrived in 2.2; .ci/floor tests this floor
    extras_require={
        "dev": ["pytest>=8", "hypothesis>=6.100", "numpy>=1.24", "black>=24", "isort>=5.13"],
        "experiment": [
            "torch>=2.3",  # recurrent-memory-transformer-pytorch needs it
            "transformers>=5,<6",
            "huggingface_hub>=1.31,<2",  # the model configurations use huggingface_hub.dataclasses.strict
            "lightning>=2.4,<3",
            "torchmetrics>=1.4,<2",
            "tensorboard>=2.16,<3",
            "numpy>=1.24,<3",
            "x-transformers>=2.31.10,<2.32",
            "recurrent-memory-transformer-pytorch>=0.7.0,<0.8",
            "tokenizers>=0.22,<0.24",
            "datasets>=4,<5",
        ],
        "benchmark": ["matplotlib>=3.8,<4"],
        "analysis": ["numpy>=1.24,<3", "matplotlib>=3.8,<4", "pillow>=10,<14"],
        "notebook": ["nbclient>=0.10,<1", "nbformat>=5.10,<6", "ipykernel>=6.29,<8"],
        "parquet": ["pyarrow>=21,<27"],  # reading a Parquet export of Hyperpartisan (datasets 4 needs >= 21)
    },
    classifiers=[
        "Development Status :: 5 - Production/Stable",
        "Intended Audience :: Science/Research",
        "Intended Audience :: Developers",
        "Operating System :: OS Independent",
        "Programming Language :: Python :: 3",
        "Programming Language :: Python :: 3 :: Only",
        "Programming Language :: Python :: 3.10",
        "Programming Language :: Python :: 3.11",
        "Programming Language :: Python :: 3.12",
        "Topic :: Scientific/Engineering :: Artificial Intelligence",
        "Typing :: Typed",
    ],
    keywords=["memory", "transformer", "hebbian", "engram", "pytorch", "long-context"],
)
