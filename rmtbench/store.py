"""Zarr stores of xarray datasets: atomic writes, provenance, safe reads.

A store at ``path`` exists only when complete: it is written to a sibling temporary path
(``<name>.tmp-<pid>-<random>@<host>``) and renamed into place. A temporary store whose writing process
is gone is an orphan of a killed job; :func:`remove_orphans` deletes it on the next run. Only a writer
on the same host can tell whether a pid is alive, so temporary stores of other hosts (cluster nodes
sharing the results folder) are never removed here.
"""
from __future__ import annotations

import json
import os
import re
import shutil
import socket
import subprocess
import sys
import uuid
import warnings
from functools import lru_cache
from pathlib import Path
from typing import Any, Mapping

TMP_MARK = ".tmp-"
ZARR_FORMAT = 2
"""Zarr v2: fixed-width string coordinates have no stable v3 encoding yet, and v2 is read everywhere."""


def _pid_alive(pid: int) -> bool:
    """Whether a process ``pid`` runs on this host (a zombie, killed but not yet reaped, does not)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    try:  # Linux: a killed writer whose parent died may stay a zombie for long (containers without init)
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return True
    return stat.rsplit(")", 1)[-1].split()[0] != "Z"


def _host() -> str:
    return re.sub(r"[^A-Za-z0-9._-]", "_", socket.gethostname()) or "localhost"


def temporary_path(path: str | os.PathLike[str], *, tag: str = "") -> Path:
    """A fresh sibling of ``path`` naming this writer: ``<name>.tmp-<pid>-<tag><random>@<host>``."""
    path = Path(path)
    return path.with_name(f"{path.name}{TMP_MARK}{os.getpid()}-{tag}{uuid.uuid4().hex[:8]}@{_host()}")


def write_text_atomic(path: str | os.PathLike[str], text: str) -> Path:
    """Write ``text`` to ``path`` through a temporary sibling and a rename: a reader never sees half."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = temporary_path(path)
    tmp.write_text(text, encoding="utf-8")
    os.replace(tmp, path)
    return path


def is_orphan(entry: str | os.PathLike[str]) -> bool:
    """Whether ``entry`` is a temporary store left by a dead writer on this host."""
    name = Path(entry).name
    if TMP_MARK not in name:
        return False
    rest = name.split(TMP_MARK, 1)[1]
    pid, _, tail = rest.partition("-")
    if not pid.isdigit():
        return False
    if "@" in tail and tail.rsplit("@", 1)[1] != _host():
        return False  # another host's writer: its pid cannot be checked here
    return not _pid_alive(int(pid))


def remove_orphans(directory: str | os.PathLike[str]) -> list[Path]:
    """Delete temporary stores in ``directory`` left by dead writers on this host; return them."""
    directory = Path(directory)
    removed = []
    if not directory.is_dir():
        return removed
    for entry in directory.iterdir():
        if is_orphan(entry):
            shutil.rmtree(entry, ignore_errors=True)
            removed.append(entry)
    return removed


def write_dataset(dataset: Any, path: str | os.PathLike[str]) -> Path:
    """Write an xarray dataset to a Zarr store at ``path`` atomically; replace an existing store.

    Attributes must be JSON-serialisable (nested values are stored as JSON text by
    :func:`provenance`). Encodings inherited from stores the data were read from are dropped, so
    each variable is written as what it now holds (a boolean flag that gained NaN for missing cells
    stays NaN instead of being cast to True). Returns the final path.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    remove_orphans(path.parent)
    tmp = temporary_path(path)
    try:
        # consolidated: a plain xarray.open_zarr(path) reads one metadata file, quietly
        dataset.drop_encoding().to_zarr(tmp, mode="w", zarr_format=ZARR_FORMAT, consolidated=True)
        if path.exists():
            old = temporary_path(path, tag="old")
            os.rename(path, old)
            os.rename(tmp, path)
            shutil.rmtree(old, ignore_errors=True)
        else:
            os.rename(tmp, path)
    finally:
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)
    return path


def open_dataset(path: str | os.PathLike[str], *, load: bool = True) -> Any:
    """Open a store written by :func:`write_dataset` (plain xarray + Zarr; never unpickles).

    Raises
    ------
    FileNotFoundError
        If ``path`` is missing or is an unfinished temporary store.
    """
    import xarray as xr

    path = Path(path)
    if TMP_MARK in path.name or not path.is_dir():
        raise FileNotFoundError(f"no complete store at {path}")
    with warnings.catch_warnings():
        # Snakemake leaves a .snakemake_timestamp file inside directory outputs; it is not Zarr.
        warnings.filterwarnings("ignore", message=".*snakemake_timestamp.*")
        consolidated = (path / ".zmetadata").is_file()  # stores written before 2026-12 are not consolidated
        dataset = xr.open_zarr(path, consolidated=consolidated, zarr_format=ZARR_FORMAT)
        return dataset.load() if load else dataset


@lru_cache(maxsize=1)
def _git_revision() -> str:
    here = Path(__file__).resolve().parent
    try:
        out = subprocess.run(["git", "rev-parse", "HEAD"], cwd=here, capture_output=True, text=True, timeout=5)
        dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"], cwd=here, capture_output=True, text=True, timeout=5)
    except (OSError, subprocess.SubprocessError):
        return "unknown"
    if out.returncode != 0:
        return "unknown"
    return out.stdout.strip() + ("-dirty" if dirty.stdout.strip() else "")


def package_versions() -> dict[str, str]:
    """Versions of the packages whose code determines the numbers."""
    return dict(_package_versions())


@lru_cache(maxsize=1)
def _package_versions() -> dict[str, str]:
    # importlib.metadata parses each package's METADATA file (about 9 ms for the list); once per process
    from importlib.metadata import PackageNotFoundError, version

    versions = {"python": sys.version.split()[0]}
    for name in ("rmtbench", "numpy", "scipy", "dask", "distributed", "xarray", "zarr"):
        try:
            versions[name] = version(name)
        except PackageNotFoundError:
            versions[name] = "not installed"
    return versions


def provenance(**items: Any) -> dict[str, str]:
    """Store attributes recording how a result was made.

    Every keyword becomes an attribute holding JSON text (``cell``, ``config``, ``seeds`` ...); package
    versions and the git revision are always added.
    """
    attrs = {key: value if isinstance(value, str) else json.dumps(value, sort_keys=True, default=str) for key, value in items.items()}
    attrs["package_versions"] = json.dumps(package_versions(), sort_keys=True)
    attrs["git_revision"] = _git_revision()
    return attrs


def decode_attr(dataset: Any, key: str) -> Any:
    """The JSON attribute ``key`` of a stored dataset, decoded."""
    return json.loads(dataset.attrs[key])


def attrs_json(value: Mapping[str, Any]) -> str:
    """JSON text for an attribute."""
    return json.dumps(value, sort_keys=True, default=str)
