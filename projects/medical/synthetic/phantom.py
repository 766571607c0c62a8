"""A synthetic axial head CT with intraparenchymal hemorrhages, in Hounsfield units.

The phantom is built slice-major ``(Z, H, W)`` (slice 0 is caudal, rows run anterior → posterior, as in
an axial CT displayed in radiological view). The in-plane anatomy scales with ``size``: the head fills
the field of view the way a reconstructed head CT does. Tissues (HU before noise):

* air -1000 outside; scalp soft tissue ~40 (~4 px at 128²); skull: cortical tables 1200–1500 around a
  diploe layer 350–550, thicker anteriorly/posteriorly, at the skull base and where the vertex is cut
  obliquely; petrous ridges in the most caudal slices;
* subarachnoid CSF ~7, a gyral grey-matter ribbon ~40 with sulci, white matter ~26, deep grey nuclei;
  smooth low-frequency variation of ±2 HU;
* lateral ventricles (CSF, ``)(``-shaped butterfly in the middle slices), third and fourth ventricles,
  the interhemispheric fissure;
* each bleed: a smooth irregular ellipsoid (60–85 HU, denser core) off the midline, spanning several
  slices with a cross-section of ~4–15% of the slice's brain, and a hypodense edema halo outside it.
  ``label`` is 1 exactly on the voxels painted with bleed HU (the anatomy is blurred before, not after).

Slightly correlated Gaussian noise (σ 4–5.5 HU) is added last. Everything is drawn from one seeded generator.
"""
from __future__ import annotations

import math
from typing import Tuple

import numpy as np
from scipy import ndimage

Spacing = Tuple[float, float, float]

#: Field of view (mm) that ``size`` pixels span in :func:`phantom_spacing`.
FOV_MM = 230.0
#: Bleed HU range (before noise) and the label value of a bleed voxel.
BLEED_HU = (60.0, 85.0)
HEMORRHAGE = 1


def phantom_spacing(size: int, slice_thickness: float = 5.0, fov_mm: float = FOV_MM) -> Spacing:
    """Voxel spacing ``(sx, sy, sz)`` in mm of a ``size``-pixel phantom: a head CT's FOV, 5 mm slices."""
    pixel = round(fov_mm / size, 4)
    return (pixel, pixel, float(slice_thickness))


def _window(hu: np.ndarray, center: float, width: float) -> np.ndarray:
    """Map ``[center - width/2, center + width/2]`` onto ``[0, 255]`` (clipped, rounded) as uint8."""
    lower = center - width / 2.0
    scaled = (np.asarray(hu, dtype=np.float32) - np.float32(lower)) * np.float32(255.0 / width)
    return np.clip(np.rint(scaled), 0, 255).astype(np.uint8)


def _upsample_weights(length: int, cells: int) -> np.ndarray:
    """``(length, cells)`` Gaussian interpolation weights (rows sum to 1) from a coarse grid."""
    grid = (np.arange(cells, dtype=np.float32) + 0.5) * (length / cells)
    pos = np.arange(length, dtype=np.float32)[:, None] + 0.5
    weights = np.exp(-0.5 * ((pos - grid[None]) / (0.6 * length / cells)) ** 2)
    return weights / weights.sum(axis=1, keepdims=True)


def _smooth_field(gen: np.random.Generator, shape: Tuple[int, int, int], cells: int) -> np.ndarray:
    """Smooth random field in [-1, 1]: a coarse ``(Z, cells, cells)`` grid, smoothly interpolated."""
    coarse = gen.standard_normal((shape[0], cells, cells)).astype(np.float32)
    if shape[0] > 1:
        coarse = ndimage.gaussian_filter(coarse, sigma=(0.8, 0, 0), mode='nearest')
    rows, cols = _upsample_weights(shape[1], cells), _upsample_weights(shape[2], cells)
    field = rows @ coarse @ cols.T
    return field / max(float(np.abs(field).max()), 1e-6)


