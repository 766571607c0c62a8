"""Volume readers: NIfTI, DICOM series, folders of JPG/PNG slices. All return a slice-major Volume."""
from .dicom import read_dicom_folder, read_dicom_series
from .nifti import nifti_stem, read_nifti
from .slices import natural_key, read_image_2d, read_slice_files, read_slice_folder

__all__ = ['read_dicom_folder', 'read_dicom_series', 'nifti_stem', 'read_nifti', 'natural_key', 'read_image_2d',
           'read_slice_files', 'read_slice_folder']
