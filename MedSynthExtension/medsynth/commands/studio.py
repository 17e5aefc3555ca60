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
    limit = args.max_upload_mb
    if limit is not None and not (limit == limit and 0 < limit < float("inf")):
        raise MedSynthError(f"--max-upload-mb must be a positive number of megabytes, not {limit!r}")
    if not 0 <= args.port <= 65535:
        raise MedSynthError(f"--port must be 0..65535, not {args.port}")
    return main(host=args.host, port=args.port, data=args.data or (), open_browser=args.open_browser,
                max_upload_mb=limit)


def register(sub) -> None:
    p = sub.add_parser(
        "studio",
        help="web app: Slicer's views and the MedSynth panels in a browser",
        description="Start MedSynth Studio (Slicer's own views over the real MRML scene, in a browser). "
        "Opens on the simulated chest CT sample with the Nodule synthesis panel ready when no file is given (the "
        "toolbar's Load sample menu has the other samples) and prints the address, which holds a random token made "
        "for this launch: only a page opened from that address can connect.",
    )
    p.add_argument("--host", default="127.0.0.1",
                   help="address to listen on (default 127.0.0.1, this machine only; another address warns: the studio "
                   "can read the files it loads, so only whoever has the printed address with its token may connect)")
    p.add_argument("--port", type=int, default=8080, help="port (default 8080)")
    p.add_argument(
        "--data", nargs="+", metavar="FILE", default=None,
        help="volumes (.nii.gz, .nrrd, .mha, DICOM folder) or .mrb scenes to load instead of the chest CT sample",
    )
    p.add_argument("--max-upload-mb", type=float, default=None, metavar="MB",
                   help="largest upload accepted from the page, all files together (default 2048)")
    p.add_argument("--open-browser", action="store_true", help="open the system browser on the address")
    p.set_defaults(func=run)
