"""``medsynth convert IN OUT``: any supported format to any other, geometry kept."""

from __future__ import annotations

from ..errors import InputError
from ..io import READ_SUFFIXES, WRITE_SUFFIXES, MultipleSeriesError, read_volume, write_volume
from ..outputs import PARENT_RULE, WRITABLE, OutputPlan


def run(args) -> int:
    plan = OutputPlan(inputs=[args.input])
    plan.file(args.output, "OUT", WRITABLE)
    with plan:
        try:
            volume = read_volume(args.input, series_uid=args.series)
        except MultipleSeriesError as exc:
            raise InputError(f"{exc}, or choose one with --series UID") from None
        out = write_volume(volume, args.output)
    sp = " x ".join(f"{s:.4g}" for s in volume.spacing)
    size = " x ".join(str(n) for n in volume.shape_ijk)
    print(f"wrote {out} ({size} voxels{f', {volume.components} components' if volume.is_vector else ''}, {sp} mm)")
    return 0


def register(sub) -> None:
    p = sub.add_parser(
        "convert",
        help="convert between image formats (geometry kept)",
        description=f"Reads {', '.join(READ_SUFFIXES)} or a DICOM series folder; writes {', '.join(WRITE_SUFFIXES)}. "
        f"The output may not be the input; {PARENT_RULE}.",
    )
    p.add_argument("input", help="input file or DICOM series folder")
    p.add_argument("output", help="output file; the format follows the suffix")
    p.add_argument("--series", default=None, help="DICOM SeriesInstanceUID when the folder holds several")
    p.set_defaults(func=run)
