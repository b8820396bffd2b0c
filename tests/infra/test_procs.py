import os
import subprocess
import sys
import time

import pytest

from lorasweep.infra.procs import Child, log_tail


def _alive(pid):
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    # A zombie is dead for our purposes.
    with open(f"/proc/{pid}/stat") as f:
        return f.read().split()[2] != "Z"


def test_child_group_is_killed_with_grandchildren(tmp_path):
    script = ("import subprocess, sys, time;"
              "p = subprocess.Popen([sys.executable, '-c', 'import time; time.sleep(60)']);"
              "print(p.pid, flush=True); time.sleep(60)")
    log = tmp_path / "c.log"
    with Child([sys.executable, "-c", script], log) as c:
        deadline = time.time() + 10
        while time.time() < deadline and not log.read_text().strip():
            time.sleep(0.1)
        grandchild = int(log.read_text().split()[0])
        assert _alive(c.pid) and _alive(grandchild)
    time.sleep(0.5)
    assert not _alive(grandchild)


def test_wait_timeout_kills(tmp_path):
    c = Child([sys.executable, "-c", "import time; time.sleep(30)"], tmp_path / "l.log")
    t0 = time.time()
    assert c.wait(timeout=0.5) == -9
    assert time.time() - t0 < 15


def test_shell_strings_refused(tmp_path):
    with pytest.raises(TypeError):
        Child("echo hi", tmp_path / "x.log")


def test_log_tail_keeps_last_progress_state(tmp_path):
    p = tmp_path / "t.log"
    p.write_text("a\nb\r50%\r100%\nc\n")
    assert log_tail(p, 2) == "100%\nc"


def _harness_with_child(tmp_path, setup: str, then: str):
    """A python process (standing in for the harness) that starts a sleeping Child; (process, child pid)."""
    src = os.path.join(os.path.dirname(__file__), "..", "..", "src")
    code = (f"import sys, time; sys.path.insert(0, {src!r}); {setup}"
            "from lorasweep.infra.procs import Child;"
            f"c = Child([sys.executable, '-c', 'import time; time.sleep(60)'], {str(tmp_path / 'x.log')!r});"
            f"print(c.pid, flush=True); {then}")
    h = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, text=True)
    return h, int(h.stdout.readline())


def test_sigterm_to_harness_leaves_no_child(tmp_path):
    """A harness process killed with SIGTERM takes its child group down with it."""
    h, child = _harness_with_child(tmp_path, "from lorasweep.infra.procs import install_cleanup; install_cleanup();",
                                   "c.wait()")
    assert _alive(child)
    h.terminate()
    h.wait(timeout=20)
    time.sleep(0.3)
    assert not _alive(child)


def test_experiment_lock_excludes_a_second_sweep_and_dies_with_its_holder(tmp_path):
    from lorasweep.infra.procs import ExperimentLock, LockError

    lock = tmp_path / ".train.lock"
    code = ("import sys, time; sys.path.insert(0, %r); from lorasweep.infra.procs import ExperimentLock;"
            "l = ExperimentLock(__import__('pathlib').Path(%r), 'train.sh').__enter__(); print('held', flush=True);"
            "time.sleep(60)") % (os.path.join(os.path.dirname(__file__), "..", "..", "src"), str(lock))
    holder = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, text=True)
    assert holder.stdout.readline().strip() == "held"
    with pytest.raises(LockError, match=f"another train.sh is already running.*pid {holder.pid}"):
        with ExperimentLock(lock, "train.sh"):
            pass
    holder.kill()   # SIGKILL: the kernel releases the lock
    holder.wait()
    with ExperimentLock(lock, "train.sh"):
        pass


def test_peak_memory_of_the_group_is_sampled(tmp_path):
    code = "import time; x = bytearray(200 * 1024 * 1024); time.sleep(2.5)"
    with Child([sys.executable, "-c", code], tmp_path / "m.log") as c:
        c.wait()
    assert c.peak_rss_bytes > 150 * 1024 * 1024


def test_sigkill_of_the_harness_takes_its_child_along(tmp_path):
    """Even SIGKILL (no handler runs) leaves no trainer/server behind."""
    h, child = _harness_with_child(tmp_path, "", "time.sleep(60)")
    assert _alive(child)
    h.kill()
    h.wait(timeout=10)
    deadline = time.time() + 5
    while time.time() < deadline and _alive(child):
        time.sleep(0.1)
    assert not _alive(child)


def test_server_that_never_gets_healthy_times_out_with_its_log_tail(sandbox, tmp_path):
    """A 'vLLM' that prints and hangs: the health wait gives up after server_timeout_s,
    the error carries the server's log tail, and no process is left."""
    from conftest import write_experiment
    from lorasweep.config import load_config
    from lorasweep.serve.serve import ServerError, VLLMServer

    fake = tmp_path / "python"
    fake.write_text("#!" + sys.executable + "\nimport time\nprint('loading weights... CUDA error: pretend', flush=True)\n"
                    "time.sleep(120)\n")
    fake.chmod(0o755)
    model = tmp_path / "model"
    model.mkdir()
    (model / "config.json").write_text("{}")
    cfg = load_config(write_experiment(sandbox / "experiments" / "x.yaml",
                                       models=[{"name": "m1", "path": str(model), "template": "gemma"}],
                                       eval={"vllm_python": str(fake), "server_timeout_s": 4}))
    srv = VLLMServer(cfg, cfg.models[0], {}, None, tmp_path / "server.log")
    t0 = time.time()
    with pytest.raises(ServerError) as e:
        srv.start()
    assert time.time() - t0 < 30
    assert "not healthy after 4 s" in str(e.value) and "CUDA error: pretend" in str(e.value)
    assert "127.0.0.1" in srv.argv and "--api-key" in srv.argv
    assert not subprocess.run(["pgrep", "-f", str(fake)], capture_output=True, text=True).stdout.strip()
