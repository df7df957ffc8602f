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
