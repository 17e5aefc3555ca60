"""The studio's guards without a server: Origin / Host checks, the token, path redaction, and the
self-contained-upload checks of headers (.mhd .mha .nhdr .nrrd) and scenes (.mrml in a .mrb).

The same guards in a running studio, driven by headless Chromium and a raw websocket client,
are in test_studio_security_browser.py; the upload panel on the real Slicer core in test_studio.py.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from medsynth import Volume, make_ijk_to_ras
from medsynth.errors import InputError
from medsynth.io import read_volume, write_volume
from medsynth.references import check_self_contained, check_upload_folder, mrml_references, named_data_files

pytest.importorskip("aiohttp", reason="the studio's guard is an aiohttp middleware")

from medsynth_studio import security  # noqa: E402
from medsynth_studio.tasks import error_text, redact_paths  # noqa: E402


# --------------------------------------------------------------------------- Origin, Host, token
@pytest.mark.parametrize("origin, host, ok", [
    ("http://127.0.0.1:8080", "127.0.0.1:8080", True),
    ("http://localhost:8080", "localhost:8080", True),
    ("http://[::1]:8080", "[::1]:8080", True),
    ("https://studio.example", "studio.example:443", True),
    ("http://studio.example", "studio.example:80", True),
    ("http://127.0.0.1:9999", "127.0.0.1:8080", False),       # another port: another origin
    ("http://evil.example:8080", "127.0.0.1:8080", False),
    ("http://localhost:8080", "127.0.0.1:8080", False),        # same machine, but not the served name
    ("null", "127.0.0.1:8080", False),                          # sandboxed frame / file:// page
    ("file://", "127.0.0.1:8080", False),
    ("", "127.0.0.1:8080", False),
    (None, "127.0.0.1:8080", False),
    ("http://127.0.0.1:8080", "", False),
])
def test_origin_must_be_the_served_address(origin, host, ok):
    assert security.origin_allowed(origin, host, 80) is ok


@pytest.mark.parametrize("listen, host, ok", [
    ("127.0.0.1", "127.0.0.1:8080", True),
    ("127.0.0.1", "localhost:8080", True),
    ("127.0.0.1", "[::1]:8080", True),
    ("127.0.0.1", "evil.example:8080", False),   # DNS rebinding: a foreign name resolving to 127.0.0.1
    ("127.0.0.1", "", False),
    ("0.0.0.0", "192.168.1.20:8080", True),      # open to the network: the token and Origin guard it
])
def test_host_header_on_a_loopback_server(listen, host, ok):
    assert security.host_allowed(host, listen) is ok


def test_loopback_names_and_the_warning_for_other_addresses():
    for host in ("127.0.0.1", "127.1.2.3", "localhost", "::1", "[::1]"):
        assert security.is_loopback(host) and security.host_warning(host) is None, host
    for host in ("0.0.0.0", "::", "192.168.1.20", "studio.example", ""):
        assert not security.is_loopback(host), host
        assert "not on a loopback address" in security.host_warning(host), host


def test_tokens_are_random_and_long():
    tokens = {security.new_token() for _ in range(50)}
    assert len(tokens) == 50
    assert min(len(t) for t in tokens) >= 40 and all("wslink-secret" != t for t in tokens)


def test_message_size_cap_applies_to_every_new_connection():
    from wslink.chunking import UnChunker

    handler = type("Handler", (), {})()
    handler.unchunkers = {}
    server = type("Server", (), {"_ws_handlers": [handler]})()
    assert security.cap_message_size(server, 1000) == 1
    handler.unchunkers["client"] = UnChunker()
    handler.unchunkers["client"].set_max_message_size(4 * 1024 ** 3)  # what wslink does after the hello
    assert handler.unchunkers["client"].max_message_size == 1000
    big = b"\x01\x00\x00\x00" + (0).to_bytes(4, "little") + (5000).to_bytes(4, "little") + b"x" * 10
    with pytest.raises(ValueError, match="exceeds the allocation limit"):
        handler.unchunkers["client"].process_chunk(big)


def test_error_text_names_files_not_server_folders():
    assert redact_paths("cannot read /tmp/medsynth-upload-1a2b/x.nii.gz: truncated") == "cannot read x.nii.gz: truncated"
    assert redact_paths("'/etc/hostname' and C:\\Users\\me\\a.nrrd") == "'hostname' and a.nrrd"
    assert redact_paths("ratio 1/2, http://host/x, no path") == "ratio 1/2, http://host/x, no path"
    text = error_text(OSError(2, "No such file or directory", "/home/user/secret/data.nii"))
    assert "/home" not in text and "data.nii" in text


def test_studio_command_refuses_a_bad_upload_limit():
    for value in ("nan", "0", "-5", "inf"):
        r = subprocess.run([sys.executable, "-m", "medsynth", "studio", "--max-upload-mb", value],
                           capture_output=True, text=True, timeout=120)
        assert r.returncode == 2, (value, r.stderr)
        assert "--max-upload-mb" in r.stderr and "Traceback" not in r.stderr, r.stderr


# --------------------------------------------------------------------------- self-contained headers
def small(name="v") -> Volume:
    arr = np.arange(4 * 5 * 6, dtype=np.float32).reshape(4, 5, 6)
    return Volume(arr, make_ijk_to_ras((1.0, 1.0, 2.0), (0.0, 0.0, 0.0)), name=name)


def mhd(folder: Path, data_file: str, name="scan.mhd") -> Path:
    text = ("ObjectType = Image\nNDims = 3\nDimSize = 2 2 2\nElementType = MET_UCHAR\n"
            f"ElementDataFile = {data_file}\n")
    path = folder / name
    path.write_text(text)
    return path


def nhdr(folder: Path, data_line: str, name="scan.nhdr") -> Path:
    path = folder / name
    path.write_text(f"NRRD0004\ntype: uchar\ndimension: 3\nsizes: 2 2 2\nencoding: raw\n{data_line}\n\n")
    return path


def test_files_written_by_medsynth_are_self_contained(tmp_path):
    for suffix in (".nrrd", ".mha", ".nii.gz", ".mhd", ".nhdr"):
        out = write_volume(small(), tmp_path / f"a{suffix}")
        check_upload_folder(tmp_path)  # .mhd/.nhdr name their data file beside them
        if suffix in (".mhd", ".nhdr"):
            assert len(named_data_files(out)) == 1 and "/" not in named_data_files(out)[0]
            assert read_volume(out).array.shape == small().array.shape


@pytest.mark.parametrize("value, why", [
    ("/etc/hostname", "outside its own folder"),
    ("../../etc/hostname", "outside its own folder"),
    ("sub/data.raw", "outside its own folder"),
    ("..", "outside its own folder"),
    ("LIST", "list or pattern"),
    ("slice%03d.raw 1 10 1", "list or pattern"),
    ("missing.raw", "not sent with it"),
])
def test_metaimage_and_nrrd_headers_naming_other_files_are_refused(tmp_path, value, why):
    for make in (lambda: mhd(tmp_path, value), lambda: nhdr(tmp_path, f"data file: {value}")):
        path = make()
        with pytest.raises(InputError, match=why):
            check_self_contained(path)
        with pytest.raises(InputError, match=why):
            check_upload_folder(tmp_path)
        path.unlink()


def test_header_variants_that_name_files(tmp_path):
    (tmp_path / "data.raw").write_bytes(bytes(8))
    assert named_data_files(mhd(tmp_path, "LOCAL", "a.mha")) == []
    assert named_data_files(mhd(tmp_path, "data.raw", "b.mhd")) == ["data.raw"]
    assert named_data_files(nhdr(tmp_path, "datafile: data.raw", "c.nhdr")) == ["data.raw"]
    assert named_data_files(nhdr(tmp_path, "data file:=/etc/hostname", "d.nrrd")) == ["/etc/hostname"]
    # an attached-header .nrrd may still name a detached file: checked like a .nhdr
    with pytest.raises(InputError, match="outside"):
        check_upload_folder(tmp_path)
    (tmp_path / "d.nrrd").unlink()
    check_upload_folder(tmp_path)  # the rest names only data.raw, which is there
    assert [p.name for p in check_self_contained(tmp_path / "b.mhd")] == ["data.raw"]


def test_symbolic_links_in_an_upload_are_refused(tmp_path):
    (tmp_path / "link.nrrd").symlink_to("/etc/hostname")
    with pytest.raises(InputError, match="symbolic link"):
        check_upload_folder(tmp_path)


def test_scene_references(tmp_path):
    inner = tmp_path / "bundle" / "Data"
    inner.mkdir(parents=True)
    write_volume(small(), inner / "v.nrrd")
    mrml = tmp_path / "bundle" / "scene.mrml"

    def scene(filename: str) -> Path:
        mrml.write_text('<MRML version="Slicer4.4.0">\n'
                        '<Volume id="vtkMRMLScalarVolumeNode1" name="v" storageNodeRef="vtkMRMLVolumeArchetypeStorageNode1"/>\n'
                        f'<VolumeArchetypeStorage id="vtkMRMLVolumeArchetypeStorageNode1" fileName="{filename}" />\n'
                        "</MRML>\n")
        return mrml

    assert mrml_references(scene("Data/v.nrrd")) == ["Data/v.nrrd"]
    check_upload_folder(tmp_path / "bundle")
    for bad in ("/etc/hostname", "../../outside.nrrd", "Data/../../x.nrrd", "http://example.com/x.nrrd"):
        scene(bad)
        with pytest.raises(InputError, match="outside the scene bundle|remote file"):
            check_upload_folder(tmp_path / "bundle")
    mrml.write_text("<MRML><unclosed")
    with pytest.raises(InputError, match="not readable MRML"):
        check_upload_folder(tmp_path / "bundle")
