"""Batches: one run of a flow per item of a dataset, a bounded number at a time, within a per-item and a batch budget.

Every item is an ordinary run in the store, tagged with the batch (`attributes["batch"]`: id, key, index, total); an
item's key (plan hash and input hash) lets a re-run skip what is done. `Batch` runs them in this process, or over a Ray
cluster with a `RayItemRunner` (Ray is imported only then).
"""

from stratum_core.batch._expect import Expectation
from stratum_core.batch._items import BatchItem, batch_id_of, item_key, items_from_lines, read_items
from stratum_core.batch._output import ResultsFile
from stratum_core.batch._ray import LOOPBACK_ENV, RayItemRunner, start_local_ray
from stratum_core.batch._results import BatchSummary, ItemResult, ItemStatus, summarize
from stratum_core.batch._runner import Batch, BatchProgress, ItemRunner, LocalItemRunner, batch_tag
from stratum_core.batch._stored import StoredBatch, read_batch

__all__ = [
    "LOOPBACK_ENV",
    "Batch",
    "BatchItem",
    "BatchProgress",
    "BatchSummary",
    "Expectation",
    "ItemResult",
    "ItemRunner",
    "ItemStatus",
    "LocalItemRunner",
    "RayItemRunner",
    "ResultsFile",
    "StoredBatch",
    "batch_id_of",
    "batch_tag",
    "item_key",
    "items_from_lines",
    "read_batch",
    "read_items",
    "start_local_ray",
    "summarize",
]
