"""The offline bundle made and installed for real: shell/bundle.sh resolves
and downloads the harness environment for this machine's Python (from the
package index), told that the target already has everything but two small
packages; the pieces go to setup.sh --bundle with a fresh cache home, which
checks and unpacks them and builds the environment with no index: the two
packages come from the bundle, the rest from the target's own environment."""
import os
import subprocess
import sys
from pathlib import Path

import pytest

from conftest import ROOT

pytestmark = pytest.mark.e2e

FROM_BUNDLE = ("tqdm", "pyyaml")


def test_bundle_made_and_installed_offline(tmp_path):
    freeze = subprocess.run([sys.executable, "-m", "pip", "freeze"], capture_output=True, text=True).stdout
    have = tmp_path / "have.txt"
    have.write_text("".join(line + "\n" for line in freeze.splitlines()
                            if line.split("==")[0].lower() not in FROM_BUNDLE))
    env = {**os.environ, "LORASWEEP_PYTHON": sys.executable, "LORASWEEP_HOME": str(tmp_path / "home")}
    ver = f"{sys.version_info.major}.{sys.version_info.minor}"
    made = subprocess.run(["bash", str(ROOT / "shell" / "bundle.sh"), str(tmp_path / "b"), "--envs", "harness",
                           "--no-models", "--have", str(have), "--python-version", ver, "--piece-mb", "1"],
                          capture_output=True, text=True, env=env, timeout=900)
    assert made.returncode == 0, made.stderr[-3000:]
    pieces = Path(made.stdout.strip().splitlines()[-1])
    lock = (tmp_path / "b" / "locks" / "harness.txt").read_text().split()
    assert sorted(x.split("==")[0] for x in lock) == sorted(FROM_BUNDLE), lock
    parts = sorted(pieces.glob("lorasweep-bundle.tar.*"))
    assert len(parts) >= 2 and all(p.stat().st_size <= 1_000_000 for p in parts)

    # A damaged piece is refused before anything is installed.
    damaged = tmp_path / "damaged"
    damaged.mkdir()
    for p in [*parts, pieces / "SHA256SUMS"]:
        (damaged / p.name).write_bytes(p.read_bytes())
    with open(damaged / parts[0].name, "r+b") as f:
        f.write(b"x")
    bad = subprocess.run(["bash", str(ROOT / "shell" / "setup.sh"), "--bundle", str(damaged), "harness"],
                         capture_output=True, text=True, env=env, timeout=300)
    assert bad.returncode != 0 and "damaged" in bad.stderr
    assert not (tmp_path / "home" / "envs" / "harness").exists()

    # Offline: no index can be reached (a proxy that does not exist, PIP_INDEX_URL nowhere).
    offline = {**env, "PIP_INDEX_URL": "http://127.0.0.1:9/simple", "https_proxy": "http://127.0.0.1:9",
               "http_proxy": "http://127.0.0.1:9"}
    ok = subprocess.run(["bash", str(ROOT / "shell" / "setup.sh"), "--bundle", str(pieces), "harness"],
                        capture_output=True, text=True, env=offline, timeout=900)
    assert ok.returncode == 0, ok.stderr[-3000:]
    py = tmp_path / "home" / "envs" / "harness" / "bin" / "python"
    where = subprocess.run([str(py), "-c", "import yaml, tqdm, pandas, lorasweep.config as c; "
                            "print(yaml.__file__); print(tqdm.__file__); print(pandas.__file__)"],
                           capture_output=True, text=True, env={**env, "PYTHONPATH": str(ROOT / "src")})
    assert where.returncode == 0, where.stderr[-2000:]
    yaml_at, tqdm_at, pandas_at = where.stdout.split()
    home_env = str(tmp_path / "home" / "envs" / "harness")
    assert yaml_at.startswith(home_env) and tqdm_at.startswith(home_env)   # from the bundle
    assert not pandas_at.startswith(home_env)                             # the target's own
    # Later runs (every shell script calls setup.sh) remember the bundle: nothing rebuilt, still offline.
    again = subprocess.run(["bash", str(ROOT / "shell" / "setup.sh"), "harness"], capture_output=True, text=True,
                           env=offline, timeout=300)
    assert again.returncode == 0 and "harness environment ready" in again.stderr, again.stderr[-2000:]
    assert "creating" not in again.stderr
