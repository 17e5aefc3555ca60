import json

import numpy as np
import pytest

from medsynth import ModelError, runtime
from medsynth.export import export_onnx

torch = pytest.importorskip("torch", reason="the export helper needs torch (training extra)")


@pytest.fixture
def tiny_model_dir(tmp_path):
    """A tiny MONAI network exported with the project's export helper into a user model folder."""
    from monai.networks.nets import UNet

    torch.manual_seed(0)
    net = UNet(spatial_dims=3, in_channels=1, out_channels=1, channels=(4, 8), strides=(2,), num_res_units=1)
    entry = export_onnx(
        net,
        [torch.randn(1, 1, 16, 16, 16)],
        tmp_path,
        model_id="tiny-unet",
        version="0.0.1",
        input_names=["image"],
        output_names=["output"],
        dynamic_axes={"image": {0: "N", 2: "D", 3: "H", 4: "W"}, "output": {0: "N", 2: "D", 3: "H", 4: "W"}},
        task="test",
        normalization={"type": "none"},
        training_command="(made in a test)",
    )
    runtime.add_user_model_dir(tmp_path)
    yield tmp_path, net, entry
    runtime.set_user_model_dirs([])
    runtime.clear_cache()


def test_export_writes_model_and_manifest(tiny_model_dir):
    folder, _, entry = tiny_model_dir
    manifest = json.loads((folder / "manifest.json").read_text())
    (m,) = manifest["models"]
    assert m["id"] == "tiny-unet" and m["sha256"] == runtime.sha256_of(folder / "tiny-unet.onnx")
    assert m["inputs"][0]["shape"] == ["N", 1, "D", "H", "W"]
    assert m["export_check"]["max_abs_diff_vs_torch"] < 1e-3
    assert not list(folder.glob(".*partial*"))


def test_loaded_model_matches_torch_and_says_its_provider(tiny_model_dir):
    _, net, _ = tiny_model_dir
    model = runtime.load_model("tiny-unet", device="cpu")
    assert model.provider == "CPUExecutionProvider"
    x = np.random.default_rng(0).standard_normal((1, 1, 24, 16, 20)).astype(np.float32)  # another size
    (got,) = model.run({"image": x})
    with torch.no_grad():
        ref = net(torch.from_numpy(x)).numpy()
    np.testing.assert_allclose(got, ref, atol=1e-4)
    assert runtime.load_model("tiny-unet", device="cpu") is model  # cached


def test_checksum_is_verified_before_loading(tiny_model_dir):
    folder, _, _ = tiny_model_dir
    runtime.clear_cache()
    with open(folder / "tiny-unet.onnx", "ab") as f:
        f.write(b"tampered")
    with pytest.raises(ModelError, match="checksum of 'tiny-unet' does not hold"):
        runtime.load_model("tiny-unet")


def test_unknown_model_and_bad_inputs(tiny_model_dir):
    with pytest.raises(ModelError, match="in no manifest"):
        runtime.load_model("no-such-model")
    model = runtime.load_model("tiny-unet", device="cpu")
    with pytest.raises(ModelError, match="no input 'img'"):
        model.run({"img": np.zeros((1, 1, 8, 8, 8))})
    with pytest.raises(ModelError, match="needs rank 5"):
        model.run({"image": np.zeros((8, 8, 8))})


def test_device_choice():
    assert runtime.providers_for("cpu") == ["CPUExecutionProvider"]
    if "CUDAExecutionProvider" not in runtime.available_providers():
        with pytest.raises(ModelError, match="no CUDA provider"):
            runtime.providers_for("gpu")
        assert runtime.providers_for("auto") == ["CPUExecutionProvider"]
    with pytest.raises(ValueError):
        runtime.set_device("tpu")


def test_manifest_entries_need_their_fields(tmp_path):
    (tmp_path / "manifest.json").write_text(json.dumps({"format": 1, "models": [{"id": "x", "version": "1"}]}))
    with pytest.raises(ModelError, match="lacks file, sha256, inputs, outputs"):
        runtime.read_manifest(tmp_path)


def test_shipped_models_hold_their_checksums():
    """Every model in Resources/Models: file present, checksum holds, ONNX Runtime loads it."""
    for entry in runtime.read_manifest(runtime.builtin_model_dir()):
        assert entry.checksum_ok(), entry.id
        assert runtime.load_entry(entry, device="cpu").provider == "CPUExecutionProvider"
        for field in ("training_command", "data_terms", "card"):
            assert getattr(entry, field), f"{entry.id} lacks {field}"
        assert (entry.folder / entry.card).is_file(), f"model card of {entry.id} missing"
