"""Brain PET: atlas, FDG/CFT simulator, registration to the template, striatal binding ratios, bad input, CLI.

The core tests use only the shipped Resources/PET files; tests that rebuild from or compare with ../shared/data
skip with a reason when it is absent. Two simulated subjects at 2 mm keep the suite fast.
"""

from __future__ import annotations

import json

import numpy as np
import pytest

from conftest import REPO, rotation, shared_file
from medsynth import CancelToken, Cancelled, InputError, Reporter, Volume, make_ijk_to_ras
from medsynth.cli import main
from medsynth.io import read_volume
from medsynth.pet.atlas import ATLAS_SHAPE_IJK, LABELS, build_atlas, load_atlas, pet_resources_dir
from medsynth.pet.checks import check_pet_volume
from medsynth.pet.register import RegistrationError, register_to_template
from medsynth.pet.sbr import striatal_binding
from medsynth.pet.simulate import (
    draw_params,
    fdg_activity,
    pet_template,
    read_cohort,
    simulate_cohort,
    simulate_subject,
    subject_rng,
)
from medsynth.resample import resample

SEED = 11
SUBREGIONS = [f"{r}_{s}" for r in ("caudate", "putamen_anterior", "putamen_posterior") for s in ("L", "R")]


@pytest.fixture(scope="module")
def atlas():
    return load_atlas()


@pytest.fixture(scope="module")
def pair(atlas):
    """One NC and one PD subject (seeded), with their SBRs measured in MNI space."""
    out = {}
    for i, group in enumerate(("NC", "PD")):
        rng = subject_rng(SEED, i)
        sub = simulate_subject(draw_params(rng, group, f"sub-{group}"), rng, atlas, keep_truth=True)
        out[group] = (sub, striatal_binding(sub.cft))
    return out


# --------------------------------------------------------------------------- atlas
def test_shipped_atlas_is_complete_and_compact(atlas):
    folder = pet_resources_dir()
    assert (folder / "pet_atlas_2mm.nii.gz").stat().st_size < 200_000
    assert all((folder / f).stat().st_size < 300_000 for f in ("gm_2mm.nii.gz", "wm_2mm.nii.gz"))
    assert atlas.labels.shape_ijk == ATLAS_SHAPE_IJK and atlas.labels.array.dtype == np.uint8
    assert np.allclose(atlas.labels.spacing, 2.0)
    present = set(np.unique(atlas.labels.array)) - {0}
    assert present == set(LABELS)
    for name in LABELS.values():  # left labels on the left (x < 0 in RAS), right on the right
        x = atlas.centroid_ras(name)[0]
        if name.endswith("_L"):
            assert x < -5, name
        elif name.endswith("_R"):
            assert x > 5, name
    # putamen split: anterior part in front of the posterior part
    for s in ("L", "R"):
        assert atlas.centroid_ras(f"putamen_anterior_{s}")[1] > atlas.centroid_ras(f"putamen_posterior_{s}")[1] + 8
    info = atlas.info
    assert -10 < info["putamen_split_y_mm"] < 10
    assert "Harvard" not in json.dumps(info["sources"]) and "AAL" in info["sources"]
    assert 0.99 <= atlas.gm.array.max() <= 1.0 and atlas.wm.array.min() >= 0


@pytest.mark.shared
def test_atlas_rebuilds_from_shared_data_as_shipped(atlas):
    shared_file("atlas/aal.nii.gz")
    labels, gm, wm, info = build_atlas(shared_file("atlas/aal.nii.gz").parent.parent)
    np.testing.assert_array_equal(labels.array, atlas.labels.array)
    assert np.abs(gm.array / 100.0 - atlas.gm.array).max() < 1e-6
    assert info["putamen_split_y_mm"] == atlas.info["putamen_split_y_mm"]


