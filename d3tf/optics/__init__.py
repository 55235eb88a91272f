"""Optics: the thin-lens camera, its point-spread functions and the defocus renderer."""

from d3tf.optics.camera import Camera

__all__ = ["Camera"]
