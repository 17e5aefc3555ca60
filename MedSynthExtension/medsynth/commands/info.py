"""``medsynth info``: versions, execution providers, and each model with its checksum state."""

from __future__ import annotations

import importlib
import json
import platform
import sys


def collect() -> dict:
    from .. import __version__, runtime

    versions = {"medsynth": __version__, "python": platform.python_version()}
    for mod in ("numpy", "SimpleITK", "onnxruntime", "onnx", "torch", "monai", "vtk", "slicer"):
        try:
            m = importlib.import_module(mod)
            versions[mod] = str(getattr(m, "__version__", getattr(m, "Version", "present")))
        except Exception:  # noqa: BLE001 - any import failure means "not available"
            versions[mod] = None
    try:
        providers = runtime.providers_for()
    except Exception as exc:  # noqa: BLE001
        providers = [f"unavailable: {exc}"]
    models = []
    for entry in runtime.list_models().values():
        models.append(
            {
                "id": entry.id,
                "version": entry.version,
                "file": str(entry.path),
                "checksum_ok": entry.checksum_ok(),
                "task": entry.task,
            }
        )
    return {
        "versions": versions,
        "device": runtime.get_device(),
        "available_providers": runtime.available_providers(),
        "providers_used": providers,
        "model_dirs": [str(d) for d in runtime.model_dirs()],
        "models": models,
    }


def run(args) -> int:
    info = collect()
    if args.json:
        print(json.dumps(info, indent=2))
    else:
        print("MedSynth")
        for k, v in info["versions"].items():
            print(f"  {k:<12} {v if v is not None else '(not installed)'}")
        print(f"  device       {info['device']} -> {', '.join(info['providers_used'])}")
        print(f"  available    {', '.join(info['available_providers'])}")
        print("  model folders:")
        for d in info["model_dirs"]:
            print(f"    {d}")
        print(f"  models ({len(info['models'])}):")
        for m in info["models"]:
            state = "checksum OK" if m["checksum_ok"] else "CHECKSUM FAILS or file missing"
            print(f"    {m['id']} {m['version']}: {state} ({m['file']})")
    return 0 if all(m["checksum_ok"] for m in info["models"]) else 1


def register(sub) -> None:
    p = sub.add_parser("info", help="versions, execution providers and models")
    p.add_argument("--json", action="store_true", help="print JSON")
    p.set_defaults(func=run)
