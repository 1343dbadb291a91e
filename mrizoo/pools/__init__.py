"""Training-data pools: declarative selections over a slice index, sampling, dataset similarity.

- :mod:`~mrizoo.pools.spec`: pool files (OR of AND-ed metadata conditions, weights, caps,
  named test sets); shipped pools of Lin & Heckel (ICML 2024) in ``shipped/``.
- :mod:`~mrizoo.pools.index`: the slice index of a data root (Arrow, memory-mapped, cached), built from
  :mod:`~mrizoo.pools.scan`, :mod:`~mrizoo.pools.metadata`, :mod:`~mrizoo.pools.splits` and
  :mod:`~mrizoo.pools.table`.
- :mod:`~mrizoo.pools.selection`: a pool applied to an index.
- :mod:`~mrizoo.pools.sampling` / :mod:`~mrizoo.pools.dataset`: batches of one volume,
  dataset weights, distributed sharding; a torch Dataset over index rows.
- :mod:`~mrizoo.pools.similarity`: nearest-neighbour feature similarity of test to training sets.
"""

from mrizoo.pools.columns import KNOWN_DATASETS, SELECTABLE_COLUMNS, dataset_defaults
from mrizoo.pools.dataset import PoolDataset
from mrizoo.pools.index import build_slice_index
from mrizoo.pools.sampling import PoolSampler
from mrizoo.pools.selection import PoolSelection, select_pool
from mrizoo.pools.similarity import (
    DefaultFeatures,
    FeatureExtractor,
    SetSimilarity,
    TimmFeatures,
    extract_features,
    image_similarity,
    nearest_neighbours,
    pool_similarity,
)
from mrizoo.pools.spec import PoolSpec, Range, Selection, list_pools, load_pool, pool_from_dict
from mrizoo.pools.splits import holdout_split, split_from_path
from mrizoo.pools.table import SliceIndex

__all__ = [
    "KNOWN_DATASETS", "SELECTABLE_COLUMNS", "dataset_defaults",
    "PoolSpec", "Range", "Selection", "list_pools", "load_pool", "pool_from_dict",
    "SliceIndex", "build_slice_index", "holdout_split", "split_from_path",
    "PoolSelection", "select_pool",
    "PoolSampler", "PoolDataset",
    "DefaultFeatures", "FeatureExtractor", "SetSimilarity", "TimmFeatures", "extract_features",
    "image_similarity", "nearest_neighbours", "pool_similarity",
]
