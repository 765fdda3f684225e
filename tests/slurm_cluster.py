"""A real one-node SLURM on localhost for the tests: installed when allowed, started, and stopped again.

Use it from a test module with ``from slurm_cluster import slurm_cluster  # noqa: F401`` and a
``slurm_cluster`` argument. The fixture is session-scoped: the daemons start once (about 5 s) and every
daemon it started is stopped at the end, the ``/etc/slurm/slurm.conf`` symlink removed.

Why each piece is needed (measured on Debian 12, Slurm 22.05; see ``../shared/notes/slurm-one-node.md``):

- nothing starts by itself in a container: ``munged`` (as user ``munge``), ``slurmctld`` and
  ``slurmd -N localhost`` are started here, in the foreground under our own process handles;
- Snakemake's SLURM executor removes every ``SLURM_*`` variable, ``SLURM_CONF`` included, before the
  ``srun`` inside each job, so the config must also be reachable at Slurm's default path: a symlink
  ``/etc/slurm/slurm.conf`` to the temporary config, created only when no such file exists;
- there is no accounting database, so ``sacct`` fails: the plugin must be told
  ``--slurm-status-command squeue``, and ``MinJobAge=300`` keeps finished jobs visible to ``squeue``.

When SLURM cannot be started (not root, no binaries and no ``apt-get``, installation forbidden with
``RMTBENCH_SLURM_INSTALL=0``, a foreign ``slurm.conf`` or daemon already present, a daemon that does
not come up) every test using the fixture is skipped with the reason; none passes silently.
"""
from __future__ import annotations

import contextlib
import os
import shutil
import signal
import socket
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator

import pytest

DEFAULT_CONF = Path("/etc/slurm/slurm.conf")
PACKAGES = ("slurm-wlm", "munge")
PARTITION = "debug"
SLURMCTLD_PORT = 6817
SLURMD_PORT = 6818


@dataclass
class SlurmCluster:
    """Handle on the running one-node cluster."""

    conf: Path
    root: Path
    cpus: int
    memory_mb: int
    partition: str = PARTITION

    def env(self) -> dict[str, str]:
        """The environment for SLURM client commands (``SLURM_CONF`` set, stray ``SLURM_*`` removed)."""
        env = {k: v for k, v in os.environ.items() if not k.startswith(("SLURM_", "SBATCH_", "SRUN_"))}
        env["SLURM_CONF"] = str(self.conf)
        return env

    def run(self, *args: str, check: bool = True, timeout: float = 60) -> subprocess.CompletedProcess:
        """Run a SLURM client command (``sbatch``, ``squeue``, ``scontrol`` ...)."""
        return subprocess.run(list(args), env=self.env(), capture_output=True, text=True, check=check, timeout=timeout)

    def jobs(self, fmt: str = "%i|%j|%T|%C|%m|%l|%D|%k", name: str | None = None) -> list[str]:
        """``squeue --states=all`` lines (pending, running and finished jobs still within MinJobAge)."""
        args = ["squeue", "--states=all", "--noheader", f"--format={fmt}"]
        if name:
            args += ["--name", name]
        return [line for line in self.run(*args).stdout.splitlines() if line.strip()]

    def wait_for_jobs(self, job_ids: list[str], timeout: float = 120) -> dict[str, str]:
        """Wait until the jobs have left the PENDING/RUNNING/COMPLETING states; their final states."""
        deadline = time.monotonic() + timeout
        while True:
            states = {}
            for line in self.jobs("%i|%T"):
                job, state = line.split("|")
                states[job] = state
            final = {j: states.get(j, "GONE") for j in job_ids}
            if all(s not in ("PENDING", "RUNNING", "COMPLETING", "CONFIGURING") for s in final.values()):
                return final
            if time.monotonic() > deadline:
                raise TimeoutError(f"SLURM jobs {job_ids} still not finished after {timeout} s: {final}")
            time.sleep(0.5)


def _skip(reason: str) -> None:
    pytest.skip(f"no one-node SLURM: {reason}")


