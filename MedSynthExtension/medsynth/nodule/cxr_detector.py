"""Radiograph nodule detectors at run time (ONNX Runtime; no torch) and how detections are matched to nodules.

* :class:`CanvasDetector`: the exported RetinaNet graph (see :mod:`.train_detector`) on a :class:`.cxr_data.Canvas`:
  scores and decoded boxes for every anchor come out of the graph; here: the score threshold, boxes inside the
  image, non-maximum suppression.
* :class:`RadiographDetector`: the engine's detector interface, ``detector(volume) -> [Detection]`` with boxes
  in the radiograph's own pixels (i0, j0, i1, j1).  The volume is a one-slice radiograph in MONOCHROME2 sense
  (larger = more attenuation) whose geometry carries the pixel spacing (spacing 1 = none known: 370 mm width
  assumed, as for insertion).
* :func:`load_detector`: ``"shipped"`` (the manifest's ``nodule-cxr-detector``), ``"log"`` (the classical
  LoG baseline), a path to a detector ``.onnx`` (with its ``operating_point.json`` beside it when there is one),
  or ``package.module:callable`` (any callable with the interface above).
* :func:`is_hit`: a detection finds a nodule when its centre lies inside the nodule's box or their IoU >= 0.2.
"""

from __future__ import annotations

import importlib
import json
from pathlib import Path
from typing import Any, Callable, List, Optional, Sequence, Tuple

import numpy as np

from ..errors import InputError, ModelError
from ..volume import Volume
from .cxr_data import CANVAS, Canvas, detector_input, make_canvas
from .detect import Detection, LoGBlobDetector, box_iou

MODEL_ID = "nodule-cxr-detector"
HIT_IOU = 0.2


def is_hit(det_box: Sequence[float], gt_box: Sequence[float]) -> bool:
    """Same box order for both (2D: (a0, b0, a1, b1)): centre of the detection inside the nodule's box, or IoU >= 0.2."""
    n = len(gt_box) // 2
    centre_in = all(gt_box[d] <= 0.5 * (det_box[d] + det_box[d + n]) <= gt_box[d + n] for d in range(n))
    return bool(centre_in or box_iou(det_box, gt_box) >= HIT_IOU)


def hits(dets: Sequence[Tuple[Sequence[float], float]], gt_boxes: Sequence[Sequence[float]]) -> List[bool]:
    """For each detection (box, score): whether it hits any of ``gt_boxes``."""
    return [any(is_hit(b, g) for g in gt_boxes) for b, _ in dets]


def nms(boxes: np.ndarray, scores: np.ndarray, iou: float = 0.2, keep_max: int = 50) -> np.ndarray:
    """Indices kept by greedy non-maximum suppression (2D boxes (a0, b0, a1, b1)), best score first."""
    order = np.argsort(-scores)
    keep: List[int] = []
    area = np.maximum(0, boxes[:, 2] - boxes[:, 0]) * np.maximum(0, boxes[:, 3] - boxes[:, 1])
    while len(order) and len(keep) < keep_max:
        i = order[0]
        keep.append(int(i))
        rest = order[1:]
        lo = np.maximum(boxes[i, :2], boxes[rest, :2])
        hi = np.minimum(boxes[i, 2:], boxes[rest, 2:])
        inter = np.prod(np.clip(hi - lo, 0, None), axis=1)
        union = area[i] + area[rest] - inter
        order = rest[inter / np.maximum(union, 1e-9) < iou]
    return np.array(keep, int)


class CanvasDetector:
    """The exported detector graph on canvases; ``threshold``: minimum score reported."""

    def __init__(self, path_or_entry: Any, threshold: Optional[float] = None, threads: Optional[int] = None) -> None:
        from ..runtime import ModelEntry, load_entry

        if isinstance(path_or_entry, ModelEntry):
            self.model = load_entry(path_or_entry, threads=threads)
            self.session = self.model.session
            op = path_or_entry.extra.get("operating_point", {})
            self.name = f"{path_or_entry.id} {path_or_entry.version}"
        else:
            path = Path(path_or_entry)
            self.session = _session(path, threads)
            side = path.with_name("operating_point.json")
            op = json.loads(side.read_text()) if side.is_file() else {}
            self.name = path.name
        names = [i.name for i in self.session.get_inputs()]
        outs = [o.name for o in self.session.get_outputs()]
        shape = self.session.get_inputs()[0].shape
        if names != ["image"] or outs[:2] != ["scores", "boxes"] or list(shape[-3:]) != [2, CANVAS, CANVAS]:
            raise InputError(f"{self.name} is not a MedSynth radiograph detector (inputs {names} {shape}, outputs "
                             f"{outs}; expected image [1, 2, {CANVAS}, {CANVAS}] -> scores, boxes)")
        self.threshold = float(threshold if threshold is not None else op.get("score_threshold", 0.5))

    def detect_array(self, image: np.ndarray, shape: Tuple[int, int], threshold: Optional[float] = None,
                     pixel_mm: float = 1.0) -> List[Tuple[Tuple[float, float, float, float], float]]:
        """(box (j0, i0, j1, i1) on the canvas, score) for a canvas array whose image covers ``shape``."""
        thr = self.threshold if threshold is None else float(threshold)
        x = detector_input(image, shape, pixel_mm)[None]
        scores, boxes = self.session.run(["scores", "boxes"], {"image": x})
        h, w = shape
        keep = scores >= thr
        cj, ci = (boxes[:, 0] + boxes[:, 2]) / 2, (boxes[:, 1] + boxes[:, 3]) / 2
        keep &= (cj >= 0) & (cj < h) & (ci >= 0) & (ci < w)
        boxes, scores = boxes[keep], scores[keep]
        if len(scores) > 1000:
            top = np.argsort(-scores)[:1000]
            boxes, scores = boxes[top], scores[top]
        idx = nms(boxes, scores)
        return [(tuple(float(v) for v in boxes[i]), float(scores[i])) for i in idx]

    def detect_canvas(self, canvas: Canvas, threshold: Optional[float] = None):
        return self.detect_array(canvas.image, canvas.shape, threshold, canvas.pixel_mm)