# --------------------------------------------------------------------------- simulator
def test_simulator_is_deterministic_by_seed(atlas):
    def make(seed):
        rng = subject_rng(seed, 0)
        return simulate_subject(draw_params(rng, "PD"), rng, atlas)

    b, c = make(5), make(5)
    np.testing.assert_array_equal(b.cft.array, c.cft.array)
    np.testing.assert_array_equal(b.fdg.array, c.fdg.array)
    assert b.row() == c.row()
    assert draw_params(subject_rng(6, 0), "PD").row() != b.params.row()
    assert b.fdg.array.dtype == np.float32 and b.fdg.modality == "PET"
    assert np.allclose(b.fdg.ijk_to_ras, atlas.labels.ijk_to_ras)


def test_fdg_grey_white_ratio(atlas, pair):
    gm, wm = atlas.gm.array >= 0.9, atlas.wm.array >= 0.95
    for group in ("NC", "PD"):
        sub = pair[group][0]
        gw = sub.params.gw_ratio
        assert 3.0 <= gw <= 4.0
        clean = fdg_activity(atlas, sub.params)  # no smooth field, no deformation, no PSF
        ratio = clean[gm].mean() / clean[wm].mean()
        assert 0.8 * gw <= ratio <= 1.0 * gw, (ratio, gw)
        image = sub.fdg.array
        assert 1.7 <= image[gm].mean() / image[wm].mean() <= 3.0  # after the PSF (partial volume)


def test_fdg_pd_pattern_direction(atlas, pair):
    p = pair["PD"][0].params
    assert p.fdg_pdrp > 0.3
    with_pattern = fdg_activity(atlas, p)
    p0 = draw_params(subject_rng(SEED, 1), "PD")
    p0.fdg_pdrp = 0.0
    without = fdg_activity(atlas, p0)

    def change(*regions):
        m = atlas.mask(*regions)
        return with_pattern[m].mean() / without[m].mean() - 1.0

    for region in ("putamen_posterior", "pallidum", "thalamus", "pons", "cerebellum_gm"):
        assert change(region) > 0.02, region
    for region in ("lateral_premotor", "posterior_parietal", "occipital"):
        assert change(region) < -0.02, region


def test_pd_loses_posterior_putamen_binding_asymmetrically(pair):
    nc_sub, nc = pair["NC"]
    pd_sub, pd = pair["PD"]
    p = pd_sub.params
    aff = p.affected_side
    other = "L" if aff == "R" else "R"
    # simulated truth: posterior putamen worst, caudate least, affected side worse
    assert p.loss[f"putamen_posterior_{aff}"] > p.loss[f"putamen_anterior_{aff}"] > p.loss[f"caudate_{aff}"]
    assert p.loss[f"putamen_posterior_{aff}"] >= 0.5
    assert p.loss[f"putamen_posterior_{aff}"] > p.loss[f"putamen_posterior_{other}"]
    assert pd_sub.expected_sbr[f"putamen_posterior_{aff}"] < pd_sub.expected_sbr[f"putamen_posterior_{other}"]
    # measured: lower posterior-putamen SBR than NC on both sides, asymmetric
    nc_min = min(nc.sbr["putamen_posterior_L"], nc.sbr["putamen_posterior_R"])
    assert pd.sbr[f"putamen_posterior_{aff}"] < 0.6 * nc_min
    for s in ("L", "R"):
        assert pd.sbr[f"putamen_posterior_{s}"] < 0.85 * nc_min
        assert pd.sbr[f"putamen_posterior_{s}"] < pd.sbr[f"putamen_anterior_{s}"]
    assert pd.sbr[f"putamen_posterior_{aff}"] < pd.sbr[f"putamen_posterior_{other}"]
    ai_pd = pd.asymmetry()["putamen_posterior"]["index_percent"]
    ai_nc = nc.asymmetry()["putamen_posterior"]["index_percent"]
    assert ai_pd > ai_nc and ai_pd > 10
    assert nc_sub.params.stage == 0 and all(v == 0 for v in nc_sub.params.loss.values())


