"""Child processes that never outlive softgrad, and never import code from the data folders.

- :func:`die_with_parent`: a worker process asks the kernel to kill it when its parent dies (Linux
  ``prctl(PR_SET_PDEATHSIG)``), so a ``kill -9`` of ``softgrad check`` leaves no hung worker behind.
- :func:`guarded`: the command line that runs a tool (asv) under a guard. The guard is a small Python
  process that adopts every descendant of the tool (``PR_SET_CHILD_SUBREAPER``: asv puts its own children
  in process groups of their own, so a process-group kill would miss them), dies with softgrad, and then
  kills the whole tree. It also holds the caller's lock file open, so ``softgrad run``'s lock stays held
  until the last benchmark process is gone.
- :func:`python_env` and :func:`neutral_cwd`: child Pythons start with ``PYTHONSAFEPATH=1`` in an empty
  folder, so a ``json.py`` or ``asv.py`` planted in ``results/`` (restored from a branch by the nightly
  job) or in the current directory is never imported. Their ``TMPDIR`` is :func:`scratch_tmp`, a folder
  of softgrad's own: what a child killed mid-way leaves there (asv's discovery folder) goes with it.
- :func:`sigterm_as_interrupt`: SIGTERM stops softgrad the way Ctrl-C does (:class:`Terminated`, a
  ``KeyboardInterrupt``), so the same cleanup runs: workers killed, temporary folders removed.

Run as ``python -m softgrad.children PARENT_PID -- CMD ...`` it is the guard itself.
"""

from __future__ import annotations

import atexit
import contextlib
import ctypes
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path

_PR_SET_PDEATHSIG = 1
_PR_SET_CHILD_SUBREAPER = 36


def _prctl(option: int, value: int) -> bool:
    """``prctl(option, value)``; False where there is no such call (not Linux)."""
    if not sys.platform.startswith("linux"):
        return False
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        return libc.prctl(option, value, 0, 0, 0) == 0
    except (OSError, AttributeError):
        return False


def die_with_parent(parent_pid: int, sig: int = signal.SIGKILL) -> None:
    """Have the kernel send ``sig`` to this process when its parent dies; exit at once if the parent
    ``parent_pid`` is already gone. A no-op where ``prctl`` is unavailable."""
    if _prctl(_PR_SET_PDEATHSIG, int(sig)) and os.getppid() != parent_pid:
        os._exit(1)


_own: dict[str, str] = {}
_own_lock = threading.Lock()  # check lanes ask from threads of their own


def _own_folder(kind: str) -> str:
    """A folder of this process's own, ``softgrad-KIND-*`` in TMPDIR, removed with its contents when the
    process exits (after Ctrl-C and SIGTERM too: see :func:`sigterm_as_interrupt`)."""
    with _own_lock:
        path = _own.get(kind)
        if path is None or not os.path.isdir(path):
            path = _own[kind] = tempfile.mkdtemp(prefix=f"softgrad-{kind}-")
            atexit.register(shutil.rmtree, path, True)
        return path


def neutral_cwd() -> str:
    """An empty folder of this process's own, the working directory of child Pythons."""
    return _own_folder("cwd")


def scratch_tmp() -> str:
    """The ``TMPDIR`` of this process's children: a folder of its own, removed when it exits. A child that
    softgrad kills (Ctrl-C, SIGTERM, a hang) runs no cleanup of its own; its temporary files go with this."""
    return _own_folder("tmp")


class Terminated(KeyboardInterrupt):
    """SIGTERM, raised in the main thread where Ctrl-C raises ``KeyboardInterrupt``: everything that cleans
    up after Ctrl-C (``finally`` blocks, workers killed, ``atexit``: the :func:`neutral_cwd` folder) runs for
    ``kill`` too, where the signal's default action would end the process on the spot."""


def _terminated(signum: int, frame: object) -> None:
    raise Terminated


