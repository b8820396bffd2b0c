"""`pip install -e .` gives a `lorasweep` command with the harness's
dependencies declared. Installed (--no-deps: the build backend comes from the
package index, the dependencies are already there) into a fresh virtual
environment that sees the harness environment's packages through a .pth
file, then run as a user would."""
import subprocess
import sys
import sysconfig
import venv
from pathlib import Path

import pytest

from conftest import ROOT

pytestmark = pytest.mark.e2e


def _site(env: Path) -> Path:
    return env / "lib" / f"python{sys.version_info.major}.{sys.version_info.minor}" / "site-packages"


def test_pip_install_gives_a_lorasweep_command(tmp_path):
    env = tmp_path / "venv"
    venv.EnvBuilder(with_pip=True).create(env)
    (_site(env) / "harness.pth").write_text(sysconfig.get_paths()["purelib"] + "\n")
    py = env / "bin" / "python"
    p = subprocess.run([str(py), "-m", "pip", "install", "--quiet", "--no-deps", "-e",
                        str(ROOT)], capture_output=True, text=True, timeout=600)
    assert p.returncode == 0, p.stderr[-3000:]
    cmd = env / "bin" / "lorasweep"
    assert cmd.is_file()
    out = subprocess.run([str(cmd), "--version"], capture_output=True, text=True, cwd=tmp_path)
    assert out.returncode == 0 and out.stdout.strip().startswith("lorasweep 0.")
    for sub in ("check", "plan", "prepare", "train", "eval", "results", "notebook", "report"):
        h = subprocess.run([str(cmd), sub, "--help"], capture_output=True, text=True, cwd=tmp_path)
        assert h.returncode == 0 and "--set KEY=VALUE" in h.stdout, (sub, h.stdout, h.stderr)
        assert len(h.stdout.split("\n\n")[1].strip()) > 20, f"{sub} has no help text"
    # The dependencies declared are the harness requirements (their one home).
    reqs = subprocess.run([str(py), "-c", "import importlib.metadata as m; print('\\n'.join(m.requires('lorasweep')))"],
                          capture_output=True, text=True).stdout.split()
    pins = [ln.split("#")[0].strip() for ln in (ROOT / "requirements" / "harness.txt").read_text().splitlines()]
    from packaging.requirements import Requirement
    canon = sorted((r.name, r.specifier) for r in map(Requirement, reqs))
    assert canon == sorted((r.name, r.specifier) for r in map(Requirement, filter(None, pins)))
    # And it runs a command on an experiment from the checkout.
    plan = subprocess.run([str(cmd), "plan", str(ROOT / "experiments" / "demo.yaml")], capture_output=True,
                          text=True, cwd=ROOT, timeout=300)
    assert plan.returncode == 0, plan.stderr[-2000:]
    assert "gemma-3-270m__n320__seed1" in plan.stdout and "qwen2.5-0.5b__n320__seed1" in plan.stdout
