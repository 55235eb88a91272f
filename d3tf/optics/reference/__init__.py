"""Reference renderers that the production renderer (:mod:`d3tf.optics.render`) is measured against.

* :mod:`d3tf.optics.reference.raytrace`: a thin-lens ray tracer of scenes of
  textured opaque cards (the ground truth, also at occlusion edges);
* :mod:`d3tf.optics.reference.scipy_render`: the layered algorithm in NumPy /
  SciPy (the same method, computed independently).

Neither is used in training or inference; tests and benchmarks import them.
"""