def _port_in_use(port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        return sock.connect_ex(("127.0.0.1", port)) == 0


def _ensure_installed() -> None:
    missing = [b for b in ("slurmctld", "slurmd", "sbatch", "squeue", "munged", "munge") if shutil.which(b) is None]
    if not missing:
        return
    if os.environ.get("RMTBENCH_SLURM_INSTALL", "1") == "0":
        _skip(f"{', '.join(missing)} not installed and RMTBENCH_SLURM_INSTALL=0 forbids installing {' '.join(PACKAGES)}")
    if os.geteuid() != 0 or shutil.which("apt-get") is None:
        _skip(f"{', '.join(missing)} not installed, and apt-get as root is not available to install {' '.join(PACKAGES)}")
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    install = ["apt-get", "install", "-y", "-qq", *PACKAGES]
    result = subprocess.run(install, env=env, capture_output=True, text=True, timeout=600)
    if result.returncode != 0:  # stale package lists: update once and retry
        subprocess.run(["apt-get", "update", "-qq"], env=env, capture_output=True, text=True, timeout=600)
        result = subprocess.run(install, env=env, capture_output=True, text=True, timeout=600)
    if result.returncode != 0:
        _skip(f"apt-get install {' '.join(PACKAGES)} failed: {result.stderr.strip()[-500:]}")


def _slurm_conf(root: Path, cpus: int, memory_mb: int) -> str:
    return f"""\
# One-node SLURM for rmtbench tests (written by tests/slurm_cluster.py).
ClusterName=rmtbench-test
SlurmctldHost=localhost
SlurmUser=root
SlurmdUser=root
AuthType=auth/munge
StateSaveLocation={root}/state
SlurmdSpoolDir={root}/spool
SlurmctldPidFile={root}/slurmctld.pid
SlurmdPidFile={root}/slurmd.pid
SlurmctldLogFile={root}/slurmctld.log
SlurmdLogFile={root}/slurmd.log
SlurmctldPort={SLURMCTLD_PORT}
SlurmdPort={SLURMD_PORT}
# no cgroups in a container
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
SelectType=select/cons_tres
SelectTypeParameters=CR_Core_Memory
# without a default, a job that gives no --mem takes the whole node
DefMemPerCPU=1000
# finished jobs stay visible to squeue (the plugin's status command here) for 5 minutes
MinJobAge=300
# the node's CPUs and memory are taken from this file, not probed
SlurmdParameters=config_overrides
ReturnToService=2
SchedulerType=sched/backfill
AccountingStorageType=accounting_storage/none
JobAcctGatherType=jobacct_gather/none
JobCompType=jobcomp/none
MpiDefault=none
KillWait=5
InactiveLimit=0
NodeName=localhost NodeAddr=127.0.0.1 CPUs={cpus} RealMemory={memory_mb} State=UNKNOWN
PartitionName={PARTITION} Nodes=localhost Default=YES MaxTime=INFINITE State=UP
"""


def _wait(predicate, timeout: float, what: str, logs: list[Path]) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(0.25)
    tails = []
    for log in logs:
        if log.exists():
            tails.append(f"--- {log.name}:\n" + "\n".join(log.read_text(errors="replace").splitlines()[-15:]))
    raise RuntimeError(f"{what} did not come up within {timeout:.0f} s\n" + "\n".join(tails))


def _ok(args: list[str], env: dict[str, str]) -> bool:
    try:
        return subprocess.run(args, env=env, capture_output=True, timeout=10).returncode == 0
    except (OSError, subprocess.TimeoutExpired):
        return False


def _munge_works(env: dict[str, str]) -> bool:
    try:
        token = subprocess.run(["munge", "-n"], env=env, capture_output=True, timeout=10)
        if token.returncode != 0:
            return False
        return subprocess.run(["unmunge"], input=token.stdout, env=env, capture_output=True, timeout=10).returncode == 0
    except (OSError, subprocess.TimeoutExpired):
        return False


def _node_state(env: dict[str, str]) -> str:
    result = subprocess.run(["sinfo", "--noheader", "--Node", "--format=%t"], env=env, capture_output=True, text=True, timeout=10)
    return result.stdout.strip()


def _stop(proc: subprocess.Popen, timeout: float = 15) -> None:
    if proc.poll() is not None:
        return
    proc.send_signal(signal.SIGTERM)
    try:
        proc.wait(timeout)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait(5)


@contextlib.contextmanager
def one_node_slurm(root: Path) -> Iterator[SlurmCluster]:
    """Start munged (if none answers), slurmctld and slurmd on localhost; stop what was started.

    Calls :func:`pytest.skip` with the reason when SLURM cannot be started.
    """
    if os.geteuid() != 0:
        _skip("the daemons must run as root (slurmd starts jobs as their user)")
    _ensure_installed()
    if DEFAULT_CONF.exists() or DEFAULT_CONF.is_symlink():
        if DEFAULT_CONF.is_symlink() and not DEFAULT_CONF.resolve().exists():
            DEFAULT_CONF.unlink()  # a dangling link left by a killed earlier session
        else:
            _skip(f"{DEFAULT_CONF} already exists (a real SLURM installation?); not touching it")
    for port, daemon in ((SLURMCTLD_PORT, "slurmctld"), (SLURMD_PORT, "slurmd")):
        if _port_in_use(port):
            _skip(f"port {port} is in use: another {daemon} runs here")

    cpus = max(2, os.cpu_count() or 1)  # the two-task test needs two CPUs; config_overrides allows it
    with open("/proc/meminfo") as meminfo:
        total_kb = next(int(line.split()[1]) for line in meminfo if line.startswith("MemTotal"))
    memory_mb = max(4000, int(total_kb / 1024 * 0.75))
    for sub in ("state", "spool"):
        (root / sub).mkdir(parents=True, exist_ok=True)
    conf = root / "slurm.conf"
    conf.write_text(_slurm_conf(root, cpus, memory_mb))
    cluster = SlurmCluster(conf=conf, root=root, cpus=cpus, memory_mb=memory_mb)
    env = cluster.env()

    started: list[subprocess.Popen] = []
    made_dir = not DEFAULT_CONF.parent.exists()
    logs = [root / "munged.log", root / "slurmctld.log", root / "slurmd.log"]
    try:
        DEFAULT_CONF.parent.mkdir(parents=True, exist_ok=True)
        DEFAULT_CONF.symlink_to(conf)
        if not _munge_works(env):
            run_dir = Path("/run/munge")
            run_dir.mkdir(parents=True, exist_ok=True)
            for folder in (run_dir, Path("/var/lib/munge"), Path("/var/log/munge")):
                folder.mkdir(parents=True, exist_ok=True)
                shutil.chown(folder, "munge", "munge")
            munged = ["setpriv", "--reuid=munge", "--regid=munge", "--init-groups", "munged", "--foreground"]
            with open(logs[0], "w") as munged_log:  # the child keeps its own descriptor
                started.append(subprocess.Popen(munged, stdout=munged_log, stderr=subprocess.STDOUT, start_new_session=True))
            _wait(lambda: _munge_works(env), 20, "munged", logs[:1])
        started.append(subprocess.Popen(["slurmctld", "-D", "-c", "-f", str(conf)], env=env, stdout=subprocess.DEVNULL,
                                        stderr=subprocess.STDOUT, start_new_session=True))
        _wait(lambda: _ok(["scontrol", "ping"], env) and "UP" in subprocess.run(
            ["scontrol", "ping"], env=env, capture_output=True, text=True).stdout, 30, "slurmctld", logs[1:2])
        started.append(subprocess.Popen(["slurmd", "-D", "-N", "localhost", "-f", str(conf)], env=env, stdout=subprocess.DEVNULL,
                                        stderr=subprocess.STDOUT, start_new_session=True))
        _wait(lambda: _node_state(env) in ("idle", "mix", "alloc"), 30, "slurmd (node idle)", logs[1:])
    except (RuntimeError, OSError, subprocess.SubprocessError) as exc:
        for proc in reversed(started):
            _stop(proc)
        _remove_link(conf, made_dir)
        _skip(f"could not start the daemons: {exc}")

    try:
        yield cluster
    finally:
        with contextlib.suppress(Exception):
            subprocess.run(["scancel", "--full", "--partition", PARTITION], env=env, capture_output=True, timeout=20)
            deadline = time.monotonic() + 20
            while time.monotonic() < deadline and any(
                state in ("RUNNING", "COMPLETING", "PENDING") for state in
                subprocess.run(["squeue", "--noheader", "--format=%T"], env=env, capture_output=True, text=True, timeout=10).stdout.split()
            ):
                time.sleep(0.5)
        for proc in reversed(started):
            _stop(proc)
        _remove_link(conf, made_dir)


def _remove_link(conf: Path, made_dir: bool) -> None:
    if DEFAULT_CONF.is_symlink() and os.readlink(DEFAULT_CONF) == str(conf):
        DEFAULT_CONF.unlink()
    if made_dir:
        with contextlib.suppress(OSError):
            DEFAULT_CONF.parent.rmdir()


@pytest.fixture(scope="session")
def slurm_cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SlurmCluster]:
    """A running one-node SLURM (partition ``debug``); skips with the reason when none can be started."""
    root = tmp_path_factory.mktemp("slurm")
    with pytest.MonkeyPatch.context() as patch, one_node_slurm(root) as cluster:
        patch.setenv("SLURM_CONF", str(cluster.conf))
        yield cluster
