"""Pictures people would rather look at: slices with their masks overlaid, side by side."""
from __future__ import annotations

from pathlib import Path
from typing import Optional, Sequence

import cv2
import numpy as np

#: BGR colour per class index (0 = background, not drawn).
PALETTE = np.array([[0, 0, 0], [0, 0, 255], [0, 255, 0], [255, 128, 0], [255, 0, 255], [0, 255, 255]], np.uint8)


def overlay(image: np.ndarray, mask: Optional[np.ndarray], alpha: float = 0.45) -> np.ndarray:
    """Grey ``image`` (H, W) as BGR with each class of ``mask`` tinted and outlined."""
    bgr = cv2.cvtColor(image, cv2.COLOR_GRAY2BGR) if image.ndim == 2 else image.copy()
    if mask is None:
        return bgr
    out = bgr.astype(np.float32)
    for c in np.unique(mask):
        if c == 0:
            continue
        colour = PALETTE[int(c) % len(PALETTE)].astype(np.float32)
        region = mask == c
        out[region] = (1 - alpha) * out[region] + alpha * colour
    out = out.astype(np.uint8)
    for c in np.unique(mask):
        if c == 0:
            continue
        contours, _ = cv2.findContours((mask == c).astype(np.uint8), cv2.RETR_EXTERNAL, cv2.CHAIN_APPROX_NONE)
        cv2.drawContours(out, contours, -1, PALETTE[int(c) % len(PALETTE)].tolist(), 1)
    return out


def _label(panel: np.ndarray, text: str) -> np.ndarray:
    panel = panel.copy()
    scale = max(0.35, panel.shape[1] / 400)
    cv2.putText(panel, text, (4, int(16 * scale) + 4), cv2.FONT_HERSHEY_SIMPLEX, scale, (255, 255, 255), 1,
                cv2.LINE_AA)
    return panel


def side_by_side(image: np.ndarray, panels: Sequence[tuple], min_width: int = 256) -> np.ndarray:
    """``image`` plain, then one overlay per ``(title, mask)``; upscaled so small slices stay legible."""
    tiles = [_label(overlay(image, None), 'image')] + [_label(overlay(image, m), t) for t, m in panels]
    row = np.concatenate([np.pad(t, ((0, 0), (0, 2), (0, 0)), constant_values=255) for t in tiles], axis=1)
    factor = max(1, int(np.ceil(min_width / image.shape[1])))
    if factor > 1:
        row = cv2.resize(row, None, fx=factor, fy=factor, interpolation=cv2.INTER_NEAREST)
    return row


def write_previews(root: Path, records, results, count: int) -> None:
    """``root/previews/<slice>.png`` for the ``count`` labelled slices with the most foreground."""
    pixels = {r.case_id: r.slice_pixels for r in results if r.labelled}
    ranked = sorted((rec for rec in records if rec.mask),
                    key=lambda rec: (-pixels[rec.case_id][rec.slice_index], rec.case_id, rec.slice_index))
    chosen, seen_cases = [], set()
    for rec in ranked:  # one slice per case first, for variety
        if rec.case_id not in seen_cases and len(chosen) < count:
            chosen.append(rec)
            seen_cases.add(rec.case_id)
    (root / 'previews').mkdir(exist_ok=True)
    for rec in chosen:
        image = cv2.imread(str(root / rec.image), cv2.IMREAD_GRAYSCALE)
        mask = cv2.imread(str(root / rec.mask), cv2.IMREAD_UNCHANGED)
        cv2.imwrite(str(root / 'previews' / f'{rec.stem}.png'), side_by_side(image, [('mask', mask)]))
