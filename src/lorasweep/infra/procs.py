"""Child processes: argument lists only, each in its own process group, output
to a log file, and always stopped (whole group) when the caller is done or the
harness is interrupted.
"""
from __future__ import annotations

import atexit
import os
import signal
import subprocess
import threading
import time
from collections import deque
from pathlib import Path
from typing import Sequence

_LIVE: set[subprocess.Popen] = set()


def _load_prctl():
    try:
        import ctypes

        return ctypes.CDLL(None, use_errno=True).prctl
    except (OSError, AttributeError):
        return None


_PRCTL = _load_prctl()   # looked up once, so the forked child only makes the call
_PR_SET_PDEATHSIG = 1


def _die_with_parent() -> None:
    """In the child, before exec: get SIGKILL when the harness dies, even by
    SIGKILL, so no trainer or server outlives a killed sweep (Linux)."""
    if _PRCTL is not None:
        _PRCTL(_PR_SET_PDEATHSIG, int(signal.SIGKILL), 0, 0, 0)


def _kill_group(proc: subprocess.Popen, grace_s: float = 10.0) -> None:
    if proc.poll() is None:
        try:
            os.killpg(proc.pid, signal.SIGTERM)
        except ProcessLookupError:
            pass
        try:
            proc.wait(timeout=grace_s)
        except subprocess.TimeoutExpired:
            pass
    # The leader may be gone while its children live on: clear the group.
    try:
        os.killpg(proc.pid, signal.SIGKILL)
    except (ProcessLookupError, PermissionError):
        pass
    try:
        proc.wait(timeout=5)
    except subprocess.TimeoutExpired:
        pass
    _LIVE.discard(proc)


def stop_all() -> None:
    for proc in list(_LIVE):
        _kill_group(proc, grace_s=5.0)


def _on_signal(signum, frame):  # noqa: ARG001
    # Tell every child group to stop now, then unwind: the context managers
    # (Child.__exit__, VLLMServer.__exit__) wait for them and kill stragglers.
    # Waiting here could deadlock with a wait() this handler interrupted.
    for proc in list(_LIVE):
        try:
            os.killpg(proc.pid, signal.SIGTERM)
        except ProcessLookupError:
            pass
    raise SystemExit(128 + signum)


_installed = False


def install_cleanup() -> None:
    """Stop every child group at exit and on SIGINT/SIGTERM/SIGHUP."""
    global _installed
    if _installed:
        return
    atexit.register(stop_all)
    for sig in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
        signal.signal(sig, _on_signal)
    _installed = True


class Child:
    """A process group writing to `log_path` (None: to this process's own stdout and
    stderr, e.g. a client whose progress bar the user watches); use as a context manager."""

    def __init__(self, argv: Sequence[str], log_path: Path | None, env: dict[str, str] | None = None,
                 cwd: Path | None = None):
        if isinstance(argv, str):
            raise TypeError("argv must be a list of arguments, not a shell string")
        self.argv = [str(a) for a in argv]
        self.log_path = Path(log_path) if log_path is not None else None
        self._log = None
        if self.log_path is not None:
            self.log_path.parent.mkdir(parents=True, exist_ok=True)
            self._log = open(self.log_path, "ab")
        self.proc = subprocess.Popen(self.argv, stdout=self._log, stderr=subprocess.STDOUT if self._log else None,
                                     stdin=subprocess.DEVNULL, env=env, cwd=cwd,
                                     start_new_session=True, preexec_fn=_die_with_parent)
        _LIVE.add(self.proc)
        self.peak_rss_bytes = 0
        self._sampler = threading.Thread(target=self._sample_memory, daemon=True)
        self._sampler.start()

    def _sample_memory(self, every_s: float = 1.0) -> None:
        """Peak resident memory of the whole process group, sampled from /proc."""
        page = os.sysconf("SC_PAGE_SIZE")
        while self.proc.poll() is None:
            total = 0
            for d in os.listdir("/proc"):
                if not d.isdigit():
                    continue
                try:
                    with open(f"/proc/{d}/stat") as f:
                        fields = f.read().rsplit(")", 1)[1].split()
                except OSError:
                    continue
                if int(fields[2]) == self.proc.pid:      # process group id
                    total += int(fields[21]) * page      # resident pages
            self.peak_rss_bytes = max(self.peak_rss_bytes, total)
            time.sleep(every_s)

    @property
    def pid(self) -> int:
        return self.proc.pid

    def poll(self) -> int | None:
        return self.proc.poll()

    def exited_within(self, seconds: float) -> bool:
        """Wait up to `seconds` for the process to end (returning as soon as it does); True if it has."""
        try:
            self.proc.wait(timeout=seconds)
            return True
        except subprocess.TimeoutExpired:
            return False

    def wait(self, timeout: float | None = None) -> int:
        """Exit code; on timeout the group is killed and -9 returned."""
        try:
            rc = self.proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.stop()
            return -9
        self.stop()
        return rc

    def stop(self) -> None:
        _kill_group(self.proc)
        if self._log is not None and not self._log.closed:
            self._log.close()

    def __enter__(self) -> "Child":
        return self

    def __exit__(self, *exc) -> None:
        self.stop()


def log_tail(path: Path, lines: int = 20) -> str:
    try:
        with open(path, "r", encoding="utf-8", errors="replace") as f:
            # tqdm writes carriage returns; keep the last state of each line.
            tail = deque((ln.rstrip("\n").split("\r")[-1] for ln in f), maxlen=lines)
        return "\n".join(tail)
    except FileNotFoundError:
        return "(no log)"


def wait_until(predicate, timeout_s: float, interval_s: float = 1.0, alive=None) -> bool:
    """Poll `predicate` until true; False on timeout or when `alive()` turns false."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if predicate():
            return True
        if alive is not None and not alive():
            return False
        time.sleep(interval_s)
    return False


class LockError(RuntimeError):
    pass


class ExperimentLock:
    """An exclusive lock on a file (fcntl), held for the life of a sweep: a
    second train.sh (or eval.sh) on the same experiment stops at once with the
    holder's pid. The kernel drops the lock when the holder dies, even by SIGKILL."""

    def __init__(self, path: Path, what: str):
        self.path, self.what = Path(path), what
        self._fh = None

    def __enter__(self) -> "ExperimentLock":
        import fcntl

        self.path.parent.mkdir(parents=True, exist_ok=True)
        fh = open(self.path, "a+")
        try:
            fcntl.flock(fh, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            fh.seek(0)
            holder = fh.read().strip() or "another process"
            fh.close()
            raise LockError(f"another {self.what} is already running on this experiment ({holder}); "
                            f"wait for it or stop it (lock file {self.path})") from None
        fh.seek(0)
        fh.truncate()
        fh.write(f"pid {os.getpid()}")
        fh.flush()
        self._fh = fh
        return self

    def __exit__(self, *exc) -> None:
        if self._fh is not None:
            self._fh.close()
            self._fh = None