def test_sbr_recovers_simulated_values(pair):
    for group in ("NC", "PD"):
        sub, res = pair[group]
        assert res.space == "mni" and res.reference == "occipital"
        true = np.array([sub.expected_sbr[k] for k in SUBREGIONS])
        got = np.array([res.sbr[k] for k in SUBREGIONS])
        rel = np.abs(got - true) / true
        assert rel.mean() < 0.15 and rel.max() < 0.35, (group, dict(zip(SUBREGIONS, rel.round(3))))
    d = pair["PD"][1].to_dict()
    assert set(d["regions"]) == {"caudate", "putamen_anterior", "putamen_posterior", "putamen", "striatum"}
    assert d["regions"]["putamen_posterior"]["lower_side"] in ("L", "R")


def test_sbr_cerebellar_reference(pair):
    sub, occ = pair["NC"]
    cer = striatal_binding(sub.cft, reference="cerebellum", labels_in_input=False)
    assert cer.reference == "cerebellum"
    assert all(v > 1.5 for k, v in cer.sbr.items() if k.startswith("putamen"))
    assert cer.sbr["putamen_L"] != occ.sbr["putamen_L"]
    with pytest.raises(InputError, match="reference must be one of"):
        striatal_binding(sub.cft, reference="pons")


# --------------------------------------------------------------------------- registration
def _native(volume: Volume, a: np.ndarray, spacing=2.5, shape=(96, 96, 72)) -> Volume:
    """``volume`` moved by the RAS affine ``a`` (template point x shows at a @ x) on an oblique native grid."""
    sp = np.full(3, spacing)
    n = np.asarray(shape)
    directions = rotation("z", 4.0)
    center = a[:3, :3] @ np.array([0.0, -18.0, 10.0]) + a[:3, 3]
    m = make_ijk_to_ras(sp, center - directions @ (sp * (n - 1) / 2), directions)
    moved = resample(volume, np.linalg.inv(a) @ m, n, "linear")
    return Volume(moved.array, m, "native_cft", "PET")


def test_registration_recovers_a_known_affine_and_sbr(atlas, pair):
    sub, in_mni = pair["NC"]
    clean = simulate_subject(sub.params, None, atlas)  # same subject without its random deformation
    a = np.eye(4)
    a[:3, :3] = rotation("z", 8) @ rotation("x", -6) @ np.diag([1.05, 0.97, 1.02])
    a[:3, 3] = [6.0, -9.0, 12.0]
    native = _native(clean.cft, a)
    res = striatal_binding(native, space="auto")
    assert res.space == "registered"
    m = np.asarray(res.registration["template_to_input_ras"])
    pts = atlas.labels.ijk_to_ras_points(np.argwhere(atlas.brain)[::40, ::-1])
    p4 = np.c_[pts, np.ones(len(pts))]
    err = np.linalg.norm((p4 @ m.T - p4 @ a.T)[:, :3], axis=1)
    assert err.mean() < 1.0 and err.max() < 2.5, (err.mean(), err.max())
    assert res.registration["correlation_with_template"] > 0.9
    direct = striatal_binding(clean.cft, labels_in_input=False)
    for k in SUBREGIONS:
        assert abs(res.sbr[k] - direct.sbr[k]) / direct.sbr[k] < 0.1, k
    # the regions come back on the input's grid
    lab = res.labels_in_input
    assert lab.shape_ijk == native.shape_ijk and np.allclose(lab.ijk_to_ras, native.ijk_to_ras)
    assert set(np.unique(lab.array)) >= {1, 2, 3, 4, 5, 6, 18, 19}


def test_registration_failure_is_an_error():
    rng = np.random.default_rng(0)
    noise = Volume(rng.random((40, 40, 40)).astype(np.float32), make_ijk_to_ras((4.0, 4.0, 4.0), (-80, -100, -60)), "noise")
    with pytest.raises(RegistrationError, match="did not converge"):
        register_to_template(noise, pet_template("CFT"), iterations=10)


# --------------------------------------------------------------------------- bad input
def _sample(name: str) -> Volume:
    return read_volume(REPO / "Resources" / "SampleData" / name)


