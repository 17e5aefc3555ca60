"""``medsynth info``: versions, execution providers, and each model with its checksum state."""

from __future__ import annotations

import json
import platform


#: module -> the distributions that may provide it (versions are read from their metadata: nothing is imported, so
#: ``medsynth info`` does not load torch, MONAI, VTK or Slicer just to name their versions)
DISTRIBUTIONS = {
    "numpy": ("numpy",),
    "SimpleITK": ("simpleitk", "SimpleITK"),
    "onnxruntime": ("onnxruntime", "onnxruntime-gpu"),
    "onnx": ("onnx",),
    "torch": ("torch",),
    "monai": ("monai", "monai-weekly"),
    "vtk": ("vtk",),
    "slicer": ("slicer-core",),
}


def installed_version(module: str, dists) -> "str | None":
    """The version of the first installed distribution among ``dists`` that provides ``module``; "present" for a
    module found without package metadata (e.g. inside Slicer); None when absent."""
    import importlib.metadata
    import importlib.util

    for d in dists:
        try:
            return importlib.metadata.version(d)
        except importlib.metadata.PackageNotFoundError:
            continue
    try:
        return "present" if importlib.util.find_spec(module) is not None else None
    except (ImportError, ValueError):
        return None


def collect() -> dict:
    from .. import __version__, runtime

    versions = {"medsynth": __version__, "python": platform.python_version()}
    for mod, dists in DISTRIBUTIONS.items():
        versions[mod] = installed_version(mod, dists)
    try:
        providers = runtime.providers_for()
    except Exception as exc:  # noqa: BLE001
        providers = [f"unavailable: {exc}"]
    models = []
    entries, manifest_problems = runtime.scan_models()  # a malformed manifest is listed, not raised
    for entry in entries.values():
        problems = entry.problems()
        side_state = entry.side_files_status()
        models.append(
            {
                "id": entry.id,
                "version": entry.version,
                "file": str(entry.path),
                "checksum_ok": not problems,
                "side_files": {r: {"file": str(entry.folder / s["file"]), "state": side_state[r]}
                               for r, s in entry.files.items()},
                "problems": problems,
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
        "manifest_problems": manifest_problems,
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
            for role, side in m["side_files"].items():
                print(f"      side file {role}: {side['state']} ({side['file']})")
            for problem in m["problems"]:
                print(f"      problem: {problem}")
        for problem in info["manifest_problems"]:
            print(f"  manifest problem: {problem}")
    ok = all(m["checksum_ok"] for m in info["models"]) and not info["manifest_problems"]
    return 0 if ok else 1


def register(sub) -> None:
    p = sub.add_parser("info", help="versions, execution providers and models")
    p.add_argument("--json", action="store_true", help="print JSON")
    p.set_defaults(func=run)
