"""Published results the fold tables are compared with: the COVID-19-CT-Seg benchmark README's 2D and 3D U-Net rows
and the CT-ICH dataset paper's U-Net Dice."""
from __future__ import annotations

import math
from typing import Dict, Tuple


#: Test sets of the fold presets: the preset's COVID-19-CT-Seg test lists, and MosMed (``--mosmed``).
TEST_SETS = {'covid19': 'COVID-19-CT-Seg', 'mosmed': 'MosMed', 'cranium': 'CT-ICH'}


#: (mean, std) in % per (test set, class) and metric.
Values = Dict[Tuple[str, str], Dict[str, Tuple[float, float]]]


def published(left_lung=None, right_lung=None, infection=None, mosmed=None) -> Values:
    """A published row from its cells as printed (DSC mean, DSC std, NSD mean, NSD std), in %."""
    out: Values = {}
    for key, cell in ((('covid19', 'left_lung'), left_lung), (('covid19', 'right_lung'), right_lung),
                      (('covid19', 'infection'), infection), (('mosmed', 'infection'), mosmed)):
        if cell is not None:
            out[key] = {'dice': (cell[0], cell[1]), 'nsd': (cell[2], cell[3])}
    return out


#: The benchmark README's result table (github.com/JunMa11/COVID-19-CT-Seg-Benchmark, README.md at b87e054:
#: nnU-Net 2D and 3D U-Net baselines; left / right lung and infection on COVID-19-CT-Seg, infection on MosMed;
#: mean ± std over all test cases of all folds, in %).
PUBLISHED: Dict[str, Values] = {
    '2D U-Net Task1-Separate': published((95.1, 7.9, 84.6, 12.7), (95.6, 7.4, 85.5, 12.8), (60.9, 24.5, 61.5, 27.0),
                                         (53.7, 21.4, 61.5, 21.2)),
    '2D U-Net Task1-Union': published((87.3, 15.8, 70.5, 18.7), (89.4, 12.8, 71.0, 17.8), (57.7, 26.3, 57.2, 29.0),
                                      (52.2, 21.6, 46.2, 18.3)),
    '2D U-Net Task2-MSD': published(None, None, (7.9, 11.5, 12.9, 15.3), (7.6, 15.8, 9.9, 17.1)),
    '2D U-Net Task2-StructSeg': published((46.3, 47.6, 28.4, 31.7), (45.3, 46.7, 28.0, 31.3), (0.2, 0.8, 0.6, 1.6),
                                          (1.9, 10.1, 2.2, 10.0)),
    '2D U-Net Task2-NSCLC': published((47.3, 48.6, 37.9, 40.1), (47.6, 48.9, 38.0, 40.2), (1.2, 2.9, 7.3, 9.7),
                                      (0.0, 0.0, 1.0, 1.9)),
    '2D U-Net Task3-MSD': published((96.9, 4.9, 89.8, 9.1), (97.1, 4.9, 89.8, 9.1), (51.2, 26.8, 52.7, 27.4),
                                    (24.1, 23.5, 29.0, 24.5)),
    '2D U-Net Task3-StructSeg': published((96.3, 7.6, 88.7, 10.8), (96.7, 7.0, 89.0, 11.6), (57.4, 26.6, 57.3, 28.4),
                                          (48.2, 23.1, 55.0, 23.6)),
    '2D U-Net Task3-NSCLC': published((92.5, 17.3, 82.5, 18.6), (93.3, 15.9, 82.9, 18.6), (52.5, 29.6, 52.6, 30.3),
                                      (31.7, 24.6, 38.9, 25.9)),
    '3D U-Net Task1-Separate': published((85.8, 10.5, 71.2, 13.8), (87.9, 9.3, 74.8, 11.9), (67.3, 22.3, 70.0, 24.4),
                                         (58.8, 20.6, 66.4, 20.3)),
    '3D U-Net Task1-Union': published((64.6, 26.4, 51.1, 23.4), (75.0, 16.8, 57.7, 17.4), (61.0, 26.2, 61.8, 27.4),
                                      (48.2, 22.1, 41.4, 19.1)),
    '3D U-Net Task2-MSD': published(None, None, (25.2, 27.4, 26.0, 28.5), (16.2, 23.2, 17.5, 23.4)),
    '3D U-Net Task2-StructSeg': published((92.2, 19.7, 82.0, 15.7), (95.5, 7.2, 84.2, 11.6), (6.0, 12.7, 5.5, 10.7),
                                          (2.6, 9.5, 3.3, 9.9)),
    '3D U-Net Task2-NSCLC': published((57.5, 21.5, 46.9, 17.0), (72.2, 15.3, 51.7, 16.8), (0.4, 0.9, 3.7, 4.8),
                                      (0.0, 0.0, 0.5, 1.4)),
    '3D U-Net Task3-MSD': published((96.5, 2.8, 87.9, 7.9), (96.9, 2.2, 88.5, 7.1), (62.3, 25.7, 61.3, 27.6),
                                    (39.2, 30.6, 41.3, 30.5)),
    '3D U-Net Task3-StructSeg': published((97.3, 2.1, 90.6, 6.2), (97.7, 2.1, 91.4, 6.1), (64.2, 24.5, 63.3, 25.7),
                                          (44.3, 25.3, 49.1, 25.8)),
    '3D U-Net Task3-NSCLC': published((93.5, 5.4, 76.9, 13.3), (94.0, 5.3, 77.2, 14.1), (60.2, 25.4, 58.5, 26.7),
                                      (30.1, 26.7, 33.4, 27.1)),
    # Hssayeni et al., Data 2020, 5(1):14 (the CT-ICH dataset paper), abstract: U-Net, ICH Dice 0.31 under 5-fold
    # cross-validation; no std and no NSD published.
    'U-Net (Hssayeni et al. 2020)': {('cranium', 'hemorrhage'): {'dice': (31.0, math.nan)}},
}
