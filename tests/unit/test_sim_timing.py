"""The simulator's timing file: every constant present and a number, nothing unknown."""

from __future__ import annotations

from pathlib import Path

import pytest

from testbed.errors import RunError
from testbed.sim.timing import DEFAULT_TIMING_PATH, load_timing


def test_shipped_timing_file_loads() -> None:
    timing = load_timing()
    assert timing.source
    assert timing.arp_requests >= 1 and timing.arp_failure_s > timing.arp_retrans_s
    assert timing.one_way(2) == pytest.approx(timing.link_one_way_s + 2 * timing.router_hop_s)


@pytest.mark.parametrize(("change", "message"), [
    (("\narp_failure_s: ", "\narp_failure_s: '3' #"), "non-negative number"),
    (("\nsyn_retrans_s: ", "\nsyn_retrans: "), "missing timing constant 'syn_retrans_s'"),
    (("\nsource:", "\nextra_s: 1\nsource:"), "unknown timing constants: extra_s"),
])
def test_bad_timing_files_are_refused(tmp_path: Path, change: tuple[str, str],
                                      message: str) -> None:
    path = tmp_path / "timing.yaml"
    path.write_text(DEFAULT_TIMING_PATH.read_text().replace(*change, 1))
    with pytest.raises(RunError, match=message):
        load_timing(path)
