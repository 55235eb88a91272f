"""Image sizes that D3-Net takes: the one definition of the size multiple.

D3-Net halves its input five times, so heights and widths must be multiples
of :data:`SIZE_MULTIPLE`. This module imports nothing, so that every floor of
d3tf (models, data, inference, serving) can take the number from here.
"""

#: Input height and width must be multiples of this (5 halvings).
SIZE_MULTIPLE = 32


def round_up(size: int, multiple: int = SIZE_MULTIPLE) -> int:
  """The smallest multiple of ``multiple`` that is >= ``size``."""
  return -(-int(size) // multiple) * multiple
