"""Data layer: layouts, the generic dataset file, readers/writers, preprocessing, synthetic data."""

from skeleton_anon.data.dataset import SkeletonDataset, load_npz, save_npz, validate
from skeleton_anon.data.layouts import LAYOUTS, Layout, get_layout