@contextlib.contextmanager
def sigterm_as_interrupt() -> Iterator[None]:
    """SIGTERM raises :class:`Terminated` while the block runs (in the main thread; elsewhere, and where the
    signal is ignored, nothing changes); the previous handler is restored after it."""
    if threading.current_thread() is not threading.main_thread() or \
            signal.getsignal(signal.SIGTERM) == signal.SIG_IGN:
        yield
        return
    previous = signal.signal(signal.SIGTERM, _terminated)
    try:
        yield
    finally:
        if previous is not None:  # None: a handler set outside Python, which cannot be put back
            signal.signal(signal.SIGTERM, previous)


def python_env(extra: Mapping[str, str] | None = None) -> dict[str, str]:
    """The environment of a child Python: this one's, with ``PYTHONSAFEPATH=1`` (neither the working
    directory nor a script's folder goes on ``sys.path``), softgrad's own source folder on
    ``PYTHONPATH`` (so a softgrad run from a checkout, not installed, is still found) and
    :func:`scratch_tmp` as ``TMPDIR``."""
    env = {**os.environ, "TMPDIR": scratch_tmp(), **(extra or {})}
    env["PYTHONSAFEPATH"] = "1"
    source = str(Path(__file__).resolve().parent.parent)
    parts = [p for p in env.get("PYTHONPATH", "").split(os.pathsep) if p]
    if source not in parts:
        env["PYTHONPATH"] = os.pathsep.join([source, *parts])
    return env


def python(*args: str) -> list[str]:
    """A command line running this interpreter without the unsafe ``sys.path`` entry (``-P``)."""
    flags = ["-P"] if sys.version_info >= (3, 11) else []
    return [sys.executable, *flags, *args]


def guarded(cmd: Sequence[str]) -> list[str]:
    """``cmd`` run under the guard (see the module docstring); start it with ``start_new_session=True``
    and the lock's file descriptor in ``pass_fds``, stop it with :func:`stop`."""
    return python("-m", "softgrad.children", str(os.getpid()), "--", *cmd)


def stop(proc: subprocess.Popen, grace_s: float = 10.0) -> None:
    """Stop a guarded command: the guard kills its whole tree, then exits."""
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(grace_s)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def _children_of(pid: int) -> list[int]:
    out = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat", "rb") as f:
                stat = f.read()
        except OSError:
            continue
        fields = stat[stat.rfind(b")") + 2:].split()  # after "pid (comm) "
        if len(fields) > 1 and int(fields[1]) == pid:
            out.append(int(entry))
    return out


def _kill_tree() -> None:
    """SIGKILL every descendant of this process (adopted orphans included) and reap them."""
    me = os.getpid()
    for _ in range(100):
        todo, tree = [me], []
        while todo:
            kids = _children_of(todo.pop())
            tree += kids
            todo += kids
        if not tree:
            return
        for pid in tree:
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
        deadline = time.monotonic() + 2.0
        while time.monotonic() < deadline:
            try:
                if os.waitpid(-1, os.WNOHANG) == (0, 0):
                    time.sleep(0.01)
            except ChildProcessError:
                break


_STOP_SIGNALS = (signal.SIGTERM, signal.SIGINT, signal.SIGHUP)


def _guard(parent: int, cmd: list[str]) -> int:
    adopted = _prctl(_PR_SET_CHILD_SUBREAPER, 1)

    def on_signal(signum: int, frame: object) -> None:
        for sig in _STOP_SIGNALS:  # a second signal must not interrupt the cleanup below
            signal.signal(sig, signal.SIG_IGN)
        raise KeyboardInterrupt

    for sig in _STOP_SIGNALS:
        signal.signal(sig, on_signal)
    die_with_parent(parent, signal.SIGTERM)
    try:
        code = subprocess.Popen(cmd).wait()
    except KeyboardInterrupt:
        code = 128 + signal.SIGTERM
    finally:
        if adopted:
            _kill_tree()
    return code


def main(argv: Sequence[str]) -> int:
    if len(argv) < 3 or argv[1] != "--":
        print("usage: python -m softgrad.children PARENT_PID -- CMD ...", file=sys.stderr)
        return 2
    return _guard(int(argv[0]), list(argv[2:]))


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
