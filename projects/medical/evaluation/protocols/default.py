"""``default``: this project's volume metrics (Dice, IoU, NSD, HD95, ASSD per case and class).

Surface metrics follow DeepMind's ``surface-distance`` definitions (surfel-area weighted), in mm with the
ground truth's header voxel sizes, on the source scan's grid; empty structures get the finite policy of
:mod:`mmseg_medical.evaluation.surface` so every case stays in every mean.
"""
from .base import Protocol, register_protocol

DEFAULT = register_protocol(Protocol(
    name='default',
    title="this project's metrics: DeepMind surface-distance definitions in mm, every case in every mean",
    source='this project (surface metrics = DeepMind surface-distance 0.1, tested against stored values)',
    metrics=('dice', 'iou', 'nsd', 'hd95', 'assd'),
))
