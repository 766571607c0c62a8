"""Raw releases → 2D PNG slices. One spec module per dataset over a shared engine."""
from . import cranium  # noqa: F401  (registers the converter)
from . import crossmoda  # noqa: F401,E402  (registers crossmoda)
from . import hemseg  # noqa: F401,E402  (registers hemseg)
from . import covid19, mosmed, nifti_pairs  # noqa: F401,E402  (register covid19, mosmed, msd-lung)
from . import nsclc, structseg  # noqa: F401,E402  (register nsclc-lung, nsclc-pe, structseg-lung, structseg-gtv)
from . import nnunet  # noqa: F401,E402  (registers nnunet)
from .base import CONVERTERS, CaseSource, DatasetConverter, register_converter
from .engine import format_statistics, prepare

__all__ = ['CONVERTERS', 'CaseSource', 'DatasetConverter', 'register_converter', 'prepare', 'format_statistics']
