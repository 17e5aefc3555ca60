"""``medsynth demo`` part "cyto": a gallery of generated cells, a row per class (both namings), and one cell
inserted into a real Herlev image when the data is present (else into a synthetic smear background)."""

from __future__ import annotations

from pathlib import Path
from typing import List

import numpy as np

from ..progress import Reporter


def smear_background(size: int = 160, seed: int = 0) -> np.ndarray:
    """A pale pink-lilac smear-like background (RGB uint8) for the insertion demo without data."""
    from scipy import ndimage

    rng = np.random.default_rng(seed)
    noise = ndimage.gaussian_filter(rng.standard_normal((size, size)), 6)
    noise /= np.abs(noise).max() + 1e-9
    base = np.array([214, 190, 212], np.float32)
    return np.clip(base + 18 * noise[..., None] * np.array([1.0, 0.8, 0.9]), 0, 255).astype(np.uint8)


def cyto_part(out_dir: Path, reporter: Reporter) -> List[Path]:
    from ..overview import write_png
    from ..volume import Volume
    from .blend import insert_cell
    from .data import default_herlev_dir, read_rgb
    from .generate import gallery, generate_cells

    written: List[Path] = []
    for n, naming in enumerate(("bethesda", "herlev")):
        grid, labels, _ = gallery("all", 8, 0, naming, progress=reporter.sub(0.4 * n, 0.4 * (n + 1)).progress)
        written.append(write_png(grid, out_dir / f"cells_gallery_{naming}.png"))
        (out_dir / f"cells_gallery_{naming}.txt").write_text(
            "rows (top to bottom): " + ", ".join(c for c, _ in labels) + "; 8 seeds (0-7) per row\n", encoding="utf-8")
        written.append(out_dir / f"cells_gallery_{naming}.txt")
    reporter.step(0.85, "inserting a cell")
    herlev = default_herlev_dir() / "normal_intermediate"
    files = sorted(herlev.glob("*.jpg")) if herlev.is_dir() else []
    host_rgb = read_rgb(files[0]) if files else smear_background()
    host = Volume(host_rgb[np.newaxis], np.diag([-1.0, -1.0, 1.0, 1.0]), name="host")
    cell = generate_cells("HSIL", 1, seed=3)[0]
    ni, nj = host.shape_ijk[:2]
    point = host.ijk_to_ras_points([[ni * 0.7, nj * 0.35, 0]])[0]
    tiles = [host_rgb]
    for method in ("poisson", "alpha"):
        res = insert_cell(host, cell.image, point, size_px=min(64, ni // 2, nj // 2), method=method)
        tiles.append(res.volume.array[0])
    sep = np.full((host_rgb.shape[0], 4, 3), 255, np.uint8)
    row = np.concatenate([tiles[0], sep, tiles[1], sep, tiles[2]], axis=1)
    written.append(write_png(row, out_dir / "cell_insertion_host_poisson_alpha.png"))
    reporter.step(1.0, "cyto done")
    return written
