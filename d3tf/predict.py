r"""Predicts depth for your own photos with a trained model: ``python -m d3tf.predict``.

Each photo argument (and ``--images``, old name ``--input``) is an image file, a folder (its
.png/.jpg/.jpeg/.bmp/.tif files) or a glob pattern. For each photo
``NAME`` it writes, into ``--output_dir``, at the photo's own resolution:

* ``NAME_depth_mm.png``: depth as a 16-bit grey PNG in millimetres
  (``round(depth_m * 1000)``, clipped to 0-65535);
* ``NAME_depth.npy``: depth as float32 metres, ``[H, W]``;
* ``NAME_depth_color.png``: colour-mapped depth with a colour bar in metres;
* uncertainty, when the model gives one (``--samples`` T > 1 with MC dropout
  or variational layers, or a model with an aleatoric head): the depth above
  is then the mean of the samples, and the standard deviations go to
  ``NAME_depth_std.npy`` (the total, float32 metres) and
  ``NAME_depth_std_color.png``, plus where present its parts
  ``NAME_epistemic_std.npy`` / ``_color.png`` and ``NAME_aleatoric_std.npy``
  / ``_color.png``, on one colour scale per photo.

``--model`` may also be an export of ``python -m d3tf.export``: a SavedModel
(version folder, or the model's export folder for its latest version) or a
``.tflite`` file (a fixed-size TFLite model needs photos of its input size).

Images of any size work: they are padded (reflect) to a multiple of 32 and
the prediction is cropped back.

A depth-from-defocus model only works on photos taken with the camera it was
trained with (same focal length, f-number, pixel pitch after any resizing,
and focus distance). Each photo's camera is resolved value by value: a camera
flag (``--focal_length_mm``, ``--f_number``, ``--pixel_pitch_um``,
``--focus_distance_m``, or a ``--camera`` preset's values), else the photo's
EXIF (the pixel pitch from FocalPlaneXResolution, else the sensor table by
Make/Model, else the 35 mm equivalent focal length), else the model's camera
("model metadata"). One line per photo logs each value and its source, and a
warning says where a photo's camera differs from the model's.
``--camera_from_exif=require`` refuses a photo whose value comes from neither
a flag nor the photo; ``--camera_from_exif=off`` does not read the EXIF.

A camera-aware model (or its export) takes each photo's camera as an input
instead (docs/any_camera.md): no fallback to the model's camera there, a photo
whose camera is incomplete is refused naming the missing value's flag.

Without ``--model``, predict uses the shipped camera-aware model,
``savedmodels/d3tf_anycamera/<latest version>`` of the repository (logged;
``$D3TF_SAVEDMODELS`` names another folder holding ``d3tf_anycamera/``), and
refuses, naming the path, where it is absent.

Examples::

  python -m d3tf.predict photo.jpg --focus_distance_m=1.5   # the shipped camera-aware model
  python -m d3tf.predict IMG_*.JPG --model=runs/dfd_finetune --output_dir=depth
  python -m d3tf.predict --model=runs/nyu_focus2m --images=photos/ --output_dir=depth
  python -m d3tf.predict --model=runs/dfd_finetune/best.keras 'shots/*.JPG' \
      --camera=dslr --samples=20
"""

from __future__ import annotations

from absl import flags
from absl import logging

from d3tf import flags as flags_lib

flags_lib.define_predict_flags()
FLAGS = flags.FLAGS


def main(argv):
  from d3tf import artifacts  # pylint: disable=g-import-not-at-top
  from d3tf import inference  # pylint: disable=g-import-not-at-top
  from d3tf.experiment import predict_lib  # pylint: disable=g-import-not-at-top
  try:
    model = FLAGS.model or predict_lib.default_model_path()  # Logs the default it takes.
    paths = predict_lib.list_photos(flags_lib.photo_arguments_from_flags(argv[1:]))
    camera = flags_lib.camera_config_from_flags("model")
    from d3tf.optics import Camera  # pylint: disable=g-import-not-at-top
    camera.build(Camera.nyu())  # Checks the camera flags before the slow model load.
    if FLAGS.max_tile_pixels:
      from d3tf import tiling  # pylint: disable=g-import-not-at-top
      tiling.tile_side(FLAGS.max_tile_pixels)  # A budget below 32x32 is refused now.
    photo_cameras = predict_lib.read_photo_cameras(
        paths, camera, flags_lib.camera_from_exif_from_flags())
    predictor = inference.load_predictor(model, checkpoint=FLAGS.checkpoint,
                                         flip_average=FLAGS.flip_average)
    logging.info("Model %s: %s", predictor.path, artifacts.describe(predictor.metadata))
    if photo_cameras is None:  # --camera=none: all-in-focus photos.
      if getattr(predictor, "camera_aware", False):
        raise ValueError("--camera=none: a camera-aware model needs the photos' camera")
      predict_lib.check_camera(predictor.camera, camera)
    else:
      photo_cameras = predict_lib.check_photo_cameras(
          photo_cameras, predictor.camera,
          needs_camera=predict_lib.needs_photo_camera(predictor))
    predict_lib.predict_files(predictor, paths, FLAGS.output_dir or "predictions",
                              samples=FLAGS.samples or 1,
                              color_max_depth_m=FLAGS.color_max_depth_m,
                              max_tile_pixels=FLAGS.max_tile_pixels, cameras=photo_cameras)
  except (FileNotFoundError, ValueError) as e:
    raise flags_lib.usage_error(e) from None


if __name__ == "__main__":
  from d3tf import cli_errors  # pylint: disable=g-import-not-at-top
  cli_errors.run(main)
