"""The benchmark's quick mode runs every target and prints a complete
table. It asserts nothing about speed: benchmarks are not tests."""

import shutil
import subprocess

import pytest

from conftest import ROOT, diskstack_binary


def test_bench_quick_mode_runs_every_target(tmp_path):
    for tool in ("fio", "qemu-storage-daemon", "cryptsetup"):
        if not shutil.which(tool):
            pytest.skip("%s is not installed (tests/install-deps test)" % tool)
    p = subprocess.run(
        ["/usr/bin/python3", str(ROOT / "bench" / "bench.py"), "--quick",
         "--size", "64M", "--runtime", "1", "--ramp", "0",
         "--dir", str(tmp_path), "--diskstack", diskstack_binary()],
        capture_output=True, text=True, timeout=600)
    assert p.returncode == 0, p.stdout + p.stderr
    lines = p.stdout.splitlines()
    header = [c.strip() for c in lines[0].strip("|").split("|")]
    assert header[0] == "target" and len(header) == 12
    rows = {}
    for line in lines[2:]:
        if not line.startswith("| "):
            break
        cells = [c.strip() for c in line.strip("|").split("|")]
        assert len(cells) == len(header), line
        rows[cells[0]] = cells
    assert list(rows) == ["raw", "ds-direct", "ds-buffered", "ds-memdiff",
                          "ds-sqldiff", "ds-crypt", "ds-window",
                          "qsd-direct", "qsd-buffered", "qsd-qcow2",
                          "qsd-luks"]
    for name, cells in rows.items():
        # the measured columns all have numbers; raw has no daemon
        n = 7 if name == "raw" else 11
        assert all(c != "—" for c in cells[1:n]), (name, cells)
        float(cells[1])
    ratios = [l for l in lines if l.startswith("| ds-direct | qsd-direct |")]
    assert ratios and "—" not in ratios[0]
    assert any(l.startswith("| ds-buffered | qsd-buffered |") for l in lines)
    for t, peer in (("ds-memdiff", "qsd-qcow2"), ("ds-sqldiff", "qsd-qcow2"),
                    ("ds-crypt", "qsd-luks")):
        assert any(l.startswith("| %s | %s |" % (t, peer)) for l in lines)
        assert any(l.startswith("| %s | ds-direct |" % t) for l in lines)
    assert any(l.startswith("| ds-crypt | ds-window |") for l in lines)
    assert any("tables / held" in l for l in lines), "the ram memory table"
    # it cleaned up after itself
    assert not [d for d in tmp_path.iterdir() if d.name.startswith("run-")]
    with open("/proc/self/mountinfo") as f:
        assert str(tmp_path) not in f.read()
