"""d3tf: single-image depth from defocus blur, in TensorFlow / Keras 3.

The package is arranged in three floors (see ``shared/DESIGN.md`` section 6):

* leaves that import nothing else of d3tf: :mod:`d3tf.optics` (camera model and
  the defocus renderer), models, losses, metrics;
* the data layer (:mod:`d3tf.data`), which calls the renderer;
* the command-line programs (``python -m d3tf.<name>``), which nothing imports.

Importing :mod:`d3tf` itself is cheap: TensorFlow is only imported by the
sub-packages that need it.
"""

__version__ = "0.1.0"

__all__ = ["__version__"]
