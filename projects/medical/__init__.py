"""MMSegmentation extension for 2D medical image segmentation."""
from .version import __version__

__all__ = ['__version__']