def test_bad_inputs_have_clear_errors(pair):
    cft = pair["NC"][0].cft
    rng = np.random.default_rng(0)
    with pytest.raises(InputError, match="not a 3D volume"):
        striatal_binding(Volume(np.ones((1, 64, 64), np.float32), name="slice"))
    with pytest.raises(InputError, match="components per voxel"):
        striatal_binding(Volume(np.ones((20, 20, 20, 3), np.float32), make_ijk_to_ras((8, 8, 8)), "rgb"))
    with pytest.raises(InputError, match="covers only"):
        check_pet_volume(Volume(rng.random((10, 64, 64)), make_ijk_to_ras((2, 2, 2)), "thin"))
    with pytest.raises(InputError, match="whole-body"):
        check_pet_volume(Volume(rng.random((300, 64, 64)), make_ijk_to_ras((4, 4, 4)), "wb"))
    with pytest.raises(InputError, match="constant"):
        striatal_binding(cft.with_array(np.zeros_like(cft.array)))
    nan = cft.array.copy()
    nan[40, 50, 45] = np.nan
    with pytest.raises(InputError, match="NaN"):
        striatal_binding(cft.with_array(nan))
    # a CT in Hounsfield units (air at -1000)
    ct = _sample("head_ct_2mm.nii.gz")
    hu = np.where(ct.array > 0, ct.array, -1000).astype(np.int16)
    with pytest.raises(InputError, match="looks like a CT"):
        striatal_binding(ct.with_array(hu))
    with pytest.raises(InputError, match="tagged as CT"):
        striatal_binding(Volume(cft.array, cft.ijk_to_ras, "tagged", "CT"))
    # a T1 MR in MNI space: wrong contrast, said plainly
    with pytest.raises(InputError, match="does not look like a CFT PET.*white matter is brighter.*T1-weighted MR"):
        striatal_binding(_sample("mni_t1_2mm.nii.gz"), space="mni")
    # an FDG given where CFT is expected
    with pytest.raises(InputError, match="no striatal binding"):
        striatal_binding(pair["NC"][0].fdg)


# --------------------------------------------------------------------------- outputs, CLI, demo
def test_cohort_is_written_completely_or_not_at_all(tmp_path):
    token = CancelToken()

    def progress(fraction, message):
        if "sub-001" in message:
            token.cancel()  # noticed at the next step, after sub-001 was written to the staging folder

    out = tmp_path / "cohort"
    with pytest.raises(Cancelled):
        simulate_cohort(out, 2, 0.5, 1, Reporter(progress, token))
    assert list(out.iterdir()) == []


def test_cli_simulate_and_sbr(tmp_path, capsys):
    out = tmp_path / "cohort"
    assert main(["pet-simulate", "--out", str(out), "--subjects", "2", "--pd-fraction", "0.5", "--seed", "3"]) == 0
    assert "simulated 2 subjects (1 PD, 1 NC)" in capsys.readouterr().out
    rows = read_cohort(out)
    assert [r["subject"] for r in rows] == ["sub-001", "sub-002"]
    assert sorted(r["group"] for r in rows) == ["NC", "PD"]
    for key in ("stage", "fdg_pdrp", "gw_ratio", "psf_cft_mm", "sbr_true_putamen_posterior_L", "affected_side"):
        assert key in rows[0]
    assert sorted(p.name for p in out.iterdir()) == [
        "cohort.csv", "sub-001_cft.nii.gz", "sub-001_fdg.nii.gz", "sub-002_cft.nii.gz", "sub-002_fdg.nii.gz",
    ]
    # an existing cohort is not silently replaced
    assert main(["pet-simulate", "--out", str(out), "--subjects", "2", "--seed", "3"]) == 2
    assert "already holds a cohort" in capsys.readouterr().err
    report = tmp_path / "sbr.json"
    labels = tmp_path / "regions.nii.gz"
    cft = out / rows[0]["cft_file"]
    assert main(["sbr", str(cft), "--report", str(report), "--labels", str(labels)]) == 0
    text = capsys.readouterr().out
    assert "putamen_posterior" in text and "SBR against occipital" in text
    d = json.loads(report.read_text())
    got = d["regions"]["putamen_posterior"]["sbr"]["L"]
    true = float(rows[0]["sbr_true_putamen_posterior_L"])
    assert abs(got - true) / true < 0.35
    assert read_volume(labels).array.max() == 19
    cohort_report = tmp_path / "cohort_sbr.json"
    assert main(["sbr", "--cohort", str(out), "--report", str(cohort_report)]) == 0
    summary = json.loads(cohort_report.read_text())["summary"]
    assert summary["auc_pd_vs_nc_posterior_putamen"] == 1.0
    assert summary["agreement_with_simulated"]["pearson_r"] > 0.8
    # bad input through the CLI: exit 2 and a clear message
    mr = REPO / "Resources" / "SampleData" / "mni_t1_2mm.nii.gz"
    assert main(["sbr", str(mr), "--space", "mni", "--report", str(tmp_path / "bad.json")]) == 2
    assert "does not look like a CFT PET" in capsys.readouterr().err
    assert not (tmp_path / "bad.json").exists()


