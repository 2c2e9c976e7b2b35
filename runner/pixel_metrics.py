"""Pixel-level metrics in bounded memory: pixel AUROC and AUPRO over every pixel of the test set.

10,000 maps of 256 x 256 are 655 million pixels: an exact ROC needs them all in memory, sorted
(~10 GB with the sort's index), which is what anomalib's own metrics do. Instead the maps stream
through a histogram: each value falls into one of `bins` equal bins between the smallest and the
largest value of all maps, and per bin we count normal pixels, defective pixels, and the defective
pixels' shares of their regions (for the per-region overlap). The metrics are then computed on the
binned values, with scikit-learn's `roc_auc_score` (bins as scores, counts as sample weights) and
`auc`. Memory: a few arrays of `bins` numbers, one chunk of pixels, one map and one mask, whatever
the number of images.

What binning changes: two different values in one bin tie. For the AUROC that only matters for a
normal and a defective pixel sharing such a bin, so the binned value is within `max_error` (half
the share of those pairs among all normal-defective pairs) of the exact one; it is exact when no bin
with a defective pixel holds two different values (equal values, e.g. maps clipped to [0, 1], tie
in the exact AUROC too). With 2^20 bins the bound is about 1e-7 for real maps; the job's run records
it. The AUPRO curve keeps its points at the bins' edges, each exact; only points inside a bin are lost.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
from numpy.typing import NDArray
from scipy import ndimage
from sklearn.metrics import auc, roc_auc_score

from .testset import BoolMap

BINS = 1 << 20
FPR_LIMIT = 0.3  # AUPRO integrates the PRO curve up to this false positive rate, as anomalib's AUPRO
CHUNK_PIXELS = 1 << 22  # pixels gathered before they are counted (np.bincount per map would be slow)
_EIGHT_NEIGHBOURS = np.ones((3, 3), dtype=bool)  # regions as anomalib finds them (OpenCV, 8-connected)


@dataclass(frozen=True)
class PixelAuroc:
    value: float
    max_error: float  # the binned value is within this of the exact pixel AUROC


@dataclass
class PixelHistogram:
    """Counts of map values per bin over [low, high]: normal pixels, defective pixels, and the sum of
    each defective pixel's 1 / (size of its region)."""

    low: float
    high: float
    bins: int = BINS
    regions: int = 0
    normal: NDArray[np.int64] = field(init=False)
    defective: NDArray[np.int64] = field(init=False)
    region_share: NDArray[np.float64] = field(init=False)
    mixed: NDArray[np.bool_] = field(init=False)  # bins where two different values may tie
    _pending: list[NDArray[np.int64]] = field(init=False, default_factory=list)
    _pending_regions: list[tuple[NDArray[np.int64], NDArray[np.float64]]] = field(init=False, default_factory=list)
    _pending_pixels: int = field(init=False, default=0)

    def __post_init__(self) -> None:
        self.normal = np.zeros(self.bins, dtype=np.int64)
        self.defective = np.zeros(self.bins, dtype=np.int64)
        self.region_share = np.zeros(self.bins, dtype=np.float64)
        self.mixed = np.zeros(self.bins, dtype=bool)
        self._value = np.full(self.bins, np.nan)  # maps are finite: NaN marks an empty bin
        self._defective_bins = np.zeros(self.bins, dtype=bool)
        self._skipped = False  # a normal image's value was not compared
        self._scale = self.bins / (self.high - self.low) if self.high > self.low else 0.0

    def add(self, values: NDArray[np.floating], mask: BoolMap | None) -> None:
        """One map; `mask` marks its defective pixels (None: a normal image). Adding the images with
        a mask first keeps the error bound tightest (any order gives a true bound)."""
        exact = values.astype(np.float64, copy=False)
        bins = self.bin_of(exact)
        self._note_values(bins.ravel(), exact.ravel(), mask)
        if mask is None or not mask.any():
            self._pending.append(bins.ravel())
        else:
            # Defective pixels count in the upper half of one bincount: bin + `bins`.
            self._pending.append((bins + self.bins * mask).ravel())
            regions, count = ndimage.label(mask, structure=_EIGHT_NEIGHBOURS)
            sizes = np.bincount(regions.ravel())
            inside = regions > 0
            self._pending_regions.append((bins[inside], 1.0 / sizes[regions[inside]]))
            self.regions += count
        self._pending_pixels += values.size
        if self._pending_pixels >= CHUNK_PIXELS:
            self.flush()

    def bin_of(self, values: NDArray[np.floating]) -> NDArray[np.int64]:
        scaled = np.subtract(values, self.low, dtype=np.float64)
        scaled *= self._scale
        bins: NDArray[np.int64] = scaled.astype(np.int64)
        np.clip(bins, 0, self.bins - 1, out=bins)
        return bins

    def _note_values(self, bins: NDArray[np.int64], values: NDArray[np.float64], mask: BoolMap | None) -> None:
        """Marks the bins that hold two different values where a defective pixel is: only there can
        the binned ranking differ from the exact one (equal values tie either way).

        Comparing every value costs more than the rest of the histogram, and a normal pixel matters
        only in a bin that holds a defective one. So every value of an image with a mask is compared,
        and of a normal image only those in bins that already hold a defective pixel. A mask that
        comes after a normal image cannot know what that image's skipped values were: its defective
        bins are marked, which keeps the bound true (if looser)."""
        if mask is not None:
            defective = bins[mask.ravel()]
            if self._skipped:
                self.mixed[defective] = True
            self._defective_bins[defective] = True
        else:
            compared = self._defective_bins[bins]
            self._skipped = self._skipped or not compared.all()
            bins, values = bins[compared], values[compared]
        # Each bin remembers one value it holds.
        before = self._value[bins]
        differs = (values != before) & ~np.isnan(before)  # NaN: the bin held nothing yet
        self._value[bins] = values  # one of them stays, whichever numpy writes last
        differs |= values != self._value[bins]
        self.mixed[bins[differs]] = True

    def flush(self) -> None:
        if self._pending:
            counts = np.bincount(np.concatenate(self._pending), minlength=2 * self.bins)
            self.normal += counts[:self.bins]
            self.defective += counts[self.bins:]
        if self._pending_regions:
            where = np.concatenate([bins for bins, _ in self._pending_regions])
            shares = np.concatenate([share for _, share in self._pending_regions])
            self.region_share += np.bincount(where, weights=shares, minlength=self.bins)
        self._pending, self._pending_regions, self._pending_pixels = [], [], 0


