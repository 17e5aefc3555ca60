"""Reading MetaAD results in the studio's PDMetabolism panel (issue #22): the regional-SD z map over the FDG with the
logic's diverging colours, the threshold in z units (live, both signs), the legend text, the 3D view, the regional
table in the panel.

As Testing/test_studio.py: no server is started and no browser; panels get a trame server whose state is marked
ready, on the real Slicer core (trame-slicer's SlicerApp, off-screen views).
"""

from __future__ import annotations

import itertools
import sys

import numpy as np
import pytest

from conftest import REPO

pytest.importorskip("trame_slicer", reason="needs trame-slicer (pip install 'trame-slicer[standalone]==2.0.0')")
sys.path.insert(0, str(REPO / "PDMetabolism"))

pytestmark = pytest.mark.skipif(
    "metaad-cycle" not in __import__("medsynth.runtime", fromlist=["x"]).list_models(),
    reason="the metaad-cycle model is not in Resources/Models",
)
_names = itertools.count()
TITLE = "z (regional NC SD); blue hypo, red hyper"


@pytest.fixture
def server():
    from trame.app import get_server

    return get_server(f"pdmeta_reading_{next(_names)}", client_type="vue3")


@pytest.fixture
def context(server):
    """The studio context on the real Slicer core with off-screen axial/coronal/sagittal/3D views."""
    from trame_slicer.core import SlicerApp
    from trame_slicer.views import DirectViewFactory, ViewLayoutDefinition
    from trame_slicer.views.render_scheduler import NoScheduleRendering

    from medsynth_studio.context import StudioContext

    app = SlicerApp()
    app.view_manager.register_factory(DirectViewFactory(do_render_offscreen=True))
    for definition in (ViewLayoutDefinition.axial_view(), ViewLayoutDefinition.coronal_view(),
                       ViewLayoutDefinition.sagittal_view(), ViewLayoutDefinition.threed_view()):
        view = app.view_manager.create_view(definition)
        view.render_window().SetSize(120, 120)
        view.set_scheduled_render(NoScheduleRendering())
    return StudioContext(app, server)


from test_studio import make_panel, run_async, snapshot  # noqa: E402 (the studio tests' panel helpers)


@pytest.fixture
def detected(context):
    """The Volumes and PDMetabolism panels, a simulated PD FDG, *Detect anomalies* run."""
    from medsynth_studio.pdmeta import PDMetabolismPanel
    from medsynth_studio.volumes import VolumesPanel

    volumes = make_panel(VolumesPanel, context)
    pd = make_panel(PDMetabolismPanel, context)
    run_async(lambda: pd.run_action("simulate"))
    assert pd.tasks.last_outcome == "done", context.state["pdmeta_error"]
    fdg = pd.node("fdg")
    axial = next(v for v in context.slice_views() if v.get_orientation() == "Axial")
    before = snapshot(axial)
    run_async(lambda: pd.run_action("detect"))
    assert pd.tasks.last_outcome == "done", context.state["pdmeta_error"]
    return {"volumes": volumes, "pd": pd, "fdg": fdg, "axial": axial, "before": before}