def test_demo_part(tmp_path):
    from medsynth.commands.demo import DEMO_PARTS

    part = dict(DEMO_PARTS)["pet"]
    written = part(tmp_path, Reporter())
    names = {p.name for p in written}
    assert {"pet_summary.json", "sub-001_sbr.json", "sub-002_PD_cft_regions.png", "sub-001_NC_fdg.png"} <= names
    summary = json.loads((tmp_path / "pet_summary.json").read_text())["subjects"]
    pd, nc = summary["sub-002"]["sbr_putamen_posterior"], summary["sub-001"]["sbr_putamen_posterior"]
    assert max(pd.values()) < min(nc.values())
    from medsynth.runtime import list_models

    if "fdg2cft" in list_models():  # the CFT synthesized from each FDG, with its SBRs
        assert {"sub-002_PD_synthetic_cft.nii.gz", "sub-001_NC_synthetic_cft_regions.png",
                "sub-002_synthetic_cft_sbr.json"} <= names
        syn = {s: summary[s]["sbr_putamen_posterior_synthetic_cft"] for s in ("sub-001", "sub-002")}
        assert min(syn["sub-002"].values()) < min(syn["sub-001"].values())


# --------------------------------------------------------------------------- reference check (not shipped data)
@pytest.mark.shared
def test_fdg_template_resembles_spm_pet_template(atlas):
    """The simulated FDG template against SPM's PET template (GPL, reference only): similar brain pattern."""
    spm = read_volume(shared_file("pet_templates/spm_PET.nii"))
    from medsynth.resample import resample_like

    grid = atlas.labels.with_array(np.zeros(atlas.labels.array.shape, np.float32))
    spm = resample_like(spm.with_array(spm.array.astype(np.float32)), grid)
    ours = pet_template("FDG").array
    m = atlas.brain
    r = np.corrcoef(ours[m], spm.array[m])[0, 1]
    assert r > 0.6, r


# --------------------------------------------------------------------------- simulator version 2: FDG and DAT apart
def test_fdg_pattern_and_dopaminergic_loss_are_drawn_apart():
    """The stage no longer sets the FDG pattern: a documented correlation, link-breaking subjects on both sides."""
    from medsynth.pet.simulate import LINK, link_statistics

    s = link_statistics(n=600, seed=123)
    assert abs(s["pd_normal_fdg_fraction"] - LINK["pd_normal_fdg_fraction"]) < 0.05
    assert abs(s["nc_abnormal_fdg_fraction"] - LINK["nc_abnormal_fdg_fraction"]) < 0.04
    assert abs(s["pd_typical_pearson_expression_vs_stage_score"] - LINK["rho_stage_expression"]) < 0.12
    assert 0.1 < s["pd_all_spearman_expression_vs_stage"] < 0.6  # related, far from one-to-one
    assert abs(s["fdg_side_agreement"] - LINK["fdg_side_agreement"]) < 0.06


