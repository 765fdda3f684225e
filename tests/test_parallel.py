"""BLAS thread limits and the Dask settings of rmtbench's clusters (real LocalCluster, real workers)."""
from __future__ import annotations

import dask
import pytest

from rmtbench.parallel import QUIET_CLUSTER_CONFIG, dask_client, quiet_cluster_env


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
def test_local_cluster_workers_run_without_the_profiler() -> None:
    def settings() -> tuple[object, object]:
        import dask

        return dask.config.get("distributed.worker.profile.enabled"), dask.config.get("distributed.admin.tick.interval")

    with dask_client({"mode": "local", "workers": 2}, threads=2) as client:
        seen = client.run(settings)
    assert len(seen) == 2
    assert set(seen.values()) == {(False, QUIET_CLUSTER_CONFIG["distributed.admin.tick.interval"])}
