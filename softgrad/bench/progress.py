"""Progress on a long job: lines that stay, and on a terminal a status line that rewrites itself."""

from __future__ import annotations

import shutil
from typing import IO


class Progress:
    """Progress lines on a stream (a status line that rewrites itself on a terminal)."""

    def __init__(self, enabled: bool, stream: IO[str]):
        self.enabled = enabled
        self.stream = stream
        self.tty = enabled and stream.isatty()

    def line(self, text: str) -> None:
        if self.enabled:
            if self.tty:
                self.stream.write("\r\033[K")
            self.stream.write(text + "\n")
            self.stream.flush()

    def status(self, text: str) -> None:
        if self.tty:
            self.stream.write("\r\033[K" + text[: shutil.get_terminal_size().columns - 1])
            self.stream.flush()
