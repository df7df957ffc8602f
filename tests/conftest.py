"""Shared test set-up: one CPU thread, the thread count restored after each test, a step watcher, and the rule that
under CI=true a skipped test fails unless it needs a CUDA GPU: scripts/install.sh installs every other dependency, so
a skip there means an install step is missing or a dependency changed, and CI must not go green without the test."""
import os

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


CI_MAY_SKIP = ("CUDA",)  # skip reasons CI accepts: this CI has no GPU


def ci_skip_is_a_failure(report: pytest.TestReport) -> bool:
    """Whether a skipped test's report must count as a failure: under CI=true, unless its reason names CUDA."""
    if not report.skipped or os.environ.get("CI", "").lower() != "true" or hasattr(report, "wasxfail"):
        return False
    reason = report.longrepr[-1] if isinstance(report.longrepr, tuple) else str(report.longrepr)
    return not any(word in reason for word in CI_MAY_SKIP)


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo):
    outcome = yield
    report = outcome.get_result()
    if ci_skip_is_a_failure(report):
        reason = report.longrepr[-1] if isinstance(report.longrepr, tuple) else str(report.longrepr)
        report.outcome = "failed"
        report.longrepr = (f"skipped under CI=true ({reason}); scripts/install.sh provides this test's dependencies, "
                           "so CI must run it (only tests that need CUDA may skip)")
