"""Every Python example in the README, in docs/python-api.md and in the task guides under docs/, runs as written."""
import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
README = ROOT / "README.md"
GUIDES = ["python-api.md", "inpainting.md", "image-to-image.md", "denoising.md", "super-resolution.md", "anomaly.md", "interpolation.md",
          "posthoc-ema.md", "streaming.md"]


def python_blocks(path: Path) -> list[str]:
    return re.findall(r"```python\n(.*?)```", path.read_text(), flags=re.S)


BLOCKS = python_blocks(README)
GUIDE_BLOCKS = [(name, k, block) for name in GUIDES if (ROOT / "docs" / name).exists()
                for k, block in enumerate(python_blocks(ROOT / "docs" / name))]


def test_readme_has_examples():
    assert len(BLOCKS) >= 3


def test_every_task_guide_has_an_example():
    assert {name for name, _, _ in GUIDE_BLOCKS} == set(GUIDES)


@pytest.mark.parametrize("index", range(len(BLOCKS)))
def test_readme_example_runs(index):
    exec(compile(BLOCKS[index], f"README.md block {index}", "exec"), {"__name__": "__readme__"})


@pytest.mark.parametrize("name,index,block", GUIDE_BLOCKS, ids=[f"{n}-{k}" for n, k, _ in GUIDE_BLOCKS])
def test_task_guide_example_runs(name, index, block, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)  # examples that write files write them here
    exec(compile(block, f"docs/{name} block {index}", "exec"), {"__name__": "__docs__"})