def _harmonics(gen: np.random.Generator, theta: np.ndarray, orders: range, amplitude: float) -> np.ndarray:
    """Sum of ``cos(k θ + φ_k)`` with random phases and amplitudes decaying as ``1/k``."""
    total = np.zeros_like(theta)
    for k in orders:
        total += gen.uniform(0.3, 1.0) * amplitude / k * np.cos(k * theta + gen.uniform(0, 2 * np.pi))
    return total


def _head_profile(t: np.ndarray) -> np.ndarray:
    """Relative head cross-section radius per slice; ``t`` runs -1 (caudal) to 1 (cranial)."""
    caudal = np.sqrt(np.clip(1.0 - (t / 1.35) ** 2, 0.0, None))
    cranial = np.sqrt(np.clip(1.0 - (t / 1.13) ** 2, 0.0, None))
    return np.where(t < 0, caudal, cranial).astype(np.float32)


def _bump(t: np.ndarray, center: float, half_width: float) -> np.ndarray:
    """1 at ``center``, falling to 0 at ``center ± half_width`` (elliptic profile), per slice."""
    return np.sqrt(np.clip(1.0 - ((t - center) / half_width) ** 2, 0.0, None)).astype(np.float32)


def head_ct_phantom(num_slices: int = 24, size: int = 128, rng: np.random.Generator | int = 0,
                    num_bleeds: int = 1, slice_thickness: float = 5.0) -> Tuple[np.ndarray, np.ndarray]:
    """Simulate one axial head CT.

    Args:
        num_slices: number of axial slices ``Z`` (slice 0 caudal, the last one near the vertex).
        size: rows = columns of each slice.
        rng: seed or generator; the same seed gives the same volume.
        num_bleeds: intraparenchymal hemorrhages to paint (0: a patient without hemorrhage).
        slice_thickness: slice spacing in mm; sets how many slices a bleed spans (10–18 mm semi-axis).

    Returns:
        ``(hu, label)``: int16 ``(Z, H, W)`` Hounsfield units and uint8 ``(Z, H, W)`` in {0, 1}.
    """
    if num_slices < 1 or size < 32:
        raise ValueError(f'need num_slices >= 1 and size >= 32, got {num_slices}, {size}')
    if num_bleeds < 0:
        raise ValueError(f'num_bleeds must be >= 0, got {num_bleeds}')
    gen = np.random.default_rng(rng)
    shape = (num_slices, size, size)
    k = size / 128.0  # pixel lengths below are quoted for a 128-pixel slice

    # --- geometry: rotated, normalised in-plane coordinates and a slice coordinate t in [-1, 1] ---
    t = np.linspace(-1.0, 1.0, num_slices, dtype=np.float32) if num_slices > 1 else np.zeros(1, np.float32)
    t3 = t[:, None, None]
    profile = _head_profile(t)[:, None, None]
    a, b = size * gen.uniform(0.31, 0.34), size * gen.uniform(0.39, 0.42)  # half width / half length
    cx, cy = (size - 1) / 2 + gen.uniform(-2, 2) * k, (size - 1) / 2 + gen.uniform(-2, 2) * k
    tilt = math.radians(gen.uniform(-7, 7))
    rows, cols = np.mgrid[0:size, 0:size].astype(np.float32)
    u = (cols - cx) * math.cos(tilt) + (rows - cy) * math.sin(tilt)  # + toward image right
    v = -(cols - cx) * math.sin(tilt) + (rows - cy) * math.cos(tilt)  # + posterior (image down)
    u = u / (1.0 + 0.07 * v / b)  # egg shape: narrower frontally
    un, vn = u / a, v / b
    rn = np.sqrt(un ** 2 + vn ** 2)
    theta = np.arctan2(vn, un)
    ray = np.sqrt((a * np.cos(theta)) ** 2 + (b * np.sin(theta)) ** 2)  # pixels per unit of rn

    # --- shells along each ray: scalp, skull (tables + diploe), then the intracranial space ---
    outer = profile * (1.0 + _harmonics(gen, theta, range(2, 6), 0.05))
    depth = (outer - rn) * ray  # pixels below the skin surface
    oblique = 1.0 + 1.3 * (1.0 - profile) ** 1.5  # tangential cut of the shell near the vertex
    base = 1.0 + 1.2 * np.clip((-t3 - 0.55) / 0.45, 0.0, None)  # thick skull base
    scalp = k * (4.2 + 0.7 * np.cos(2 * theta + gen.uniform(0, np.pi))) * oblique
    skull = k * (2.7 + 1.4 * np.sin(theta) ** 2 + _harmonics(gen, theta, range(1, 5), 0.8)) * oblique * base
    d_in = depth - scalp - skull  # depth below the inner table

    hu = np.full(shape, -1000.0, dtype=np.float32)
    head = depth >= 0
    hu[head] = gen.uniform(32, 48)
    bone = (depth >= scalp) & (d_in < 0)
    cortical, diploe = gen.uniform(1200, 1500), gen.uniform(350, 550)
    thickness = skull[bone]
    frac = np.clip((depth[bone] - scalp[bone]) / thickness, 0.0, 1.0)
    marrow = np.clip((thickness - 2.5 * k) / (2.5 * k), 0.0, 1.0)  # thin bone is all cortical
    hu[bone] = cortical - (cortical - diploe) * marrow * (1.0 - np.abs(2 * frac - 1) ** 1.3)
    petrous = _bump(t3, -1.0, 0.28)
    for side in (-1.0, 1.0):  # petrous ridges of the skull base, running anteromedially
        ridge_u, ridge_v = u - side * 0.4 * a, (v / b - 0.1) * a
        along = ridge_u * math.cos(side * 0.7) + ridge_v * math.sin(side * 0.7)
        across = -ridge_u * math.sin(side * 0.7) + ridge_v * math.cos(side * 0.7)
        ridge = ((along / (0.3 * a)) ** 2 + (across / (0.07 * a)) ** 2 < petrous ** 2) & (depth >= scalp)
        hu[ridge] = gen.uniform(900, 1300)
        bone |= ridge
    intracranial = (d_in >= 0) & ~bone

    # --- brain: CSF rim, gyral cortex with sulci, white matter, smooth variation ---
    csf_rim = k * (0.9 + 0.5 * _harmonics(gen, theta, range(3, 8), 1.0))
    folds = gen.integers(9, 15) * theta + gen.uniform(0, 2 * np.pi)  # gyri turn 1.5 rad from base to top
    gyri = k * (2.8 + np.sin(folds) * np.cos(1.5 * t3) + np.cos(folds) * np.sin(1.5 * t3))
    grey, white, csf = gen.uniform(38, 42), gen.uniform(24, 28), gen.uniform(4, 10)
    variation = np.float32(2.0) * _smooth_field(gen, shape, 6)
    brain_hu = np.where(d_in < csf_rim + gyri, np.float32(grey), np.float32(white)) + variation
    fluid = d_in < csf_rim
    radius_px = rn * ray
    shell = np.nonzero(intracranial & (d_in < csf_rim + 6.0 * k))  # sulci only reach this deep
    shell_theta, shell_t = theta[shell[1:]], t[shell[0]]
    shell_radius, shell_room = radius_px[shell[1:]], d_in[shell] - csf_rim[shell[1:]]
    sulci = np.zeros(shell_t.shape, dtype=bool)
    for _ in range(int(gen.integers(14, 22))):
        angle, sulcus_depth = gen.uniform(-np.pi, np.pi), k * gen.uniform(2.5, 6.0)
        offset = shell_theta - (angle + 0.12 * shell_t)  # sulci wander a little from slice to slice
        gap = np.abs((offset + np.pi) % (2 * np.pi) - np.pi) * shell_radius
        sulci |= (gap < 0.55 * k) & (shell_room < sulcus_depth)
    fluid[tuple(axis[sulci] for axis in shell)] = True
    fissure_depth = np.where(t3 > 0.3, np.float32(1e3), 0.28 * b * profile)
    fluid |= (np.abs(u) < 0.7 * k) & (d_in < fissure_depth)

    # ventricles and deep grey nuclei (positions in units of the head's half axes a, b)
    lateral = _bump(t3, 0.02, 0.36)
    vv = v / b + 0.04
    centre_line = a * (0.08 + 0.22 * (vv / 0.34) ** 2)
    along = vv / (0.36 * (0.6 + 0.4 * lateral))
    half_width = a * (0.06 + 0.05 * np.clip(along, 0, 1)) * lateral * np.sqrt(np.clip(1 - along ** 2, 0, None))
    ventricles = np.abs(np.abs(u) - centre_line) < half_width
    third = _bump(t3, -0.3, 0.16) * (0.03 * a)
    ventricles |= (np.abs(u) < third) & (np.abs(v / b - 0.02) < 0.12)
    fourth = _bump(t3, -0.72, 0.14)
    ventricles |= ((u / (0.09 * a)) ** 2 + ((v / b - 0.33) / 0.06) ** 2) < fourth ** 2
    nuclei = _bump(t3, -0.1, 0.22) ** 2
    for side in (-1.0, 1.0):
        nucleus = ((u - side * 0.27 * a) / (0.1 * a)) ** 2 + ((v / b - 0.02) / 0.16) ** 2 < nuclei
        brain_hu[nucleus] = grey - 2.0 + variation[nucleus]
    ventricles &= intracranial
    fluid = (fluid | ventricles) & intracranial
    brain_hu[fluid] = csf + 0.5 * variation[fluid]
    hu[intracranial] = brain_hu[intracranial]

    # partial-volume blur of the anatomy (not of the bleeds: the label must stay exact)
    hu = ndimage.gaussian_filter(hu, sigma=(0, 0.7, 0.7), mode='nearest')

    parenchyma = intracranial & ~fluid
    room = intracranial & ~ventricles & (d_in >= csf_rim + 2.0 * k)  # effaces sulci, spares the cortex
    brain_area = intracranial.sum(axis=(1, 2)).astype(np.float64)
    label = np.zeros(shape, dtype=np.uint8)
    for _ in range(num_bleeds):
        zs, bleed, bleed_hu = _bleed(gen, room, brain_area, ventricles, u, v, a, b, t, slice_thickness, k)
        target = gen.uniform(14, 20)  # perihematomal edema: hypodense halo outside the bleed
        halo = _edema(gen, bleed) * (parenchyma[zs] & (label[zs] == 0))
        hu[zs] -= halo * (hu[zs] - target)
        hu[zs][bleed] = bleed_hu[bleed]
        label[zs][bleed] = HEMORRHAGE

    noise = ndimage.gaussian_filter(gen.standard_normal(shape, dtype=np.float32), sigma=(0, 0.5, 0.5))
    hu += noise * np.float32(gen.uniform(4.0, 5.5) / max(float(noise.std()), 1e-6))
    return np.clip(np.rint(hu), -1024, 3071).astype(np.int16), label


