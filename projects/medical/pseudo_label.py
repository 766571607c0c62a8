"""Self-training on an unlabelled split: confident pseudo labels from a trained model (``tools/pseudo_label.py``).

:func:`pseudo_label` predicts every slice of a split list of a prepared dataset, keeps per class the most
confident ``portion`` of the pixels predicted as that class over the whole split (the rest become the
ignore index 255) and writes, inside the dataset root::

    pseudo_masks/<out_split>/<stem>.png     pseudo labels of the split's slices, and hard links to the
                                            masks of the ``--mix-with`` split (default train)
    pseudo_masks/<out_split>/pseudo_label.json   config, checkpoint, portion, per-class thresholds
    splits/<out_split>.txt                  the pseudo-labelled slices
    splits/<mix>+<out_split>.txt            both: the ann_file of a self-training round (one dataset,
                                            seg_map_path pseudo_masks/<out_split>/)

Slices are predicted by :class:`mmseg_medical.inference.Predictor` (the one ``infer_volume`` uses).
Confidence = the softmax probability of the predicted class (sigmoid heads: of the predicted side),
quantised to 1/65535. An existing ``pseudo_masks/<out_split>`` is replaced only when this tool wrote it (it
holds ``pseudo_label.json``); any other folder there, and an ``out_split`` that leaves ``pseudo_masks/`` (``..``),
is refused with one line, exit 2 (:func:`check_replaceable`). All outputs are staged and moved into place at the
end (a staging folder a killed run left is removed by the next run); a re-split of the dataset
(``prepare_dataset.py`` with other split options) keeps these lists, but ``<mix>+<out_split>.txt`` then
still holds the old ``<mix>`` slices: run this again afterwards.
"""
from __future__ import annotations

import json
import os
import shutil
import sys
import uuid
from pathlib import Path
from typing import List, Optional, Sequence, Union

import cv2
import numpy as np
from tqdm import tqdm

from .conversion.engine import remove_stale, write_png
from .errors import MedSegError, UsageError
from .outputs import check_apart

PathLike = Union[str, Path]
IGNORE_INDEX = 255
LEVELS = 65536  # confidence quantisation: uint16
PSEUDO_DIR = 'pseudo_masks'
RECORD = 'pseudo_label.json'


def class_thresholds(histograms: np.ndarray, portion: float) -> np.ndarray:
    """Per class, the lowest quantised confidence kept so that the kept pixels are the most confident
    ``ceil(portion x n)`` of the ``n`` predicted as that class (ties at the threshold are all kept).

    ``histograms``: (C, LEVELS) counts of pixels per predicted class and confidence level. Returns (C,)
    levels; a class never predicted gets ``LEVELS`` (keeps nothing).
    """
    if not 0.0 < portion <= 1.0:
        raise ValueError(f'portion must be in (0, 1], got {portion}')
    at_least = np.cumsum(histograms[:, ::-1], axis=1)[:, ::-1]     # pixels with confidence >= level
    need = np.ceil(portion * histograms.sum(axis=1) - 1e-9)
    thresholds = np.full(histograms.shape[0], histograms.shape[1], np.int64)
    for c in range(histograms.shape[0]):
        if need[c] > 0:
            thresholds[c] = int(np.flatnonzero(at_least[c] >= need[c]).max())
    return thresholds


def confidence(probabilities: np.ndarray, labels: np.ndarray) -> np.ndarray:
    """Quantised (uint16) probability of ``labels`` from a slice's (C, H, W) class probabilities."""
    conf = np.take_along_axis(probabilities, labels[None].astype(np.int64), axis=0)[0]
    return np.rint(conf.astype(np.float64) * (LEVELS - 1)).astype(np.uint16)


def _read_list(root: Path, split: str) -> List[str]:
    path = root / 'splits' / f'{split}.txt'
    if not path.is_file():
        raise MedSegError(path, f'no split list {split!r} (prepare the dataset first; lists: '
                                f'{", ".join(sorted(p.stem for p in (root / "splits").glob("*.txt"))) or "none"})')
    return path.read_text().split()


def _read_png(path: Path) -> np.ndarray:
    image = cv2.imread(str(path), cv2.IMREAD_UNCHANGED)
    if image is None or image.dtype != np.uint8 or not (image.ndim == 2 or image.shape[2] == 3):
        raise MedSegError(path, 'not an 8-bit grayscale or BGR PNG slice')
    return image


