import pytest
import torch

# The tests use tiny batches, where thread start-up costs more than it gains on a 2-core machine.
torch.set_num_threads(1)


@pytest.fixture(autouse=True)
def restore_threads():
    """The commands set torch's thread count; every test starts from the count above."""
    before = torch.get_num_threads()
    yield
    torch.set_num_threads(before)
