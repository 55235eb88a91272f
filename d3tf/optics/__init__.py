"""Optics: the thin-lens camera, its point-spread functions and the defocus renderer.

:class:`Camera` and the PSF registry (:mod:`d3tf.optics.psf`) import NumPy
only; the renderer (:class:`RenderOptions`, :func:`render_defocus`) imports
TensorFlow when first used.
"""

from d3tf.optics.camera import Camera

__all__ = ["Camera", "RenderOptions", "render_defocus"]


def __getattr__(name: str):
  if name in ("RenderOptions", "render_defocus"):
    from d3tf.optics import render  # pylint: disable=g-import-not-at-top
    return getattr(render, name)
  raise AttributeError(f"module 'd3tf.optics' has no attribute {name!r}")
