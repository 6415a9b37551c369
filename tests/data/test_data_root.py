"""One data root: ``mad_sim.data.root.data_root`` honours ``MAD_SIM_DATA``, and nothing else spells the default out."""

from __future__ import annotations

import re
from pathlib import Path

from mad_sim.data.root import data_root

REPO = Path(__file__).resolve().parents[2]


def test_data_root_honours_the_variable(monkeypatch, tmp_path) -> None:
    monkeypatch.setenv("MAD_SIM_DATA", str(tmp_path))
    assert data_root() == tmp_path
    monkeypatch.delenv("MAD_SIM_DATA")
    assert data_root() == REPO.parent / "shared" / "data"


def test_no_second_copy_of_the_default() -> None:
    """Library, tests, bench and scripts resolve data through :func:`data_root`, not a path of their own."""
    spelled = re.compile(r"""["']shared["']\s*/\s*["']data["']|MAD_SIM_DATA["']""")
    own = REPO / "mad_sim" / "data" / "root.py"
    found = sorted(
        str(p.relative_to(REPO))
        for folder in ("mad_sim", "envs", "planners", "eval", "bench", "scripts", "tests")
        for p in (REPO / folder).rglob("*.py")
        if p != own and p != Path(__file__).resolve() and spelled.search(p.read_text(encoding="utf-8"))
    )
    assert not found, f"these build the data root themselves instead of calling data_root(): {found}"