def pixel_auroc(histogram: PixelHistogram) -> PixelAuroc | None:
    """The AUROC of the binned pixel values; None without both normal and defective pixels."""
    histogram.flush()
    normal, defective = histogram.normal, histogram.defective
    total_normal, total_defective = int(normal.sum()), int(defective.sum())
    if not total_normal or not total_defective:
        return None
    used = np.flatnonzero((normal > 0) | (defective > 0))
    weights = np.concatenate((normal[used], defective[used])).astype(np.float64)
    truth = np.concatenate((np.zeros(used.size), np.ones(used.size)))
    keep = weights > 0
    value = roc_auc_score(truth[keep], np.concatenate((used, used))[keep], sample_weight=weights[keep])
    mixed = histogram.mixed
    shared = float(np.dot(normal[mixed].astype(np.float64), defective[mixed].astype(np.float64)))
    return PixelAuroc(float(value), 0.5 * shared / (float(total_normal) * float(total_defective)))


def aupro(histogram: PixelHistogram, fpr_limit: float = FPR_LIMIT) -> float | None:
    """The area under the per-region overlap curve up to `fpr_limit`, divided by that limit (as
    anomalib's AUPRO); None without normal pixels or without regions."""
    histogram.flush()
    total_normal = int(histogram.normal.sum())
    if not total_normal or not histogram.regions:
        return None
    # Thresholds from the highest bin down: a pixel is flagged when its bin is at or above it.
    used = np.flatnonzero((histogram.normal > 0) | (histogram.defective > 0))[::-1]
    fpr = np.concatenate(([0.0], np.cumsum(histogram.normal[used]) / total_normal))
    # The shares add up to the number of regions; dividing by their float sum instead keeps a curve
    # that reaches every region's every pixel at exactly 1.0, whatever the rounding of 1/size.
    shares = np.cumsum(histogram.region_share[used])
    pro = np.concatenate(([0.0], np.minimum(shares / shares[-1], 1.0)))
    # The curve up to the limit, with the point at the limit interpolated on its segment.
    last = int(np.flatnonzero(fpr <= fpr_limit)[-1])
    if fpr[last] < fpr_limit and last + 1 < fpr.size:
        step = (fpr_limit - fpr[last]) / (fpr[last + 1] - fpr[last])
        fpr = np.append(fpr[:last + 1], fpr_limit)
        pro = np.append(pro[:last + 1], pro[last] + step * (pro[last + 1] - pro[last]))
    else:
        fpr, pro = fpr[:last + 1], pro[:last + 1]
    return float(auc(fpr, pro) / fpr[-1])