def _slices(root: Path, paths: Sequence[Path], in_context: bool):
    """The slice PNGs as the predictor takes them: each PNG, or for a 2.5D model ``(case volume, k)`` (the
    case's slices read once from the store, one case in memory at a time) so its neighbours can be stacked."""
    if not in_context:
        yield from (_read_png(p) for p in paths)
        return
    from .manifest import read_case_geometry, slice_stem

    case, volume = None, None
    for path in paths:
        name, index = path.stem.rsplit('_', 1)
        if name != case:
            depth = int(read_case_geometry(root, name)['shape_zhw'][0])
            volume = np.stack([_read_png(root / 'images' / f'{slice_stem(name, k)}.png') for k in range(depth)])
            case = name
        yield volume, int(index)


def _predict(predictor, root: Path, paths: Sequence[Path]):
    """(labels uint8, confidence uint16) per slice PNG: the shared :class:`~mmseg_medical.inference.Predictor`
    (batched, inference mode) given each PNG as ``LoadImageFromFile`` reads it (a 2.5D model: with its
    neighbours, as ``LoadSliceStack`` stacks them), so one model labels a slice as ``mim test`` does."""
    for probabilities in predictor.slice_probabilities(_slices(root, paths, predictor.stacks)):
        labels = predictor.decide(probabilities)
        yield labels, confidence(probabilities, labels)


def pseudo_label(config: Optional[PathLike], checkpoint: PathLike, data_root: PathLike, split: str = 'target',
                 portion: float = 0.6, out_split: str = 'target_pseudo', mix_with: Optional[str] = 'train',
                 batch_size: int = 8, device: str = 'cpu', cfg_options: Optional[dict] = None) -> dict:
    """Write pseudo labels of ``split`` as ``out_split`` (see the module docstring); returns the record.
    ``config`` None: the training config the checkpoint carries."""
    from .checkpoints import config_from_checkpoint
    from .inference import Predictor, load_config, load_model

    if not 0.0 < portion <= 1.0:
        raise MedSegError('--portion', f'must be in (0, 1], got {portion}')
    if batch_size < 1:
        raise MedSegError('--batch-size', f'must be >= 1, got {batch_size}')
    if not out_split or '/' in out_split or out_split in (split, mix_with):
        raise MedSegError('--out-split', f'must be a new split name, got {out_split!r}')
    root = Path(data_root)
    check_replaceable(root, out_split)
    stems = _read_list(root, split)
    mixed = _read_list(root, mix_with) if mix_with else []
    images = [root / 'images' / f'{s}.png' for s in stems]
    for path in images + [root / 'masks' / f'{s}.png' for s in mixed]:
        if not path.is_file():
            raise MedSegError(path, 'listed by a split list but missing')
    cfg = load_config(config, cfg_options) if config is not None else config_from_checkpoint(checkpoint, cfg_options)
    predictor = Predictor([load_model(cfg, checkpoint, device)], batch_size=batch_size, names=[str(checkpoint)])
    num_classes = predictor.num_classes
    remove_stale(root, '.pseudo-*')  # a staging folder a killed run left (its process gone)
    staging = root / f'.pseudo-{os.getpid()}-{uuid.uuid4().hex[:8]}'
    try:
        raw, masks = staging / 'raw', staging / out_split
        raw.mkdir(parents=True)
        masks.mkdir()
        hist = np.zeros((num_classes, LEVELS), np.int64)
        predicted = tqdm(zip(stems, _predict(predictor, root, images)), total=len(stems), desc=split, unit='slice',
                         disable=None, file=sys.stderr)
        for stem, (labels, conf) in predicted:
            for c in range(num_classes):
                hist[c] += np.bincount(conf[labels == c], minlength=LEVELS)
            write_png(raw / f'{stem}_labels.png', labels)
            write_png(raw / f'{stem}_conf.png', conf)
        thresholds = class_thresholds(hist, portion)
        kept = np.zeros(num_classes, np.int64)
        for stem in stems:
            labels = cv2.imread(str(raw / f'{stem}_labels.png'), cv2.IMREAD_UNCHANGED)
            conf = cv2.imread(str(raw / f'{stem}_conf.png'), cv2.IMREAD_UNCHANGED)
            keep = conf >= thresholds[labels]
            kept += np.bincount(labels[keep], minlength=num_classes)[:num_classes]
            write_png(masks / f'{stem}.png', np.where(keep, labels, IGNORE_INDEX).astype(np.uint8))
        for stem in mixed:
            _link_or_copy(root / 'masks' / f'{stem}.png', masks / f'{stem}.png')
        source = str(config) if config is not None else f"{checkpoint} (its training config, meta['cfg'])"
        record = {'config': source, 'checkpoint': str(checkpoint), 'split': split, 'out_split': out_split,
                  'mix_with': mix_with, 'portion': portion, 'ignore_index': IGNORE_INDEX,
                  'slices': len(stems), 'predicted_pixels': hist.sum(axis=1).tolist(), 'kept_pixels': kept.tolist(),
                  'thresholds': [None if t >= LEVELS else t / (LEVELS - 1) for t in thresholds.tolist()]}
        (masks / RECORD).write_text(json.dumps(record, indent=1) + '\n')
        lists = {out_split: stems}
        if mix_with:
            lists[f'{mix_with}+{out_split}'] = mixed + stems
        for name, members in lists.items():
            (staging / f'{name}.txt').write_text(''.join(f'{s}\n' for s in members))
        _move_into_place(staging, root, out_split, list(lists))
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return record


