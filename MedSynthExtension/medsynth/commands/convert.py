"""``medsynth convert IN OUT``: any supported format to any other, geometry kept."""

from __future__ import annotations

from ..io import READ_SUFFIXES, WRITE_SUFFIXES, read_volume, write_volume


def run(args) -> int:
    volume = read_volume(args.input, series_uid=args.series)
    out = write_volume(volume, args.output)
    sp = " x ".join(f"{s:.4g}" for s in volume.spacing)
    size = " x ".join(str(n) for n in volume.shape_ijk)
    print(f"wrote {out} ({size} voxels{f', {volume.components} components' if volume.is_vector else ''}, {sp} mm)")
    return 0


def register(sub) -> None:
    p = sub.add_parser(
        "convert",
        help="convert between image formats (geometry kept)",
        description=f"Reads {', '.join(READ_SUFFIXES)} or a DICOM series folder; writes {', '.join(WRITE_SUFFIXES)}.",
    )
    p.add_argument("input", help="input file or DICOM series folder")
    p.add_argument("output", help="output file; the format follows the suffix")
    p.add_argument("--series", default=None, help="DICOM SeriesInstanceUID when the folder holds several")
    p.set_defaults(func=run)
