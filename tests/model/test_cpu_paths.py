"""precision="auto" and the oneDNN swap decide per machine: CPU flags, a cached probe, env overrides."""

from __future__ import annotations

import json

import pytest

from mad_sim.model import cpu_paths as cp


@pytest.fixture(autouse=True)
def _fresh(monkeypatch, tmp_path):
    monkeypatch.setattr(cp, "_MEMO", {})
    monkeypatch.setenv("MAD_SIM_CACHE", str(tmp_path))
    monkeypatch.delenv("MAD_SIM_BF16", raising=False)
    monkeypatch.delenv("MAD_SIM_ONEDNN_CONV", raising=False)


def test_flags_decide_bf16():
    assert cp.bf16_choice(frozenset({"avx2", "avx512_bf16"})) == cp.Choice(True, "cpu flag avx512_bf16")
    assert cp.bf16_choice(frozenset({"amx_bf16"})).use
    off = cp.bf16_choice(frozenset({"fma", "avx", "avx2"}))  # the AVX2-only EPYC where bf16 was 9x slower
    assert not off.use and "avx512_bf16" in off.why


def test_cpuinfo_is_parsed(tmp_path):
    f = tmp_path / "cpuinfo"
    f.write_text("processor\t: 0\nmodel name\t: Test CPU 9000\nflags\t\t: fpu avx2 avx512_bf16\n")
    assert cp.cpu_flags(str(f)) == frozenset({"fpu", "avx2", "avx512_bf16"})
    assert cp.cpu_model(str(f)) == "Test CPU 9000"
    assert cp.cpu_flags(str(tmp_path / "missing")) is None


def test_auto_precision_and_overrides(monkeypatch):
    monkeypatch.setattr(cp, "cpu_flags", lambda path="/proc/cpuinfo": frozenset({"avx2"}))
    assert cp.resolve_precision("auto")[0] == "float32"
    assert cp.resolve_precision("bfloat16") == ("bfloat16", "asked for")
    assert cp.resolve_precision("auto", "cuda")[0] == "float32"
    monkeypatch.setenv("MAD_SIM_BF16", "1")
    assert cp.resolve_precision("auto") == ("bfloat16", "auto: MAD_SIM_BF16=1")


def test_probe_without_flags_runs_once_and_is_cached(monkeypatch, tmp_path):
    monkeypatch.setattr(cp, "cpu_flags", lambda path="/proc/cpuinfo": None)
    calls = []

    def probe() -> cp.Choice:
        calls.append(1)
        return cp.Choice(False, "probe: bf16 matmuls 0.11x float32's speed")

    monkeypatch.setattr(cp, "_probe_bf16", probe)
    first = cp.bf16_choice()
    assert not first.use and calls == [1]
    doc = json.loads((tmp_path / cp.CACHE_FILE).read_text())
    assert list(doc.values())[0]["bf16"]["use"] is False
    monkeypatch.setattr(cp, "_MEMO", {})  # a new process: read from the disk cache, no probe
    again = cp.bf16_choice()
    assert not again.use and again.why.endswith("cached") and calls == [1]


def test_real_probes_and_describe():
    conv = cp.onednn_conv_choice()
    assert isinstance(conv.use, bool) and conv.why
    line = cp.describe()
    assert "precision auto ->" in line and "oneDNN Conv3d swap" in line
    info = cp.system_info()
    assert info["precision_auto"] in ("float32", "bfloat16") and set(info["bf16"]) == {"use", "why"}
