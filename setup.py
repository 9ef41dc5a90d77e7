from setuptools import find_packages, setup

with open("README.md", encoding="utf-8") as f:
    long_description = f.read()

setup(
    name="memoria-pytorch",
    version="2.0.0",
    description="Memoria: a human-inspired memory architecture for neural networks (ICML 2024)",
    long_description=long_description,
    long_description_content_type="text/markdown",
    license="MIT",
    python_requires=">=3.10",
    packages=find_packages(include=["memoria", "memoria.*"]),
    install_requires=["torch>=2.1"],
    extras_require={
        "dev": ["pytest>=8", "hypothesis>=6.100", "black>=24", "isort>=5.13"],
        "experiment": [
            "transformers>=5,<6",
            "lightning>=2.4,<3",
            "torchmetrics>=1.4",
            "tensorboard>=2.16",
            "numpy>=1.24",
            "x-transformers==2.31.10",
            "recurrent-memory-transformer-pytorch==0.7.0",
            "tokenizers>=0.22,<0.24",
            "datasets>=4,<5",
        ],
        "benchmark": ["matplotlib>=3.8"],
        "analysis": ["numpy>=1.24,<3", "matplotlib>=3.8,<4", "pillow>=10,<14"],
        "notebook": ["nbclient>=0.10,<1", "nbformat>=5.10,<6", "ipykernel>=6.29,<8"],
        "parquet": ["pyarrow==18.1.0"],  # reading a Parquet export of Hyperpartisan
    },
    classifiers=[
        "Programming Language :: Python :: 3",
        "Topic :: Scientific/Engineering :: Artificial Intelligence",
    ],
)
