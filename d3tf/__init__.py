"""d3tf: single-image depth from defocus blur, in TensorFlow / Keras 3.

The package is arranged in floors, each importing only the ones below it
(``tests/test_structure.py`` holds this; see ``shared/DESIGN.md`` section 6):

* the bottom, importing nothing else of d3tf but :mod:`d3tf.sizes`:
  :mod:`d3tf.optics` (camera, PSF registry, renderer; reference renderers in
  :mod:`d3tf.optics.reference`), :mod:`d3tf.models`, losses, metrics;
* :mod:`d3tf.data` (calls the renderer) and :mod:`d3tf.artifacts` (model
  metadata, model_dir and export layouts);
* :mod:`d3tf.inference` (every predictor, one loader) and :mod:`d3tf.serving`
  (serving graph, export writers, clients), which share the artifacts floor;
* the command-line programs (``python -m d3tf.<name>``), which nothing imports.

Importing :mod:`d3tf` itself is cheap: TensorFlow is only imported by the
sub-packages that need it.
"""

__version__ = "0.1.0"

__all__ = ["__version__"]
