"""Evaluation protocols, registered by name: ``VolumeMetric(protocol=NAME)``,
``tools/evaluate_volumes.py --protocol NAME`` and the benchmark presets take the name.

==================  =====================================================================================
``default``         this project's surface-distance metrics (DeepMind definitions) in mm
``hemseg``          ``default`` with the HemSeg paper's HD95 rule (MONAI, boundary voxels, mm) and CI
``hemseg-paper``    the HemSeg paper's test scripts: RAS grid at the paper's spacing, MONAI metrics, HD95 in
                    voxels of that grid
``crossmoda``       the crossMoDA challenge's ``scores.py`` (medpy Dice and ASSD, |diag(affine)| spacing,
                    350 mm for an empty prediction, median [IQR], per site)
``covid19``         the COVID-19-CT-Seg benchmark's ``utils/COVID-19-Seg-Evaluation.py`` (DSC, NSD at 1 mm
                    lungs / 3 mm lesion)
``nnunet``          nnU-Net v2's ``compute_metrics_on_folder`` (Dice, IoU, TP, FP, FN, TN, n_pred, n_ref;
                    NaN when both empty, nanmean per label, ``foreground_mean``; ``summary.json``)
==================  =====================================================================================

Each protocol lives in its own module and states its rules and source in its :class:`Protocol` fields.
"""
from .base import (METRIC_KEYS, METRIC_UNITS, Protocol, Structure, get_protocol, metric_header, protocol_names,
                   register_protocol, structure_key, structure_order)
from . import default, hemseg, hemseg_paper, crossmoda, covid19, nnunet  # noqa: F401,E402  (registration)

__all__ = ['METRIC_KEYS', 'METRIC_UNITS', 'Protocol', 'Structure', 'get_protocol', 'metric_header', 'protocol_names',
           'register_protocol', 'structure_key', 'structure_order']
