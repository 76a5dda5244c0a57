"""Real devices with published relocation outcomes (corpus/cases): barsafe must agree with each.

What worked is never judged forbid or refused; what failed is never recommended.
"""

from pathlib import Path

import pytest
import yaml

from engine.model import Platform
from engine.rules import library
from engine.score import answer
from engine.sources import record
from engine.units import parse_size

CASES = sorted((Path(__file__).resolve().parents[1] / "corpus" / "cases").glob("*.yaml"))


@pytest.fixture(scope="module")
def lib(tmp_path_factory):
    import os
    os.environ["BARSAFE_CACHE_DIR"] = str(tmp_path_factory.mktemp("cache"))
    return library.load()


def load_case(path: Path):
    text = path.read_text()
    data = yaml.safe_load(text)
    root = yaml.compose(text, Loader=yaml.SafeLoader)
    node = next(v for k, v in root.value if k.value == "device")
    device = record.device_from_node(node, str(path))
    platform = Platform(parse_size(str(data["platform"]["page_size"])), data["platform"]["io_space"])
    return data, device, platform


def test_there_are_at_least_eight_cases():
    assert len(CASES) >= 8


@pytest.mark.parametrize("path", CASES, ids=lambda p: p.stem)
def test_case_is_complete(path):
    data, device, _ = load_case(path)
    assert data["title"] and data["sources"] and data["observations"]
    for obs in data["observations"]:
        assert obs["outcome"] in ("works", "fails") and obs["evidence"]
    assert device.msix is not None


@pytest.mark.parametrize("path", CASES, ids=lambda p: p.stem)
def test_which_agrees_with_every_observation(path, lib):
    data, device, platform = load_case(path)
    a = answer(device, platform, lib)
    rows = {r.strategy: r for r in a.candidates}
    recommended = a.recommendation.option if a.recommendation else None
    for obs in data["observations"]:
        row = rows[obs["strategy"]]
        if obs["outcome"] == "works":
            assert row.verdict not in ("forbid", "refused"), (obs, row.verdict,
                                                              [v.rule_id for v in row.judgement.violations],
                                                              row.judgement.outcome.refused)
        else:
            assert row.verdict in ("forbid", "refused") or row.option != recommended, (obs, row.verdict)
            assert recommended is None or row.option != recommended, (obs, recommended)
