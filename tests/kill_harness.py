"""Kill harness: run a long command as a real process, SIGKILL it at seeded moments, restart it, compare outputs.

Generic: a :class:`Job` is a command line (a ``c2ser`` sub-command, a ``data_prep`` script, or a launcher such as
``accelerate launch``), the outputs to compare, and optionally how far a run got (``progress``) and which path
exists while it saves a checkpoint (``saving``). :func:`kill_test` runs it once uninterrupted, then again in
another folder, killing it at each of ``kills`` moments and starting it again, and finally lets it finish; the
outputs must be equal. The moments are drawn from ``random.Random(seed)``, spread over the whole run: the first
at a time in the first slice of the uninterrupted run (the start: imports, loading, resume), then a progress
level in each of ``kills`` equal slices of its final progress (reached with at least one unit of new work in
that start, plus a random delay of up to 50 ms), a time slice when the job has no progress measure, and every
third one, for jobs that save checkpoints, 0-50 ms after a save started. A failure prints the seed and the
moments, so it reproduces.

Starting Python, torch and c2ser costs seconds per process, so single-process jobs run from a fork server
(``python tests/kill_harness.py --serve``): it imports them once, runs no torch op (so no OpenMP thread exists
before a fork), and forks one child per run, in a new session, that calls ``c2ser.cli.main(argv)`` or runs the
script as ``__main__``. The child is a real process: the test kills it (and its own children, e.g. ffmpeg) with
``os.killpg(pid, SIGKILL)``. Launcher jobs (``launch=True``: several processes) are started with ``subprocess``;
their workers run in sessions of their own (torch's elastic agent starts each with ``start_new_session``), so
killing the launcher's group alone would leave them training, orphaned, beside the next start. Every process of a
launcher run therefore carries a tag in its environment (``C2SER_KILL_JOB``); after a kill the harness waits up to
``ORPHAN_GRACE_S`` for them to die with the launcher (``c2ser`` workers do: c2ser/launch_guard.py), then counts
and SIGKILLs the rest; a run that ends by itself must leave no tagged process behind.
"""
from __future__ import annotations

import json
import os
import random
import signal
import subprocess
import sys
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

REPO = Path(__file__).resolve().parents[1]
POLL_S = 0.002
TAG = "C2SER_KILL_JOB"
ORPHAN_GRACE_S = 5.0


def child_env() -> dict:
    env = dict(os.environ, HF_HUB_OFFLINE="1", DS_ACCELERATOR="cpu", OMP_NUM_THREADS="1", PYTHONPATH=str(REPO),
               TOKENIZERS_PARALLELISM="false", TORCH_EXTENSIONS_DIR=str(REPO / ".torch_extensions"))
    env.pop("WORLD_SIZE", None)
    return env


@dataclass
class Job:
    name: str
    argv: Callable[[Path], list[str]]             # out dir → c2ser arguments / script arguments / launcher command
    outputs: Callable[[Path], dict[str, bytes]]   # out dir → {name: content}, compared with the uninterrupted run
    progress: Callable[[Path], int] | None = None  # out dir → work on disk (None: moments by time)
    script: str | None = None                     # a data_prep script run as __main__ instead of c2ser.cli
    saving: str | None = None                     # glob under out dir that exists while a checkpoint is saved
    launch: bool = False                          # argv is a whole command (several processes): no fork server
    prepare: Callable[[Path], None] | None = None  # makes an empty out dir ready (e.g. writes a config)


@dataclass
class Moment:
    kind: str      # "time" (s after start), "progress" (level reached), "saving" (a save has started)
    at: float
    delay: float   # seconds between the condition and the kill

    def __str__(self):
        return f"{self.kind}@{self.at:g}+{self.delay * 1000:.0f}ms"


@dataclass
class Report:
    job: str
    seed: int
    moments: list[Moment]
    events: list[str] = field(default_factory=list)
    killed: int = 0
    orphans: list[tuple[str, int]] = field(default_factory=list)  # (moment kind, processes that outlived the launcher)
    reference_s: float = 0.0
    killed_run_s: float = 0.0

    def describe(self) -> str:
        return (f"{self.job}: seed {self.seed}, {len(self.moments)} moments "
                f"[{', '.join(map(str, self.moments))}]; events: {'; '.join(self.events)}")


