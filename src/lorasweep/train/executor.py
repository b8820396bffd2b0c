"""Where jobs run. A job is `fn(cfg, item, gpus)` (a training run, or one base
model's serving and scoring), a module-level function so Ray can ship it.

- local: this machine; `share` jobs per GPU group at once (CUDA_VISIBLE_DEVICES
  set by the job from `gpus`), or one at a time on a CPU-only machine.
- ray: each job is a Ray task asking for its GPUs (Ray pins them; with
  `share` > 1 a fraction 1/share of one GPU); a job whose
  worker dies is run again up to `executor.max_retries` times. With no
  address, a local Ray cluster bound to 127.0.0.1 lives for the sweep.

Results are written by the jobs themselves into the run folders, so resuming
works the same either way. `run_jobs` yields (item, result, error) as jobs end.
"""
from __future__ import annotations

import logging
import os
import queue
import socket
import threading
from concurrent.futures import ThreadPoolExecutor, as_completed
from typing import Any, Callable, Iterator, Sequence

from ..config import ExperimentConfig
from ..infra import tools
from ..infra.paths import ROOT_ENV, checkout_root, repo_root
from ..infra.procs import install_cleanup, stop_all

log = logging.getLogger("lorasweep.executor")   # its name before the move into folders: log lines unchanged

Job = Callable[[ExperimentConfig, Any, "list[str] | None"], Any]


def gpu_groups(gpus: list[str], per_job: int, what: str = "train.gpus_per_run") -> list[list[str]]:
    """Split the GPUs into groups of `per_job` (leftovers idle); [] means the CPU."""
    if not gpus:
        return []
    if per_job > len(gpus):
        raise ValueError(f"{what}={per_job} but only {len(gpus)} GPU(s) are visible: {gpus}")
    return [gpus[i:i + per_job] for i in range(0, len(gpus) - per_job + 1, per_job)]


def where_jobs_run(cfg: ExperimentConfig, gpus_per_job: int, what: str, share: int = 1) -> str:
    """One phrase for the log: where and how many jobs run at once."""
    if cfg.executor.kind == "ray":
        return f"as Ray tasks on {cfg.executor.address or 'a local Ray cluster (127.0.0.1)'}"
    groups = gpu_groups(tools.visible_gpus(), gpus_per_job, what)
    if not groups:
        return "one at a time on the CPU"
    each = f", {share} on each" if share > 1 else ""
    return f"{len(groups) * share} at a time on GPU(s) {groups}{each}"


def run_jobs(cfg: ExperimentConfig, fn: Job, items: Sequence, gpus_per_job: int,
             what: str = "train.gpus_per_run",
             on_start: Callable[[Any, "list[str] | None"], None] | None = None,
             share: int = 1) -> Iterator[tuple[Any, Any, BaseException | None]]:
    """`share` jobs at once on each GPU group (train.runs_per_gpu); one at a time on a CPU."""
    if not items:
        return iter(())
    if cfg.executor.kind == "ray":
        return _ray_jobs(cfg, fn, items, gpus_per_job, share)
    return _local_jobs(cfg, fn, items, gpus_per_job, what, on_start, share)


def _local_jobs(cfg, fn, items, gpus_per_job, what, on_start, share=1):
    groups = gpu_groups(tools.visible_gpus(), gpus_per_job, what)
    free: queue.Queue = queue.Queue()
    # each group `share` times over, round-robin: the first jobs spread over the GPUs
    for g in [g for _ in range(share) for g in groups] or [None]:
        free.put(g)
    stopping = threading.Event()

    def job(item):
        group = free.get()   # blocks until a GPU group (or the CPU) is free
        try:
            if stopping.is_set():
                raise RuntimeError("not started: the sweep was stopped")
            if on_start is not None:
                on_start(item, group)
            return fn(cfg, item, group)
        finally:
            free.put(group)

    pool = ThreadPoolExecutor(max_workers=max(1, len(groups) * share))
    try:
        futures = {pool.submit(job, item): item for item in items}
        for fut in as_completed(futures):
            try:
                yield futures[fut], fut.result(), None
            except RuntimeError as e:
                yield futures[fut], None, e
    except BaseException:
        # Interrupted (SIGINT/SIGTERM) or the consumer stopped: start no
        # further job; running ones were signalled and end with their groups.
        stopping.set()
        stop_all()
        pool.shutdown(wait=True, cancel_futures=True)
        raise
    pool.shutdown(wait=True)


# --- Ray -----------------------------------------------------------------------

_ray_node: str | None = None   # set inside a Ray worker: the node the job runs on


def current_node() -> str:
    """Where this job runs, for its records: `ray:<node id>` inside a Ray
    worker (two nodes of one host share a host name), else the host name."""
    return f"ray:{_ray_node}" if _ray_node else socket.gethostname()


def _worker_env() -> dict[str, str]:
    """What a Ray worker needs to find this checkout, its data and the managed environments."""
    env = {ROOT_ENV: str(repo_root()), tools.HOME_ENV: str(tools.cache_home())}
    src = str(checkout_root() / "src")
    env["PYTHONPATH"] = os.pathsep.join([src] + [p for p in os.environ.get("PYTHONPATH", "").split(os.pathsep)
                                                 if p and p != src])
    return env


