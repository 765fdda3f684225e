"""BLAS thread limits and the Dask settings of rmtbench's clusters (real LocalCluster, real workers)."""
from __future__ import annotations

import os

import dask
import pytest

from rmtbench.parallel import QUIET_CLUSTER_CONFIG, WORKER_MALLOC_ENV, dask_client, quiet_cluster_env


def test_blas_limits_reuse_one_controller_and_restore_the_callers_threads() -> None:
    from threadpoolctl import threadpool_info

    from rmtbench.parallel import blas_threads, single_blas_thread

    with blas_threads(2):
        with single_blas_thread():
            assert {i["num_threads"] for i in threadpool_info() if i["user_api"] == "blas"} == {1}
        assert {i["num_threads"] for i in threadpool_info() if i["user_api"] == "blas"} == {2}


def test_quiet_settings_as_environment_variables_are_read_back_by_dask() -> None:
    # SLURM task clusters start `dask scheduler`/`dask worker` with these variables: they must mean
    # the same settings as the LocalCluster's.
    read = dask.config.collect_env(quiet_cluster_env())
    for key, value in QUIET_CLUSTER_CONFIG.items():
        assert str(dask.config.get(key, config=read)) == str(value), key


@pytest.mark.timeout(120)
def test_local_cluster_workers_run_quietly_with_rmtbench_malloc_settings_and_leave_no_variable_behind(monkeypatch) -> None:
    for name in WORKER_MALLOC_ENV:  # a caller's own setting would win over rmtbench's (and is allowed to)
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("PYTHONHASHSEED", "0")  # dask_client sets it for its workers, on purpose
    before = dict(os.environ)

    def settings() -> tuple[object, object, dict[str, str | None]]:
        import os

        import dask

        return (dask.config.get("distributed.worker.profile.enabled"), dask.config.get("distributed.admin.tick.interval"),
                {name: os.environ.get(name) for name in WORKER_MALLOC_ENV})

    with dask_client({"mode": "local", "workers": 2}, threads=2) as client:
        seen = client.run(settings)
        during = dict(os.environ)
    assert len(seen) == 2
    assert all(v == (False, QUIET_CLUSTER_CONFIG["distributed.admin.tick.interval"], WORKER_MALLOC_ENV) for v in seen.values())
    # distributed's nannies write their workers' variables (MALLOC_TRIM_THRESHOLD_, OMP_NUM_THREADS, ...)
    # into the parent's os.environ: processes started from it later would inherit them.
    assert during == before