class ForkServer:
    """A process that has imported c2ser/torch once and forks a child per run."""

    def __init__(self):
        self.proc = subprocess.Popen([sys.executable, __file__, "--serve"], stdin=subprocess.PIPE,
                                     stdout=subprocess.PIPE, env=child_env(), cwd=REPO, text=True, bufsize=1)
        ready = self.proc.stdout.readline()
        if not ready.startswith("ready"):
            raise RuntimeError(f"fork server did not start: {ready!r}")

    def _ask(self, **msg) -> dict:
        self.proc.stdin.write(json.dumps(msg) + "\n")
        return json.loads(self.proc.stdout.readline())

    def start(self, argv: list[str], log: Path, script: str | None = None) -> int:
        return self._ask(op="start", argv=argv, log=str(log), script=script)["pid"]

    def wait(self, pid: int) -> int:
        return self._ask(op="wait", pid=pid)["rc"]

    def poll(self, pid: int) -> int | None:
        return self._ask(op="poll", pid=pid)["rc"]

    def close(self) -> None:
        if self.proc.poll() is None:
            self.proc.stdin.close()
            self.proc.wait(timeout=30)


class _Run:
    """One start of a job: through the fork server or as a launcher subprocess (own session either way)."""

    def __init__(self, server: ForkServer | None, job: Job, out: Path, log: Path):
        self.server, self.log, self.orphans = server, log, []
        self.progress0 = job.progress(out) if job.progress else 0
        self.wall0 = time.time() - 0.01
        if job.launch:
            self.tag = uuid.uuid4().hex
            self.popen = subprocess.Popen(job.argv(out), cwd=REPO, env=dict(child_env(), **{TAG: self.tag}),
                                          stdout=open(log, "ab"), stderr=subprocess.STDOUT, start_new_session=True)
            self.pid = self.popen.pid
        else:
            self.popen = None
            self.pid = server.start(job.argv(out), log, job.script)
        self.t0 = time.monotonic()

    def poll(self) -> int | None:
        return self.popen.poll() if self.popen else self.server.poll(self.pid)

    def kill(self) -> int:
        try:
            os.killpg(self.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        rc = self.wait()
        if self.popen:  # the workers (own sessions) must die with the launcher (c2ser/launch_guard.py): a grace
            deadline = time.monotonic() + ORPHAN_GRACE_S    # period, then whatever is left is counted and killed
            while tagged(self.tag) and time.monotonic() < deadline:
                time.sleep(0.05)
            self.orphans = kill_tagged(self.tag)
        return rc

    def leftovers(self) -> list[str]:
        """After the run ended: its processes still alive (each is killed), as 'pid command' lines."""
        return kill_tagged(self.tag) if self.popen else []

    def wait(self, timeout: float = 600) -> int:
        if self.popen:
            return self.popen.wait(timeout=timeout)
        return self.server.wait(self.pid)


def tagged(tag: str) -> list:
    """The live processes whose environment carries ``TAG=tag`` (orphans included: they keep their environment)."""
    import psutil

    found = []
    for p in psutil.process_iter():
        try:
            if p.environ().get(TAG) == tag and p.status() != psutil.STATUS_ZOMBIE:
                found.append(p)
        except (psutil.NoSuchProcess, psutil.AccessDenied, psutil.ZombieProcess):
            pass
    return found


def kill_tagged(tag: str, timeout: float = 30) -> list[str]:
    """SIGKILL the group of every process tagged ``tag`` and wait until each has died; returns what was alive.
    (A dying process's environment reads as empty while the kernel tears it down, so the wait is on the processes
    found, not on the tag.)"""
    import psutil

    procs, alive = tagged(tag), []
    for p in procs:
        try:
            alive.append(f"{p.pid} {' '.join(p.cmdline())[:200]}")
            group = os.getpgid(p.pid)
            if group == os.getpgrp():   # never the test's own group
                os.kill(p.pid, signal.SIGKILL)
            else:
                os.killpg(group, signal.SIGKILL)
        except (ProcessLookupError, psutil.NoSuchProcess):
            pass

    def dead(p) -> bool:
        try:
            return p.status() == psutil.STATUS_ZOMBIE
        except psutil.NoSuchProcess:
            return True

    deadline = time.monotonic() + timeout
    while not all(dead(p) for p in procs) or tagged(tag):
        if time.monotonic() > deadline:
            raise AssertionError(f"processes tagged {tag} survived SIGKILL: {[p.pid for p in procs if not dead(p)]}")
        time.sleep(0.05)
    return alive


def plan_moments(rng: random.Random, kills: int, reference_s: float, progress_total: int | None,
                 saving: bool) -> list[Moment]:
    """``kills`` moments, the i-th in the i-th slice of the run (by time, or by progress when known)."""
    moments = []
    for i in range(kills):
        u = (i + rng.random()) / kills
        if i == 0:  # one during the start (imports, model loading, resume)
            moments.append(Moment("time", round(u * reference_s, 3), 0.0))
        elif saving and i % 3 == 1:
            moments.append(Moment("saving", 0, rng.uniform(0, 0.05)))
        elif progress_total:
            moments.append(Moment("progress", int(u * progress_total), rng.uniform(0, 0.05)))
        else:
            moments.append(Moment("time", round(u * reference_s, 3), 0.0))
    return moments


def _reached(job: Job, out: Path, m: Moment, run: _Run) -> bool:
    if m.kind == "time":
        return time.monotonic() - run.t0 >= m.at
    if m.kind == "saving":  # a save of this run (not a leftover of the previous one)
        return any(p.stat().st_mtime >= run.wall0 for p in out.glob(job.saving))
    return job.progress(out) >= max(m.at, run.progress0 + 1)  # at least one unit of new work in this run


def run_once(server: ForkServer | None, job: Job, out: Path, log: Path, moment: Moment | None = None,
             limit_s: float = 300) -> str:
    """Start the job; kill it at ``moment`` (None: let it finish). Returns what happened; a run still going after
    ``limit_s`` is killed and fails the test (a hang is a bug too)."""
    run = _Run(server, job, out, log)
    while True:
        rc = run.poll()
        if rc is not None:
            break
        if moment is not None and _reached(job, out, moment, run):
            time.sleep(moment.delay)
            t = time.monotonic() - run.t0
            rc = run.kill()
            orphans = (f"; {len(run.orphans)} processes outlived the launcher (killed): {run.orphans}"
                       if run.orphans else "")
            what = f"killed after {t:.2f} s" if rc == -signal.SIGKILL else f"ended at the kill (rc {rc})"
            return f"{moment}: {what}{orphans}"
        if time.monotonic() - run.t0 > limit_s:
            run.kill()
            raise AssertionError(f"{job.name} still running after {limit_s:g} s; log {log}:\n"
                                 f"{log.read_text()[-3000:]}")
        time.sleep(POLL_S if moment is not None else 0.05)
    left = run.leftovers()
    if left:
        raise AssertionError(f"{job.name} exited (rc {rc}) but left processes running: {left}; log {log}")
    if moment is not None:
        return f"{moment}: ended before it (rc {rc})"
    if rc != 0:
        raise AssertionError(f"{job.name} failed (rc {rc}); log {log}:\n{log.read_text()[-4000:]}")
    return f"finished in {time.monotonic() - run.t0:.2f} s"


def kill_test(server: ForkServer | None, job: Job, workdir: Path, kills: int, seed: int) -> Report:
    """Uninterrupted run in ``workdir/reference``; killed ``kills`` times and finished in ``workdir/killed``;
    asserts equal outputs (and no temporary leftovers that a later run would read). Returns the report."""
    ref, out = workdir / "reference", workdir / "killed"
    for d in (ref, out):
        d.mkdir(parents=True, exist_ok=True)
        if job.prepare:
            job.prepare(d)
    t = time.monotonic()
    run_once(server, job, ref, workdir / "reference.log")
    reference_s = time.monotonic() - t
    expected = job.outputs(ref)
    assert expected, f"{job.name}: the uninterrupted run wrote none of its outputs"
    rng = random.Random(seed)
    report = Report(job.name, seed, plan_moments(rng, kills, reference_s, job.progress(ref) if job.progress else
                                                 None, job.saving is not None), reference_s=reference_s)
    t = time.monotonic()
    log = workdir / "killed.log"
    try:
        for m in report.moments:
            event = run_once(server, job, out, log, m)
            report.events.append(event)
            report.killed += ": killed after" in event
            if "outlived the launcher" in event:
                report.orphans.append((m.kind, int(event.split("; ")[1].split()[0])))
        report.events.append(run_once(server, job, out, log))
    except AssertionError as e:  # the seed and the moments, so that it reproduces
        raise AssertionError(f"{report.describe()}\n{e}") from None
    report.killed_run_s = time.monotonic() - t
    got = job.outputs(out)
    diff = sorted(k for k in expected.keys() | got.keys() if expected.get(k) != got.get(k))
    assert not diff, (f"{report.describe()}\noutputs differ from the uninterrupted run: {diff[:10]}\n"
                      f"log {log}:\n{log.read_text()[-3000:]}")
    return report


def _serve() -> None:
    """The fork server's loop: JSON requests on stdin, one JSON answer line each on stdout."""
    import runpy

    import matplotlib

    matplotlib.use("Agg")
    import peft  # noqa: F401
    import torch  # noqa: F401 - imported, never run: no OpenMP thread before fork
    import transformers.models.qwen2.modeling_qwen2  # noqa: F401 - lazily imported otherwise: seconds per child
    import transformers.models.qwen2.tokenization_qwen2  # noqa: F401
    from transformers import AutoTokenizer, PreTrainedTokenizerFast  # noqa: F401

    import c2ser.cli  # noqa: F401
    import c2ser.commands.eval  # noqa: F401
    import c2ser.commands.extract_features  # noqa: F401
    import c2ser.commands.train  # noqa: F401
    import c2ser.data.corpora  # noqa: F401
    import c2ser.data.cot  # noqa: F401
    import c2ser.encoders.emotion2vec  # noqa: F401
    import c2ser.inference.loading  # noqa: F401
    import c2ser.training.loop  # noqa: F401

    threads = len(os.listdir("/proc/self/task"))  # 1: nothing here spawned a thread (pandas would: jemalloc)
    print(f"ready ({threads} thread{'s' if threads > 1 else ''})", flush=True)
    done: dict[int, int] = {}
    for line in sys.stdin:
        req = json.loads(line)
        if req["op"] == "start":
            pid = os.fork()
            if pid == 0:
                _child(req, runpy)
            print(json.dumps({"pid": pid}), flush=True)
        elif req["op"] in ("wait", "poll"):
            pid = req["pid"]
            if pid not in done:
                got, status = os.waitpid(pid, 0 if req["op"] == "wait" else os.WNOHANG)
                if got:
                    done[pid] = os.waitstatus_to_exitcode(status)
            print(json.dumps({"rc": done.get(pid)}), flush=True)


def _child(req: dict, runpy) -> None:
    os.setsid()
    fd = os.open(req["log"], os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
    os.dup2(fd, 1)
    os.dup2(fd, 2)
    os.dup2(os.open(os.devnull, os.O_RDONLY), 0)
    rc = 1
    try:
        if req["script"]:
            sys.argv = [req["script"], *req["argv"]]
            runpy.run_path(req["script"], run_name="__main__")
            rc = 0
        else:
            import c2ser.cli

            rc = c2ser.cli.main(req["argv"])
    except SystemExit as e:
        rc = e.code if isinstance(e.code, int) else (0 if e.code is None else 1)
    except BaseException:  # noqa: BLE001 - a traceback in the log, a failing exit code
        import traceback

        traceback.print_exc()
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(rc)


if __name__ == "__main__" and sys.argv[1:] == ["--serve"]:
    _serve()