def check_replaceable(root: Path, out_split: str) -> None:
    """Refuse (:class:`UsageError`) an ``out_split`` whose folder ``root/pseudo_masks/<out_split>`` is not a new
    folder inside ``pseudo_masks/`` (``..``, ``.``, a link out of it: the check of every tool's output,
    :func:`mmseg_medical.outputs.check_apart`) or exists without this tool's record (files it did not write)."""
    target = root / PSEUDO_DIR / out_split
    check_apart(target, '--out-split', {'--data': root},
                read_inside=lambda data, inside: inside.parent != data / PSEUDO_DIR)
    if (target.exists() or target.is_symlink()) and not (target / RECORD).is_file():
        raise UsageError(target, f'exists and was not written by pseudo_label.py (no {RECORD}): it is never '
                                 'replaced; choose another --out-split')


def _link_or_copy(src: Path, dst: Path) -> None:
    try:
        os.link(src, dst)
    except OSError:  # another file system or no hard links
        shutil.copy2(src, dst)


def _move_into_place(staging: Path, root: Path, out_split: str, lists: List[str]) -> None:
    target = root / PSEUDO_DIR / out_split
    target.parent.mkdir(exist_ok=True)
    if target.exists():
        old = staging / 'old'
        os.replace(target, old)
    os.replace(staging / out_split, target)
    for name in lists:
        os.replace(staging / f'{name}.txt', root / 'splits' / f'{name}.txt')


def kept_share(record: dict) -> List[Optional[float]]:
    """Per class, the share of predicted pixels kept (None where the class was never predicted)."""
    return [k / p if p else None for k, p in zip(record['kept_pixels'], record['predicted_pixels'])]


def main(argv: Optional[Sequence[str]] = None) -> int:
    """``tools/pseudo_label.py [CONFIG] CHECKPOINT --data OUT --split target --portion 0.6 --out-split NAME``."""
    import argparse

    from mmengine.config import DictAction

    parser = argparse.ArgumentParser(prog='pseudo_label.py', description=__doc__.split('\n')[0])
    parser.add_argument('config', type=Path, metavar='[CONFIG]',
                        help='the config the checkpoint was trained with (leave out to read it from the checkpoint)')
    parser.add_argument('checkpoint', type=Path, nargs='?', help='the model that labels the split')
    parser.add_argument('--data', type=Path, required=True, help='prepared dataset root (prepare_dataset.py --out)')
    parser.add_argument('--split', default='target', help='split list to pseudo-label (default target)')
    parser.add_argument('--portion', type=float, default=0.6,
                        help='share of each class\'s predicted pixels kept, most confident first (default 0.6)')
    parser.add_argument('--out-split', default='target_pseudo', help='name of the new split (default target_pseudo)')
    parser.add_argument('--mix-with', default='train',
                        help='labelled split added to the <mix>+<out-split> list (default train; "" for none)')
    parser.add_argument('--batch-size', type=int, default=8, help='slices per forward pass (default 8)')
    parser.add_argument('--device', default='cpu', help='cpu or cuda[:N] (default cpu)')
    parser.add_argument('--cfg-options', nargs='+', action=DictAction, default=None,
                        help='config overrides the checkpoint was trained with')
    args = parser.parse_args(argv)
    if args.checkpoint is None:  # one word: the checkpoint alone
        args.config, args.checkpoint = None, args.config
    try:
        record = pseudo_label(args.config, args.checkpoint, args.data, args.split, args.portion, args.out_split,
                              args.mix_with or None, args.batch_size, args.device, args.cfg_options)
    except UsageError as exc:
        print(f'error: {exc}', file=sys.stderr)
        return 2
    except MedSegError as exc:
        print(f'error: {exc}', file=sys.stderr)
        return 1
    shares = ', '.join('–' if s is None else f'{100 * s:.1f}%' for s in kept_share(record))
    print(f'{args.data}: {record["slices"]} slices of {args.split} pseudo-labelled as {args.out_split} '
          f'(kept per class: {shares})')
    if args.mix_with:
        print(f'train on splits/{args.mix_with}+{args.out_split}.txt with seg_map_path={PSEUDO_DIR}/{args.out_split}/')
    return 0
