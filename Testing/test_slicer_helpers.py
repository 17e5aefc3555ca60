"""The pure parts of the Slicer-side helpers (medsynth_slicer): dependency check and settings."""

from medsynth import runtime
from medsynth_slicer import dependencies
from medsynth_slicer.settings import KEY_DEVICE, Settings, model_rows


def test_nothing_is_installed_without_confirmation():
    calls = []
    req = {"surely_not_a_module_xyz": "surely-not-a-module-xyz==1.0"}
    assert dependencies.missing_packages(req) == ["surely-not-a-module-xyz==1.0"]
    assert dependencies.install_missing(lambda msg: False, calls.append, req) == []
    assert calls == []


def test_install_pins_slicers_own_packages():
    seen = {}

    def fake_pip(args):
        seen["args"] = list(args)
        seen["constraints"] = open(args[args.index("-c") + 1]).read().split()

    req = {"surely_not_a_module_xyz": "surely-not-a-module-xyz==1.0"}
    assert dependencies.install_missing(lambda msg: "surely-not" in msg, fake_pip, req) == ["surely-not-a-module-xyz==1.0"]
    assert seen["args"][0] == "surely-not-a-module-xyz==1.0"
    import numpy
    import SimpleITK

    assert f"numpy=={numpy.__version__}" in seen["constraints"]
    assert any(c.lower().startswith("simpleitk==") for c in seen["constraints"])
    assert dependencies.missing_packages() == []  # the test environment has what MedSynth needs


def test_settings_round_trip_and_apply(tmp_path):
    store = {}
    Settings(device="cpu", user_model_folder=str(tmp_path)).save(store)
    s = Settings.load(store)
    assert (s.device, s.user_model_folder) == ("cpu", str(tmp_path))
    try:
        s.apply()
        assert runtime.get_device() == "cpu" and runtime.model_dirs()[-1] == tmp_path
        assert isinstance(model_rows(), list)
    finally:
        Settings().apply()
    assert Settings.load({KEY_DEVICE: "quantum"}).device == "auto"  # bad stored value falls back


def test_model_rows_list_a_broken_user_manifest_beside_the_shipped_models(tmp_path):
    (tmp_path / "manifest.json").write_text("[1, 2, 3]")  # a JSON list, not a manifest
    try:
        Settings(device="cpu", user_model_folder=str(tmp_path)).apply()
        rows = model_rows()
    finally:
        Settings().apply()
    broken = [r for r in rows if r["checksum"] == "MANIFEST PROBLEM"]
    assert len(broken) == 1 and "manifest" in broken[0]["task"]
    assert any(r["id"] == "sainr" and r["checksum"] == "OK" for r in rows)  # the shipped models still listed