def _session(path: Path, threads: Optional[int]):
    if not path.is_file():
        raise InputError(f"detector not found: {path}")
    import onnxruntime as ort

    from ..runtime import providers_for

    opts = ort.SessionOptions()
    opts.log_severity_level = 3
    if threads:
        opts.intra_op_num_threads = int(threads)
    try:
        return ort.InferenceSession(str(path), sess_options=opts, providers=providers_for(None))
    except Exception as exc:  # onnxruntime raises its own exception types for files that are not ONNX
        raise InputError(f"{path} is not an ONNX model ONNX Runtime can load: {str(exc).splitlines()[0][:200]}") from None


def volume_pixel_mm(volume: Volume) -> float:
    """The radiograph's pixel size (mm) from its geometry; spacing 1 (none known) -> 370 mm width assumed."""
    from .insertion import DEFAULT_CXR_WIDTH_MM

    sp = volume.spacing
    if np.allclose(sp[:2], 1.0):
        return DEFAULT_CXR_WIDTH_MM / volume.array.shape[2]
    return float(sp[0])


class RadiographDetector:
    """``detector(volume) -> [Detection]`` for one-slice MONOCHROME2 radiographs (boxes in the image's pixels)."""

    def __init__(self, canvas_detector: CanvasDetector) -> None:
        self.canvas_detector = canvas_detector
        self.name = canvas_detector.name

    @property
    def threshold(self) -> float:
        return self.canvas_detector.threshold

    def __call__(self, volume: Volume) -> List[Detection]:
        if volume.array.ndim != 3 or volume.array.shape[0] != 1:
            raise InputError(f"'{volume.name}' is not a one-slice radiograph (shape {volume.array.shape})")
        canvas = make_canvas(volume.array[0], volume_pixel_mm(volume))
        return [Detection(canvas.to_native(b), s) for b, s in self.canvas_detector.detect_canvas(canvas)]


def load_detector(spec: str, threshold: Optional[float] = None, threads: Optional[int] = None) -> Callable:
    """A radiograph detector from a name, an ONNX path or ``package.module:callable`` (see the module docstring)."""
    spec = str(spec).strip()
    if spec in ("shipped", ""):
        from ..runtime import get_entry

        try:
            entry = get_entry(MODEL_ID)
        except ModelError as exc:
            raise InputError(f"the shipped radiograph detector is not available: {exc}") from None
        return RadiographDetector(CanvasDetector(entry, threshold, threads))
    if spec == "log":
        det = LoGBlobDetector(threshold=threshold if threshold is not None else LOG_THRESHOLD)
        return _LoGOnVolume(det)
    if spec.endswith(".onnx") or Path(spec).is_file():
        return RadiographDetector(CanvasDetector(Path(spec), threshold, threads))
    if ":" in spec:
        mod_name, _, attr = spec.partition(":")
        try:
            obj = getattr(importlib.import_module(mod_name), attr)
        except (ImportError, AttributeError) as exc:
            raise InputError(f"detector {spec!r} cannot be imported: {exc}") from None
        if not callable(obj):
            raise InputError(f"detector {spec!r} is not callable")
        return _Checked(obj, spec)
    raise InputError(f"detector {spec!r}: give 'shipped', 'log', a .onnx file or package.module:callable")


#: LoG score threshold with 0.5 false positives per image on the training and validation hosts (figure1 + NIH, split
#: seed 0); made by scripts/calibrate_log_threshold.py
LOG_THRESHOLD = 88.9


class _LoGOnVolume:
    """The LoG baseline with the pixel spacing taken from each volume (MONOCHROME2 input)."""

    def __init__(self, det: LoGBlobDetector) -> None:
        self.det = det
        self.name = f"LoG blobs (threshold {det.threshold:g})"
        self.threshold = det.threshold

    def __call__(self, volume: Volume) -> List[Detection]:
        self.det.pixel_spacing_mm = volume_pixel_mm(volume)
        self.det.photometric = "MONOCHROME2"
        return self.det(volume)


class _Checked:
    """A user's detector callable: exceptions and results that are not detections become clear errors."""

    def __init__(self, fn: Callable, name: str) -> None:
        self.fn, self.name, self.threshold = fn, name, None

    def __call__(self, volume: Volume) -> List[Detection]:
        try:
            res = self.fn(volume)
        except Exception as exc:
            raise InputError(f"detector {self.name} raised {type(exc).__name__}: {exc}") from None
        out = []
        try:
            for d in res:
                if isinstance(d, Detection):
                    out.append(d)
                else:
                    *box, score = [float(v) for v in d]
                    if len(box) != 4:
                        raise ValueError
                    out.append(Detection(tuple(box), score))
        except (TypeError, ValueError):
            raise InputError(f"detector {self.name} must return Detection objects or (i0, j0, i1, j1, score) "
                             f"tuples, got {type(res).__name__}") from None
        return out
