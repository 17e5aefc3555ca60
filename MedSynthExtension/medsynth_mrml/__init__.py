"""MRML bridge: convert between MedSynth engine objects and Slicer MRML nodes.

Every function takes the MRML scene (or a node) as an argument and never touches
``slicer.app``, ``slicer.mrmlScene``, ``slicer.modules`` or
``slicer.util.loadVolume``/``saveNode``, so the bridge runs both inside the Slicer
application and under the ``slicer-core`` wheel (real MRML without Qt).

This package imports ``slicer``; import it only where Slicer (or slicer-core) exists.
"""

from .bridge import (
    LABEL_VALUE_TAG,
    READ_SUFFIXES,
    WRITE_SUFFIXES,
    control_point_labels,
    copy_display,
    labelmap_node_from_volume,
    labels_from_segmentation,
    markups_from_points,
    node_from_volume,
    place_beside,
    points_from_markups,
    read_node,
    remove_node,
    roi_from_bounds,
    segment_label_values,
    segmentation_node_from_labels,
    table_node_from_rows,
    update_node_from_volume,
    update_node_region,
    volume_from_node,
    write_node,
)

__all__ = [
    "LABEL_VALUE_TAG",
    "READ_SUFFIXES",
    "WRITE_SUFFIXES",
    "control_point_labels",
    "copy_display",
    "labelmap_node_from_volume",
    "labels_from_segmentation",
    "markups_from_points",
    "node_from_volume",
    "place_beside",
    "points_from_markups",
    "read_node",
    "remove_node",
    "roi_from_bounds",
    "segment_label_values",
    "segmentation_node_from_labels",
    "table_node_from_rows",
    "update_node_from_volume",
    "update_node_region",
    "volume_from_node",
    "write_node",
]
