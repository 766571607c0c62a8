"""nnU-Net v2's dataset fingerprint, computed the way ``nnUNetv2_extract_fingerprint`` does
(``nnunetv2.experiment_planning.dataset_fingerprint.fingerprint_extractor.DatasetFingerprintExtractor``).

Per case: the image channels and the label are cropped to the bounding box of the nonzero region of the
channels (``crop_to_nonzero``); the spacing (z, y, x) and the cropped shape are recorded; per channel, a seeded
sample of foreground voxels (label > 0) drawn with replacement (``np.random.RandomState(1234).choice``),
:data:`FOREGROUND_VOXELS` ``// number of cases`` per case (``num_foreground_voxels_for_intensitystats``: 1e8 in
all), over which the dataset's ``foreground_intensity_properties_per_channel``
(mean, median, std, min, max, percentile_00_5, percentile_99_5) are computed. The sample is taken from the
voxels in C order of the (z, y, x) array, as nnU-Net's SimpleITK reader gives them, so the values equal nnU-Net's.
"""
from __future__ import annotations

from typing import Dict, List, Sequence, Tuple

import numpy as np

SEED = 1234
NUM_SAMPLES = 10000
#: nnU-Net's ``num_foreground_voxels_for_intensitystats``: the size of the pooled sample over all cases.
FOREGROUND_VOXELS = 10e7


def samples_per_case(num_cases: int) -> int:
    """nnU-Net's sample size per case: ``int(FOREGROUND_VOXELS // num_cases)`` (read at call time)."""
    return int(FOREGROUND_VOXELS // max(1, num_cases))


def foreground_sample(image_zhw: np.ndarray, label_zhw: np.ndarray, seed: int = SEED,
                      num_samples: int = NUM_SAMPLES) -> np.ndarray:
    """nnU-Net's foreground intensity sample of one channel of one case (empty when no foreground)."""
    return foreground_samples([image_zhw], label_zhw, seed, num_samples)[0]


def foreground_samples(images: Sequence[np.ndarray], label_zhw: np.ndarray, seed: int = SEED,
                       num_samples: int = NUM_SAMPLES) -> List[np.ndarray]:
    """The sample of every channel of one case, drawn from one random state in channel order (as nnU-Net)."""
    rs = np.random.RandomState(seed)
    mask = np.asarray(label_zhw) > 0
    out = []
    for image in images:
        pixels = np.asarray(image)[mask]
        out.append(rs.choice(pixels, num_samples, replace=True) if pixels.size else np.zeros(0, pixels.dtype))
    return out


def nonzero_bbox(images: Sequence[np.ndarray]) -> Tuple[slice, ...]:
    """Bounding box of the voxels where any channel is nonzero (nnU-Net's ``crop_to_nonzero``; the holes it fills
    lie inside the box, so the box is the same)."""
    nonzero = np.zeros(np.asarray(images[0]).shape, bool)
    for image in images:
        nonzero |= np.asarray(image) != 0
    if not nonzero.any():
        return tuple(slice(0, s) for s in nonzero.shape)
    where = np.nonzero(nonzero)
    return tuple(slice(int(w.min()), int(w.max()) + 1) for w in where)


def intensity_properties(values: np.ndarray) -> Dict[str, float]:
    """nnU-Net's ``foreground_intensity_properties_per_channel`` entry of a channel's pooled sample."""
    values = np.asarray(values)  # nnU-Net computes on the sample's own dtype (float32 images)
    if values.size == 0:
        return {k: float('nan') for k in ('mean', 'median', 'std', 'min', 'max', 'percentile_99_5',
                                          'percentile_00_5')}
    p00_5, median, p99_5 = np.percentile(values, (0.5, 50.0, 99.5))
    return {'mean': float(np.mean(values)), 'median': float(median), 'std': float(np.std(values)),
            'min': float(np.min(values)), 'max': float(np.max(values)), 'percentile_99_5': float(p99_5),
            'percentile_00_5': float(p00_5)}


def dataset_fingerprint(cases: Sequence[Tuple[Sequence[np.ndarray], np.ndarray, Sequence[float]]]) -> dict:
    """The fingerprint of ``cases`` = ``(channels (Z, H, W), label (Z, H, W), spacing (z, y, x))``, with nnU-Net's
    keys."""
    spacings, shapes, relative, samples = [], [], [], []
    for images, label, spacing in cases:
        box = nonzero_bbox(images)
        cropped = [np.asarray(im)[box] for im in images]
        samples.append(foreground_samples(cropped, np.asarray(label)[box], num_samples=samples_per_case(len(cases))))
        spacings.append([float(s) for s in spacing])
        shapes.append([int(s) for s in cropped[0].shape])
        relative.append(float(np.prod(cropped[0].shape) / np.prod(np.asarray(images[0]).shape)))
    channels = len(samples[0]) if samples else 0
    props = {str(c): intensity_properties(np.concatenate([s[c] for s in samples])) for c in range(channels)}
    return {'foreground_intensity_properties_per_channel': props,
            'median_relative_size_after_cropping': float(np.median(relative)) if relative else float('nan'),
            'shapes_after_crop': shapes, 'spacings': spacings}
