"""Test-wide settings.

Every test process runs torch on one thread. The tests use tiny inputs, where extra
threads buy little, and under pytest-xdist two workers with torch's default of one thread
per core fight over a 2-core machine and run several times slower (`make test` also sets
OMP_NUM_THREADS=1 for the lessons' kernels).
"""

import pytest
import torch


@pytest.fixture(scope="session", autouse=True)
def one_torch_thread():
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)
