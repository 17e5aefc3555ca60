"""Teaching sheets of cells and super-resolution (medsynth.sheets, cyto/sheet.py, superres/sheet.py): the grid,
captions from the parameter declarations, PNG and PDF, inputs untouched, bad requests."""

from __future__ import annotations

import numpy as np
import pytest

from medsynth import InputError, Volume, make_ijk_to_ras
from medsynth.cli import main
from medsynth.io import write_volume
from medsynth.runtime import list_models


def _png_size(path):
    from PIL import Image

    with Image.open(path) as im:
        return im.size


def test_parse_vary_and_grid_checks():
    from medsynth.sheets import MAX_TILES, grid_of, parse_set, parse_vary, settings
    from medsynth.superres.sheet import SHEET_PARAMS

    assert parse_vary("spacing=2,1.5", SHEET_PARAMS) == ("spacing", [2.0, 1.5])
    assert parse_vary("method=sainr,bspline", SHEET_PARAMS)[1] == ["sainr", "bspline"]
    assert parse_set("method=linear", SHEET_PARAMS) == ("method", "linear")
    for bad in ("spacing", "spacing=", "depth=1,2", "method=magic", "spacing=0.01"):
        with pytest.raises(InputError):
            parse_vary(bad, SHEET_PARAMS)
    with pytest.raises(InputError, match="one value"):
        parse_set("method=linear,bspline", SHEET_PARAMS)
    cols, rows = grid_of([("spacing", [2.0, 1.0]), ("method", ["linear", "bspline", "sainr"])], {})
    grid = settings(cols, rows)
    assert len(grid) == 3 and grid[2][1] == {"spacing": 1.0, "method": "sainr"}
    with pytest.raises(InputError, match="twice"):
        grid_of([("spacing", [2.0]), ("spacing", [1.0])], {})
    with pytest.raises(InputError, match="both varied and set"):
        grid_of([("spacing", [2.0])], {"spacing": 1.0})
    with pytest.raises(InputError, match="at most"):
        grid_of([("spacing", [1.0] * (MAX_TILES + 1))], {})


@pytest.mark.skipif("cellgan" not in list_models(), reason="cellgan not shipped")
def test_cells_sheet_png_and_pdf(tmp_path, capsys):
    from medsynth.cyto.classes import classes_of

    out = tmp_path / "cells.png"
    assert main(["sheet", "cells", "--vary", "class=all", "--vary", "seed=0,5", "--out", str(out)]) == 0
    assert "synthetic" in capsys.readouterr().out
    w, h = _png_size(out)
    assert w > h > 300  # 4 classes across, 2 seeds down
    from medsynth.cyto.sheet import cells_sheet

    facts = cells_sheet(tmp_path / "c.pdf", [("seed", [1, 2, 3])], {"cell_class": "HSIL", "naming": "bethesda"})
    assert (tmp_path / "c.pdf").read_bytes()[:4] == b"%PDF" and len(facts["tiles"]) == 3
    assert {t["label"] for t in facts["tiles"]} == {"HSIL"}
    facts = cells_sheet(tmp_path / "d.png", [("cell_class", ["all"])], {"naming": "herlev"})
    assert [t["label"] for t in facts["tiles"]] == list(classes_of("herlev"))
    # the class must be chosen; the extra parameters of 'medsynth cells' do not apply
    assert main(["sheet", "cells", "--vary", "seed=0,1", "--out", str(tmp_path / "e.png")]) == 2
    assert "choose the class" in capsys.readouterr().err
    assert main(["sheet", "cells", "--vary", "count=1,2", "--out", str(tmp_path / "f.png")]) == 2
    assert main(["sheet", "cells", "--vary", "class=NILM", "--out", str(tmp_path / "g.jpg")]) == 2
    assert not any((tmp_path / n).exists() for n in ("e.png", "f.png", "g.jpg"))


def _thick(tmp_path):
    """A thick-slice axial phantom (4 mm slices) with a tilted bright slab, so slices differ."""
    k, j, i = np.mgrid[0:12, 0:48, 0:48].astype(np.float32)
    z = k * 4.0
    arr = 100.0 + 400.0 * (np.abs(z - (20 + 0.4 * (i - 24))) < 6) + 3.0 * j
    vol = Volume(arr.astype(np.float32), make_ijk_to_ras((1.0, 1.0, 4.0), (-24.0, -24.0, -22.0)), "thick", "MR")
    return write_volume(vol, tmp_path / "thick.nii.gz")


def test_superres_sheet(tmp_path, capsys):
    src = _thick(tmp_path)
    before = src.read_bytes()
    out = tmp_path / "sr.png"
    assert main(["sheet", "superres", "--input", str(src), "--vary", "spacing=2,1", "--vary", "method=linear,bspline",
                 "--out", str(out)]) == 0
    assert "coronal plane" in capsys.readouterr().out
    w, h = _png_size(out)
    assert w > h  # 3 columns (input + 2 spacings) by 2 rows
    assert src.read_bytes() == before
    from medsynth.superres.sheet import superres_sheet

    facts = superres_sheet(src, tmp_path / "s.pdf", [("method", ["linear", "sainr"])], {"spacing": 1.0},
                           fov_mm=40)
    assert facts["plane"] == "coronal" and facts["axis"] == "k" and len(facts["tiles"]) == 2
    assert "sainr" in facts["model"]
    # bad requests: exit 2, nothing written
    for argv in (["--vary", "spacing=5"],  # not below the 4 mm slices
                 ["--vary", "spacing=2", "--ras", "500", "0", "0"],
                 ["--vary", "adapt_steps=0,50"]):
        assert main(["sheet", "superres", "--input", str(src), *argv, "--out", str(tmp_path / "bad.png")]) == 2
    assert not (tmp_path / "bad.png").exists()
    assert main(["sheet", "superres", "--input", str(src), "--vary", "spacing=2", "--out", str(src)]) == 2
    assert src.read_bytes() == before


def test_superres_sheet_from_a_volume_in_memory(tmp_path):
    """A Volume (a studio or Slicer node's image) instead of a file: the same sheet, named by the volume."""
    from medsynth.io import read_volume
    from medsynth.superres.sheet import superres_sheet

    src = _thick(tmp_path)
    volume = read_volume(src).with_array(read_volume(src).array, name="thick_in_memory")
    before = volume.array.copy()
    from_file = superres_sheet(src, tmp_path / "f.png", [("spacing", [2.0, 1.0])], {"method": "linear"}, fov_mm=40)
    from_memory = superres_sheet(volume, tmp_path / "m.png", [("spacing", [2.0, 1.0])], {"method": "linear"},
                                 fov_mm=40)
    assert from_memory["tiles"] == from_file["tiles"] and from_memory["plane"] == from_file["plane"] == "coronal"
    assert _png_size(tmp_path / "m.png") == _png_size(tmp_path / "f.png")
    assert (tmp_path / "m.png").read_bytes() != (tmp_path / "f.png").read_bytes()  # titled by the volume's name
    np.testing.assert_array_equal(volume.array, before)  # the input is untouched
    with pytest.raises(InputError):
        superres_sheet(volume, tmp_path / "bad.png", [("spacing", [2.0])], ras=(500.0, 0.0, 0.0))
    assert not (tmp_path / "bad.png").exists()