def _bleed(gen: np.random.Generator, room: np.ndarray, brain_area: np.ndarray, ventricles: np.ndarray,
           u: np.ndarray, v: np.ndarray, a: float, b: float, t: np.ndarray, slice_thickness: float,
           k: float) -> Tuple[slice, np.ndarray, np.ndarray]:
    """One irregular ellipsoidal bleed in ``room``, in one hemisphere: its slice range, mask and HU."""
    num_slices = room.shape[0]
    candidates = np.flatnonzero((t >= -0.45) & (t <= 0.55) & (brain_area > 0))
    if candidates.size == 0:
        candidates = np.array([int(np.argmax(brain_area))])
    zc = int(gen.choice(candidates))
    # centre: off the midline, inside the parenchyma, away from the ventricles and the cortex
    inside = room[zc] & ~ndimage.binary_dilation(ventricles[zc], iterations=max(int(4 * k), 1))
    inside &= (np.abs(u) > 0.12 * a) & (np.abs(u) < 0.5 * a) & (np.abs(v) < 0.45 * b)
    eroded = ndimage.binary_erosion(inside, iterations=max(int(6 * k), 1))
    for candidate in (eroded, inside, room[zc]):
        if candidate.any():
            points = np.argwhere(candidate)
            break
    cy, cx = (float(c) for c in points[gen.integers(len(points))] + gen.uniform(-0.5, 0.5, 2))
    side = 1.0 if u[min(int(round(cy)), u.shape[0] - 1), min(int(round(cx)), u.shape[1] - 1)] >= 0 else -1.0
    hemisphere = side * u > 1.0 * k

    fraction = gen.uniform(0.06, 0.11)
    elong, angle = gen.uniform(0.7, 1.4), gen.uniform(0, np.pi)
    semi_z = max(gen.uniform(10.0, 18.0) / slice_thickness, 1.6)
    reach = int(math.ceil(1.45 * semi_z))
    zs = slice(max(zc - reach, 0), min(zc + reach + 1, num_slices))
    rows, cols = np.mgrid[0:room.shape[1], 0:room.shape[2]].astype(np.float32)
    du = (cols - cx) * math.cos(angle) + (rows - cy) * math.sin(angle)
    dv = -(cols - cx) * math.sin(angle) + (rows - cy) * math.cos(angle)
    phi = np.arctan2(dv, du)
    dz = ((np.arange(zs.start, zs.stop, dtype=np.float32) - zc) / np.float32(semi_z))[:, None, None]
    boundary = np.float32(1.0) + 0.08 * _smooth_field(gen, (zs.stop - zs.start,) + phi.shape, 5)
    for order in range(2, 6):  # lobulated outline that twists from slice to slice
        amplitude, phase, twist = gen.uniform(0.06, 0.24) / order, gen.uniform(0, 2 * np.pi), gen.uniform(-1, 1)
        boundary += amplitude * np.cos(order * phi + phase + twist * dz)

    sub_room, area = room[zs] & hemisphere, np.maximum(brain_area[zs], 1.0)
    cap = np.clip(1.0 - np.abs(dz) ** 3, 0.0, None)  # flat-topped in z: no slivers at the ends
    scale = math.sqrt(fraction * brain_area[zc] / math.pi)
    for _ in range(6):  # keep the largest cross-section within ~4-15% of that slice's brain
        rho = np.sqrt((du / (scale * elong)) ** 2 + (dv * elong / scale) ** 2)
        mask = _largest_component((rho < boundary * np.sqrt(cap)) & sub_room)
        share = mask.sum(axis=(1, 2)) / area
        mask[share < 0.015] = False  # a bleed's last slice still shows a visible blob
        largest = float(share.max())
        if 0.045 <= largest <= 0.14 or largest == 0.0:
            break
        scale *= math.sqrt(min(max(fraction / largest, 0.5), 2.0))
    core = np.clip(1.0 - rho / (boundary * np.sqrt(cap) + 1e-3), 0.0, 1.0)
    field = gen.uniform(64, 76) - 3.0 + 9.0 * core + 1.5 * (boundary - 1.0) / 0.08
    return zs, mask, np.clip(field, *BLEED_HU).astype(np.float32)


def _largest_component(mask: np.ndarray) -> np.ndarray:
    """The largest 6-connected component of ``mask`` (all False when empty)."""
    labels, count = ndimage.label(mask)
    if count <= 1:
        return mask
    sizes = np.bincount(labels.ravel())[1:]
    return labels == int(np.argmax(sizes)) + 1


def _edema(gen: np.random.Generator, bleed: np.ndarray) -> np.ndarray:
    """Weight in [0, 1) of an edema halo decaying with the in-plane distance outside ``bleed``."""
    weight = np.zeros(bleed.shape, dtype=np.float32)
    strength, reach = gen.uniform(0.3, 0.7), gen.uniform(1.2, 2.5)
    for z in np.flatnonzero(bleed.any(axis=(1, 2))):
        distance = ndimage.distance_transform_edt(~bleed[z]).astype(np.float32)
        weight[z] = strength * np.exp(-distance / reach) * (distance > 0)
    return weight
