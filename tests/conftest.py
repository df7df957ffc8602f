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


@pytest.fixture
def watch_steps(monkeypatch):
    """watch_steps(weights_of) -> seen: the trainer's steps recorded as seen[step] = (skipped, weights unchanged),
    where weights_of(model) gives the parameters of the model train_step is handed."""
    from plume.train import trainer

    def watching(weights_of):
        seen, real_step = {}, trainer.train_step

        def watch(model, *args):
            before = [p.detach().clone() for p in weights_of(model)]
            result = real_step(model, *args)
            seen[args[3]] = (result.skipped, all(torch.equal(a, p) for a, p in zip(before, weights_of(model))))
            return result

        monkeypatch.setattr(trainer, "train_step", watch)
        return seen

    return watching