def test_link_breaking_subjects_look_as_described(atlas):
    """A PD with a normal FDG pattern keeps its dopaminergic loss; an NC with a PD-like FDG pattern keeps a normal
    DAT; the FDG pattern's lateralisation follows fdg_side."""
    pd = [draw_params(subject_rng(321, i), "PD") for i in range(80)]
    nc = [draw_params(subject_rng(321, 100 + i), "NC") for i in range(120)]
    odd_pd = [p for p in pd if p.link == "pd_normal_fdg"]
    odd_nc = [p for p in nc if p.link == "nc_abnormal_fdg"]
    assert odd_pd and odd_nc
    for p in odd_pd:
        assert max(p.loss.values()) >= 0.3 and abs(p.fdg_pdrp) < 1.2
    for p in odd_nc:
        assert p.stage == 0 and max(p.loss.values()) == 0
    assert np.mean([p.fdg_pdrp for p in odd_nc]) > 0.5 > np.mean([p.fdg_pdrp for p in nc if p.link == "typical"])
    p = odd_nc[0]
    p.fdg_lateral, p.fdg_side = 0.4, "L"
    act = fdg_activity(atlas, p)
    left, right = atlas.mask("pallidum_L"), atlas.mask("pallidum_R")
    p.fdg_lateral = 0.0
    flat = fdg_activity(atlas, p)
    # the pattern raises the pallidum more on the left than on the right
    assert act[left].mean() / flat[left].mean() > act[right].mean() / flat[right].mean()


def test_cohort_csv_records_the_link_and_simulator_version(tmp_path):
    out = tmp_path / "c"
    simulate_cohort(out, 2, 0.5, 5)
    rows = read_cohort(out)
    for r in rows:
        assert r["simulator"] == "2" and r["link"] in ("typical", "pd_normal_fdg", "nc_abnormal_fdg")
        assert r["fdg_side"] in ("L", "R") and float(r["fdg_lateral"]) >= 0 and "striatal_asymmetry" in r


def test_evaluation_cohort_fresh_seed_printed_and_removed(tmp_path, capsys):
    import argparse

    from medsynth.pet.cohorts import FIRST_FRESH_SEED, evaluation_cohort, fresh_seed

    seeds = {fresh_seed() for _ in range(5)}
    assert len(seeds) == 5 and min(seeds) >= FIRST_FRESH_SEED
    args = argparse.Namespace(cohort=None, subjects=2, seed=None, keep_cohort=None)
    with evaluation_cohort(args) as c:
        assert c.fresh and c.simulated_here and c.seed >= FIRST_FRESH_SEED
        rows = read_cohort(c.folder)
        assert len(rows) == 2 and all(int(r["seed"]) == c.seed for r in rows)
        folder = c.folder
    assert not folder.exists()
    assert f"seed {c.seed} (fresh; --seed {c.seed}" in capsys.readouterr().out
    keep = tmp_path / "kept"
    args = argparse.Namespace(cohort=None, subjects=2, seed=4, keep_cohort=str(keep))
    with evaluation_cohort(args) as c:
        assert c.seed == 4 and not c.fresh
    assert len(read_cohort(keep)) == 2
    for bad in (dict(cohort=str(keep), subjects=2, seed=4, keep_cohort=None),
                dict(cohort=None, subjects=1, seed=None, keep_cohort=None),
                dict(cohort=None, subjects=2, seed=None, keep_cohort=str(keep))):
        with pytest.raises(InputError):
            with evaluation_cohort(argparse.Namespace(**bad)):
                pass


def test_cancel_during_registration_is_a_cancel_not_a_failed_registration(pair):
    """A cancel (or Ctrl-C) raised in SimpleITK's iteration callback comes back as itself: SimpleITK would report
    it as an error of its own, which read as 'registration failed' (exit 2 instead of 130)."""
    fdg = pair["NC"][0].fdg
    native = _native(fdg, np.eye(4))
    token = CancelToken()
    seen = []

    def progress(fraction, message):
        seen.append(message)
        if fraction > 0.0:
            token.cancel()  # noticed at the next progress step: inside an iteration callback

    with pytest.raises(Cancelled):
        register_to_template(native, pet_template("FDG"), reporter=Reporter(progress, token))
    assert any("level" in m or "similarity" in m or "affine" in m for m in seen)
