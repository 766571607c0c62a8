"""Synthetic raw data in the on-disk formats of the real releases (no downloads in tests or demos)."""
from .cranium import (CSV_COLUMNS, CSV_NAME, RELEASE_DIR, cranium_has_hemorrhage, cranium_patient,
                      cranium_patient_id, write_cranium_release)
from .covid19 import write_covid19_release  # noqa: F401
from .crossmoda import crossmoda_case, write_crossmoda_release  # noqa: F401
from .dicom import write_dicom_series
from .hemseg import write_hemseg_release  # noqa: F401
from .phantom import BLEED_HU, FOV_MM, HEMORRHAGE, head_ct_phantom, phantom_spacing

__all__ = [
    'BLEED_HU', 'CSV_COLUMNS', 'CSV_NAME', 'FOV_MM', 'HEMORRHAGE', 'RELEASE_DIR', 'cranium_has_hemorrhage',
    'cranium_patient', 'cranium_patient_id', 'head_ct_phantom', 'phantom_spacing', 'write_cranium_release',
    'write_dicom_series',
]