def _ray_call(fn: Job, cfg: ExperimentConfig, item: Any) -> Any:
    """Inside a Ray worker: the job gets the GPUs Ray gave the task (the ids
    Ray also put in CUDA_VISIBLE_DEVICES), or None on a CPU."""
    import ray

    ours = logging.getLogger("lorasweep")   # Ray's worker has its own root logging; ours goes to stderr
    if not ours.handlers:
        handler = logging.StreamHandler()
        handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s", "%H:%M:%S"))
        ours.addHandler(handler)
        ours.setLevel(logging.INFO)
        ours.propagate = False
    try:
        install_cleanup()   # a SIGTERM to the worker stops the job's children too
    except ValueError:      # not the main thread: they still die with the worker (PR_SET_PDEATHSIG)
        pass
    global _ray_node
    _ray_node = ray.get_runtime_context().get_node_id()
    gpus = [str(g) for g in ray.get_gpu_ids()]
    log.info("ray: %s started on node %s%s", getattr(item, "run_id", item), _ray_node[:12],
             f", GPU {','.join(gpus)}" if gpus else "")
    return fn(cfg, item, gpus or None)


def start_ray(cfg: ExperimentConfig) -> bool:
    """Connect to the configured cluster, or start a local one on 127.0.0.1.
    Returns True when this call started Ray (and so should shut it down)."""
    # Ray picks the machine's public address for a local node unless told that
    # clusters are off; then every part of it binds to 127.0.0.1.
    if cfg.executor.address is None:
        os.environ["RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER"] = "0"
    os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
    try:
        import ray
    except ImportError as e:
        raise RuntimeError("executor: ray needs the ray package in the harness environment "
                           "(bash shell/setup.sh harness installs it)") from e
    if ray.is_initialized():
        return False
    if cfg.executor.address is None:
        try:   # read when ray is imported; set it here too in case that happened before us
            from ray._private import ray_constants

            ray_constants.ENABLE_RAY_CLUSTER = False
        except (ImportError, AttributeError):
            pass
    common = dict(log_to_driver=True, logging_level=logging.WARNING, runtime_env={"env_vars": _worker_env()})
    if cfg.executor.address is None:
        ray.init(include_dashboard=False, num_cpus=os.cpu_count() or 1, num_gpus=len(tools.visible_gpus()),
                 object_store_memory=256 * 1024 ** 2, **common)
        where = "a local Ray cluster on 127.0.0.1"
    else:
        ray.init(address=cfg.executor.address, **common)
        where = f"the Ray cluster at {cfg.executor.address}"
    if cfg.executor.address is None:
        addresses = sorted({n["NodeManagerAddress"] for n in ray.nodes()})
        if addresses != ["127.0.0.1"]:
            log.warning("ray: the local cluster listens on %s, not only 127.0.0.1", addresses)
    res = ray.cluster_resources()
    log.info("ray: joined %s: %d node(s), %.0f CPU(s), %.0f GPU(s)", where, len(ray.nodes()),
             res.get("CPU", 0), res.get("GPU", 0))
    return True


def _task_options(cfg: ExperimentConfig, gpus_per_job: int, share: int = 1) -> dict:
    import ray

    if share > 1 and gpus_per_job > 1:   # Ray hands out a fraction of one GPU, never of several
        raise ValueError(f"on Ray, train.runs_per_gpu={share} needs train.gpus_per_run=1 (not {gpus_per_job})")
    gpus = gpus_per_job / share if ray.cluster_resources().get("GPU", 0) > 0 else 0
    cpus = cfg.executor.cpus_per_task
    if cpus is None:
        if gpus:
            cpus = 1
        else:   # a CPU job takes a whole node: two CPU trainings on one machine thrash
            cpus = min(n["Resources"].get("CPU", 1) for n in ray.nodes() if n.get("Alive", True))
    return dict(num_gpus=gpus, num_cpus=cpus, max_retries=cfg.executor.max_retries, retry_exceptions=False,
                resources=dict(cfg.executor.resources), runtime_env={"env_vars": _worker_env()})


def _ray_jobs(cfg, fn, items, gpus_per_job, share=1):
    import ray

    started = start_ray(cfg)
    refs: dict = {}
    try:
        remote = ray.remote(_ray_call).options(**_task_options(cfg, gpus_per_job, share))
        refs = {remote.remote(fn, cfg, item): item for item in items}
        pending = list(refs)
        while pending:
            done, pending = ray.wait(pending, num_returns=1)
            for ref in done:
                item = refs.pop(ref)
                try:
                    yield item, ray.get(ref), None
                except ray.exceptions.RayTaskError as e:   # the job raised: not retried
                    cause = e.as_instanceof_cause()
                    yield item, None, cause if isinstance(cause, RuntimeError) else RuntimeError(str(e))
                except ray.exceptions.RayError as e:        # its worker died more often than allowed
                    yield item, None, RuntimeError(f"the Ray worker died {cfg.executor.max_retries + 1} time(s): "
                                                   f"{str(e).splitlines()[0]}")
    finally:
        for ref in refs:   # interrupted: stop what is still queued or running
            ray.cancel(ref, force=True)
        if started:
            ray.shutdown()   # workers end, and their children with them
