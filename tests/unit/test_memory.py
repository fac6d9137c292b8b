"""The memory guard reads MemAvailable and the cgroup v2 limit, and refuses a load that would not fit."""
import pytest

from pgbert_runtime import memory

MB = 1024 * 1024


def fake_host(tmp_path, available_mb: int, limit_mb: int | None = None, used_mb: int = 0):
    proc, cgroup = tmp_path / "proc", tmp_path / "cgroup"
    (proc / "self").mkdir(parents=True)
    (proc / "meminfo").write_text(f"MemTotal: 99999999 kB\nMemAvailable: {available_mb * 1024} kB\n")
    (proc / "self" / "cgroup").write_text("0::/system.slice/postgresql.service\n")
    group = cgroup / "system.slice" / "postgresql.service"
    group.mkdir(parents=True)
    (group / "memory.max").write_text("max\n" if limit_mb is None else f"{limit_mb * MB}\n")
    (group / "memory.current").write_text(f"{used_mb * MB}\n")
    return str(proc), str(cgroup)


def test_available_memory_is_the_smaller_of_the_host_and_the_cgroup(tmp_path):
    proc, cgroup = fake_host(tmp_path, available_mb=8000)
    assert memory.available_bytes(proc, cgroup) == 8000 * MB  # memory.max is 'max': no limit
    proc, cgroup = fake_host(tmp_path / "2", available_mb=8000, limit_mb=2000, used_mb=500)
    assert memory.available_bytes(proc, cgroup) == 1500 * MB


def test_a_load_that_would_not_fit_is_refused_with_what_to_do():
    model = 436 * MB  # all-mpnet-base-v2
    memory.check_can_load(model, reserve_mb=256, available=2000 * MB)  # needs ~872 MB + 256: fits
    with pytest.raises(memory.NotEnoughMemory, match="needs about 872 MB and 1000 MB is available"):
        memory.check_can_load(model, reserve_mb=256, available=1000 * MB)
    memory.check_can_load(model, reserve_mb=0, available=900 * MB)


def test_nothing_to_measure_with_means_no_guard(monkeypatch):
    monkeypatch.setattr(memory, "available_bytes", lambda: None)
    memory.check_can_load(10**12, reserve_mb=256)
