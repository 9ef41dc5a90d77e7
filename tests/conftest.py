import pytest
import torch

from tools.oracle import load_reference


@pytest.fixture(scope="session")
def reference():
    """memoria-pytorch 1.0.0, installed in isolation (.reference/) and imported under another name."""
    return load_reference("1.0.0", install=True)


@pytest.fixture
def one_thread():
    """Runs a test on one thread: tiny models run fastest so, and far faster than on two on a loaded machine."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def pytest_collection_modifyitems(config, items):
    """Tests marked ``@pytest.mark.cuda`` (declared in pyproject.toml) are skipped without a CUDA device."""
    if torch.cuda.is_available():
        return
    skip = pytest.mark.skip(reason="needs a CUDA device")
    for item in items:
        if item.get_closest_marker("cuda") is not None:
            item.add_marker(skip)
