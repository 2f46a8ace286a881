"""A run folder read back (Fit.load) keeps what the fit recorded of how it was sampled."""

import json

import pytest

import dvbstats as dvb
from dvbstats.input.manifest import ManifestError
from tests.test_itemmarginal import _rasch_cells


def test_items_integrated_round_trips(tmp_path):
    """A fit with its item effects integrated out says so after Fit.load (it was None before: a loaded fit, saved
    again, lost the record from its manifest)."""
    judgments = _rasch_cells(4, 60, 1).data.select("model", "item", outcome="n_deep")
    model = dvb.Model("outcome ~ 1 + (1|model) + (1|item)", dvb.load(judgments, benchmark="binary"))
    original = model.fit(draws=60, tune=60, chains=2, seed=1, progress=False)
    assert original.items_integrated and original.items_integrated["items"] == 60
    original.save(tmp_path / "run")
    loaded = dvb.Fit.load(tmp_path / "run")
    assert loaded.items_integrated == original.items_integrated
    loaded.save(tmp_path / "again")
    assert json.loads((tmp_path / "again" / "manifest.json").read_text())["items_integrated"] == original.items_integrated
    manifest = tmp_path / "run" / "manifest.json"
    meta = json.loads(manifest.read_text())
    manifest.write_text(json.dumps(meta | {"items_integrated": ["item"]}))
    with pytest.raises(ManifestError, match="items_integrated"):
        dvb.Fit.load(tmp_path / "run")
