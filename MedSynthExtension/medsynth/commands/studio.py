"""``medsynth studio``: the MedSynth panels beside Slicer's views in a browser (trame-slicer).

trame, trame-slicer and slicer-core are imported only when the command runs, so the
rest of the command line works without them.
"""

from __future__ import annotations

from ..errors import MedSynthError


def run(args) -> int:
    try:
        from medsynth_studio.app import main
    except ImportError as exc:
        raise MedSynthError(
            f"medsynth studio needs trame-slicer and slicer-core ({exc}); "
            "install them with: pip install 'trame-slicer[standalone]==2.0.0' (or run ./run.sh setup)"
        ) from None
    return main(host=args.host, port=args.port, data=args.data or (), open_browser=args.open_browser)


def register(sub) -> None:
    p = sub.add_parser(
        "studio",
        help="web app: Slicer's views and the MedSynth panels in a browser",
        description="Start MedSynth Studio (Slicer's own views over the real MRML scene, in a browser). "
        "Loads the sample data when no file is given and prints the address.",
    )
    p.add_argument("--host", default="127.0.0.1", help="address to listen on (default 127.0.0.1; 0.0.0.0 for all)")
    p.add_argument("--port", type=int, default=8080, help="port (default 8080)")
    p.add_argument(
        "--data", nargs="+", metavar="FILE", default=None,
        help="volumes (.nii.gz, .nrrd, .mha, DICOM folder) or .mrb scenes to load instead of the sample data",
    )
    p.add_argument("--open-browser", action="store_true", help="open the system browser on the address")
    p.set_defaults(func=run)
