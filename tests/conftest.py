import pytest
import torch

from tools.oracle import load_reference


@pytest.fixture(scope="session")
def reference():
    """memoria-pytorch 1.0.0, installed in isolation (.reference/) and imported under another name."""
    return load_reference("1.0.0", install=True)


cuda = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