def test_z_map_is_the_foreground_with_the_logic_colours_legend_and_3d(context, detected):
    from PDMetabolismLib import Z_LEGEND_TITLE

    pd, fdg, axial = detected["pd"], detected["fdg"], detected["axial"]
    z = context.scene.GetNodeByID(context.state["pdmeta_output_id"])
    assert z is pd.map_node and z.GetName() == f"{fdg.GetName()}_anomaly_z"
    assert context.state["pdmeta_output"] == z.GetName()
    assert all(v.get_foreground_volume_id() == z.GetID() for v in context.slice_views())
    assert all(v.get_background_volume_id() == fdg.GetID() for v in context.slice_views())
    assert axial.get_foreground_opacity() == pytest.approx(0.6)
    # the logic's display: its own diverging colour table, +-4 z, |z| < 2 transparent
    d = z.GetDisplayNode()
    colours = pd.logic.zColourNode(z)
    assert colours is not None and d.GetColorNodeID() == colours.GetID()
    assert (d.GetWindowLevelMin(), d.GetWindowLevelMax()) == (pytest.approx(-4.0), pytest.approx(4.0))
    rgba = [[0.0] * 4 for _ in range(3)]
    for k, i in enumerate((0, 128, 255)):
        colours.GetColor(i, rgba[k])
    assert rgba[0][2] > rgba[0][0] and rgba[2][0] > rgba[2][2] and rgba[1][3] == 0.0
    # the legend: the logic's title (units), window and threshold; the hidden band left blank
    legend = context.state["pdmeta_legend"]
    assert legend["title"] == Z_LEGEND_TITLE == TITLE
    assert (legend["min"], legend["max"], legend["threshold"]) == (-4.0, 4.0, 2.0)
    css = context.state["pdmeta_legend_css"]
    assert css.startswith("linear-gradient(to right,") and "transparent 25.00%" in css and "transparent 75.00%" in css
    # 3D: the z map volume-rendered through the studio's Volume Rendering logic; the FDG's rendering hidden
    vr = context.slicer_app.volume_rendering
    assert pd.shown_3d == "volume rendering"
    assert vr.has_vr_display_node(z) and vr.get_vr_display_node(z).GetVisibility()
    assert not (vr.has_vr_display_node(fdg) and vr.get_vr_display_node(fdg).GetVisibility())
    opacity = vr.get_vr_display_node(z).GetVolumePropertyNode().GetScalarOpacity()
    assert opacity.GetValue(0.0) == 0.0 and opacity.GetValue(3.0) > 0 and opacity.GetValue(-3.0) > 0
    # the map shows in the slice view
    with_map = snapshot(axial)
    assert np.abs(with_map - detected["before"]).mean() > 0.2


def test_threshold_in_z_is_live_for_slices_3d_and_legend(context, detected):
    pd, axial = detected["pd"], detected["axial"]
    z = pd.map_node
    colours = pd.logic.zColourNode(z)
    vr = context.slicer_app.volume_rendering.get_vr_display_node(z)
    shown_2 = snapshot(axial)

    def alpha(i):
        rgba = [0.0] * 4
        colours.GetColor(i, rgba)
        return rgba[3]

    level = int((-2.5 + 4.0) * 255 / 8.0)  # the colour-table entry of z = -2.5 (window +-4)
    assert alpha(level) == 1.0
    pd.set_values(z_threshold=3.0)  # live: no button
    assert z.GetAttribute("MedSynth.PDMetabolism.threshold") == "3.0"
    assert alpha(level) == 0.0 and alpha(255 - level) == 0.0 and alpha(0) == 1.0 and alpha(255) == 1.0
    assert vr.GetVolumePropertyNode().GetScalarOpacity().GetValue(2.5) == 0.0
    assert context.state["pdmeta_legend"]["threshold"] == 3.0
    shown_3 = snapshot(axial)
    assert np.abs(shown_3 - shown_2).mean() > 0.02  # fewer voxels shown
    pd.set_values(z_threshold=5.0)
    assert context.state["pdmeta_legend"]["max"] == 6.0 and z.GetDisplayNode().GetWindowLevelMax() == 6.0
    pd.set_values(opacity=0.2)
    assert axial.get_foreground_opacity() == pytest.approx(0.2)
    pd.set_values(z_threshold=99.0)
    assert "z_threshold" in context.state["pdmeta_error"] and "maximum" in context.state["pdmeta_error"]
    assert z.GetAttribute("MedSynth.PDMetabolism.threshold") == "5.0"


def test_regional_table_in_the_panel(context, detected):
    from trame.ui.vuetify3 import SinglePageLayout

    pd = detected["pd"]
    rows = context.state["pdmeta_rows"]
    table = pd.table_node
    assert len(rows) == table.GetNumberOfRows() == 21
    assert context.state["pdmeta_columns"] == ["region", "z", "residual_percent", "direction", "abnormal"]
    assert [r["region"] for r in rows] == [table.GetCellText(i, 0) for i in range(21)]
    z = [abs(float(r["z"])) for r in rows]
    assert z == sorted(z, reverse=True)
    assert {r["direction"] for r in rows} <= {"hypo", "hyper"} and context.state["pdmeta_score"].startswith("Score")
    pd.jump_to_region(0)
    assert context.state["pdmeta_status"].startswith("Region centroid")
    with SinglePageLayout(context.server) as layout:
        pd.build_ui()
    html = layout.html
    for needle in ("medsynth-pdmeta-table", "medsynth-pdmeta-row", "medsynth-pdmeta-legend", "pdmeta_legend_css",
                   "pdmeta_legend.title", "pdmeta_z_threshold"):
        assert needle in html, needle
