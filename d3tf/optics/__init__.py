"""Optics: the thin-lens camera, its point-spread functions and the defocus renderer."""

from d3tf.optics.camera import Camera
from d3tf.optics.render import RenderOptions
from d3tf.optics.render import render_defocus

__all__ = ["Camera", "RenderOptions", "render_defocus"]
