"""The intake benchmark's disk probe: it times real fdatasyncs in its folder, in a thread, until the phase ends."""

import time
from pathlib import Path

from bench.intake import DiskProbe


def test_disk_probe_times_fdatasyncs_until_the_phase_ends(tmp_path: Path) -> None:
    with DiskProbe(tmp_path) as probe:
        time.sleep(0.3)
    taken = len(probe.durations_ms)
    time.sleep(0.05)
    assert len(probe.durations_ms) == taken  # stopped with the phase
    assert 1 <= taken <= 30  # one every 10 ms at most (each waits 10 ms first); a slow disk takes fewer
    assert (tmp_path / "disk-probe").stat().st_size > 0
    figures = probe.figures()
    assert 0 < figures["p99_ms"] <= figures["max_ms"] == max(probe.durations_ms)
    assert figures["over_50"] == sum(1 for d in probe.durations_ms if d >= 50)


def test_an_empty_phase_has_zero_figures(tmp_path: Path) -> None:
    assert DiskProbe(tmp_path).figures() == {"p99_ms": 0.0, "max_ms": 0.0, "over_50": 0}
