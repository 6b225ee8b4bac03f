"""cropai.cluster: a real LocalCluster here, or the scheduler the settings name."""

import pytest
from distributed import Client, LocalCluster

from cropai.cluster import dask_cluster, visible_gpus
from cropai.config import Settings


def test_without_an_address_a_local_cluster_runs_work(settings: Settings, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "")
    with dask_cluster(settings.model_copy(update={"dask_workers": 2})) as address, Client(address) as client:
        assert len(client.scheduler_info()["workers"]) == 2
        assert client.submit(sum, [1, 2, 3]).result() == 6


def test_an_address_in_the_settings_is_used_as_it_is(settings: Settings) -> None:
    with LocalCluster(n_workers=1, processes=False, dashboard_address=None) as existing:
        given = settings.model_copy(update={"dask_address": existing.scheduler_address})
        with dask_cluster(given) as address:
            assert address == existing.scheduler_address


@pytest.mark.parametrize(("visible", "count"), [("", 0), ("0", 1), ("0,1", 2), ("-1", 0)])
def test_visible_gpus_follow_cuda_visible_devices(monkeypatch: pytest.MonkeyPatch, visible: str, count: int) -> None:
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", visible)
    assert visible_gpus() == count
