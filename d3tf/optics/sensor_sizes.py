"""Sensor widths of common cameras, by EXIF Make and Model: the pixel pitch of their photos.

A photo ``W`` pixels wide (its long side) from a sensor ``S`` mm wide (its
long side) has a pixel pitch of ``S / W`` mm, whatever the photo was resized
to (but not if it was cropped). :func:`lookup` finds a camera from the EXIF
``Make`` and ``Model`` strings as cameras write them ("NIKON CORPORATION" /
"NIKON D200", "Canon" / "Canon EOS 5D Mark II", "SONY" / "ILCE-7M3").

Phones are not listed: one phone Model holds several cameras (wide, ultra-wide,
tele) with different sensors. Their photos carry a 35 mm equivalent focal
length instead, which :mod:`d3tf.optics.exif_camera` uses.

Widths are the manufacturers' published sensor sizes (their specification
pages and manuals), in mm; add a camera with one :class:`Sensor` line.
"""

from __future__ import annotations

import dataclasses


@dataclasses.dataclass(frozen=True)
class Sensor:
  """One camera body.

  Attributes:
    make: First word of the EXIF Make, upper case ("NIKON", "CANON").
    models: EXIF Model strings, upper case, without the make's first word.
    name: The camera as people name it (for logs).
    width_mm: Width of the sensor's image area (its long side), mm.
    source: Where ``width_mm`` comes from.
  """

  make: str
  models: tuple[str, ...]
  name: str
  width_mm: float
  source: str


SENSORS = (
    # The DFD dataset's camera (Carvalho et al. 2018): 3872 x 2592 px, 6.1 um; x6 downsampled
    # to 645 px wide: 36.6 um (the dataset's parameter file states 36 um).
    Sensor("NIKON", ("D200",), "Nikon D200", 23.6,
           "Nikon D200 specifications: DX CCD 23.6 x 15.8 mm"),
    Sensor("NIKON", ("D90",), "Nikon D90", 23.6, "Nikon D90 specifications: DX CMOS 23.6 x 15.8 mm"),
    Sensor("NIKON", ("D750",), "Nikon D750", 35.9,
           "Nikon D750 specifications: FX CMOS 35.9 x 24.0 mm"),
    Sensor("NIKON", ("D850",), "Nikon D850", 35.9,
           "Nikon D850 specifications: FX CMOS 35.9 x 23.9 mm"),
    Sensor("CANON", ("EOS 5D MARK II",), "Canon EOS 5D Mark II", 36.0,
           "Canon EOS 5D Mark II specifications: CMOS approx. 36 x 24 mm"),
    Sensor("CANON", ("EOS 5D MARK IV",), "Canon EOS 5D Mark IV", 36.0,
           "Canon EOS 5D Mark IV specifications: CMOS approx. 36.0 x 24.0 mm"),
    # Canon's APS-C widths differ by model (22.3, 22.4, 22.5 mm): each entry is its own spec.
    Sensor("CANON", ("EOS 80D",), "Canon EOS 80D", 22.5,
           "Canon EOS 80D specifications: CMOS approx. 22.5 x 15.0 mm"),
    Sensor("CANON", ("EOS 600D", "EOS REBEL T3I", "EOS KISS X5"), "Canon EOS 600D", 22.3,
           "Canon EOS 600D specifications: CMOS approx. 22.3 x 14.9 mm"),
    Sensor("SONY", ("ILCE-7M3",), "Sony Alpha 7 III", 35.6,
           "Sony ILCE-7M3 specifications: Exmor R CMOS 35.6 x 23.8 mm"),
    Sensor("SONY", ("ILCE-6000",), "Sony Alpha 6000", 23.5,
           "Sony ILCE-6000 specifications: Exmor APS HD CMOS 23.5 x 15.6 mm"),
    Sensor("FUJIFILM", ("X-T3",), "Fujifilm X-T3", 23.5,
           "Fujifilm X-T3 specifications: X-Trans CMOS 4, 23.5 x 15.6 mm"),
    Sensor("OLYMPUS", ("E-M10",), "Olympus OM-D E-M10", 17.3,
           "Olympus OM-D E-M10 specifications: Live MOS 17.3 x 13.0 mm (Four Thirds)"),
    Sensor("PANASONIC", ("DC-GH5",), "Panasonic Lumix GH5", 17.3,
           "Panasonic DC-GH5 specifications: Live MOS 17.3 x 13.0 mm (Four Thirds)"),
)


def _words(text: str | None) -> list[str]:
  return str(text or "").replace("\x00", " ").upper().split()


def lookup(make: str | None, model: str | None) -> Sensor | None:
  """The sensor of the camera with this EXIF Make and Model, or None if not listed."""
  make_words, model_words = _words(make), _words(model)
  if not make_words or not model_words:
    return None
  if model_words[0] == make_words[0]:  # "NIKON D200" -> "D200".
    model_words = model_words[1:]
  key = " ".join(model_words)
  for sensor in SENSORS:
    if sensor.make == make_words[0] and key in sensor.models:
      return sensor
  return None
