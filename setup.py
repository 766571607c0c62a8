"""Install the MMSegmentation medical extension: ``projects/medical`` is imported as ``mmseg_medical``."""
from pathlib import Path

from setuptools import find_packages, setup

HERE = Path(__file__).parent
PKG_DIR = 'projects/medical'


def requirements(name: str) -> list:
    """Pinned requirements from ``requirements/<name>.txt`` (comments dropped)."""
    lines = (HERE / 'requirements' / f'{name}.txt').read_text().splitlines()
    return [ln.split('#')[0].strip() for ln in lines if ln.split('#')[0].strip()]


def version() -> str:
    scope: dict = {}
    exec((HERE / PKG_DIR / 'version.py').read_text(), scope)
    return scope['__version__']


setup(
    name='mmseg-medical',
    version=version(),
    description='MMSegmentation extension for 2D medical image segmentation (volumes to slices and back)',
    long_description=(HERE / 'README.md').read_text() if (HERE / 'README.md').exists() else '',
    long_description_content_type='text/markdown',
    python_requires='>=3.9',
    package_dir={'mmseg_medical': PKG_DIR},
    packages=['mmseg_medical'] + [f'mmseg_medical.{p}' for p in find_packages(PKG_DIR)],
    # data files read at run time: the COVID-19-CT-Seg benchmark's official split files (with their provenance)
    package_data={'mmseg_medical': ['data/*.json']},
    # mmcv is not a hard requirement: mmcv-lite (default, `pip install -e .[lite]`) and the compiled mmcv
    # (`make install-full`) both provide the `mmcv` package, and pip must not install one over the other.
    install_requires=requirements('torch') + requirements('runtime'),
    extras_require={'lite': requirements('mmcv'), 'full': requirements('mmcv-full'),
                    'tests': requirements('tests'), 'bench': requirements('bench')},
    license='Apache-2.0',
)
