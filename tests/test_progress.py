"""Progress bars: a bar on a terminal; in a file or a pipe (a CI log, `> log`), a few plain lines with no carriage
returns, however many updates (plume.progress)."""
import io

import plume.progress as progress
from plume.progress import PlainLines, progress_bar


class Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_off_a_terminal_a_bar_writes_a_few_plain_lines(monkeypatch):
    log = io.StringIO()  # not a terminal
    monkeypatch.setattr(progress.sys, "stderr", log)
    for _ in progress_bar(range(5000), desc="train", unit="step"):
        pass
    text = log.getvalue()
    assert "\r" not in text and "\x1b" not in text
    lines = text.strip().split("\n")
    assert 1 <= len(lines) <= 3 and lines[-1].startswith("train: 100%") and "5000/5000" in lines[-1]


def test_on_a_terminal_the_bar_redraws_in_place(monkeypatch):
    screen = Terminal()
    monkeypatch.setattr(progress.sys, "stderr", screen)
    for _ in progress_bar(range(3), desc="sample", file=screen, mininterval=0):
        pass
    assert "\r" in screen.getvalue() and "sample" in screen.getvalue()


def test_a_disabled_bar_writes_nothing(monkeypatch):
    log = io.StringIO()
    monkeypatch.setattr(progress.sys, "stderr", log)
    for _ in progress_bar(range(100), enabled=False):
        pass
    assert log.getvalue() == ""


def test_plain_lines_drop_cursor_moves_and_empty_redraws():
    out = io.StringIO()
    lines = PlainLines(out)
    lines.write("\r\x1b[Atrain:  50%|#####     | 5/10")
    lines.write("\r")
    lines.write("\n")
    assert out.getvalue() == "train:  50%|#####     | 5/10\n"


def test_forced_redraws_wait_for_the_interval_and_the_last_one_is_written(monkeypatch):
    """The trainer refreshes its bar at every log row (its end moves with a time budget): off a terminal those
    redraws make no more lines than the interval allows, and the bar's final state is written when it closes."""
    log = io.StringIO()
    monkeypatch.setattr(progress.sys, "stderr", log)
    bar = progress_bar(total=1000, desc="train")
    for step in range(1000):
        bar.update(1)
        if step % 25 == 0:
            bar.refresh()
    bar.close()
    lines = log.getvalue().strip().split("\n")
    assert len(lines) == 2 and lines[0].startswith("train:   0%") and "1000/1000" in lines[-1]
