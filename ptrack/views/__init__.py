"""Views of the store for a person choosing one: samples of crops, terminal previews, the
PNG/HTML selection sheet and the annotated video.

Nothing here imports torch or ultralytics; OpenCV, Pillow and rich are imported inside the
functions that draw, so listing commands start fast.
"""

from ptrack.views.samples import Sample, coverage_by_others, load_crops, sample_person

__all__ = ["Sample", "coverage_by_others", "load_crops", "sample_person"]
