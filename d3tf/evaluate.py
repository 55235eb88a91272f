r"""Evaluates a trained model on a dataset: ``python -m d3tf.evaluate``.

Prints the standard metrics (rel, sq_rel, rms, rmslog, log10, delta < 1.25,
1.25^2, 1.25^3) on valid pixels (0 < gt <= ``--max_depth_m``), the RMS per
1 m depth bin (as the paper plots it), and writes everything to a JSON file.

**Averaging.** The headline numbers (``"metrics"`` in the JSON, the first row
of the table) are the **per-image mean**: metrics computed on each image, then
averaged over images, as Eigen et al.'s evaluation and the NYU literature
(including the D3-Net paper) do. The **pixel-weighted** metrics (all valid
pixels of the dataset pooled) are reported too. The RMS per depth bin is
pixel-weighted.

**Input.** The model's metadata (``d3tf_metadata.json``, see
:mod:`d3tf.artifacts.metadata`) says whether it was trained on defocused images, and
with which camera. For datasets of all-in-focus images (procedural, NYU,
Middlebury, folder) the blur of that camera is rendered before predicting,
with the training PSF and renderer options; ``--camera`` overrides (``none``:
feed the sharp images). The real DFD photos are used as they are: ``N2_8``
(f/2.8, real defocus) for a defocus model, ``N8`` (nearly all-in-focus) for
a sharp one (``--dfd_aperture`` overrides).

**NYU** is scored inside the Eigen crop by default (``--noeigen_crop`` to
turn it off); the model still sees the whole frame.

**Uncertainty.** With ``--samples`` T > 1 (Monte-Carlo dropout and/or
variational layers) or a model with an aleatoric head, the predicted total
standard deviation (:meth:`d3tf.inference.Predictor.predict`'s
``depth_std``) is scored too (:mod:`d3tf.uncertainty_metrics`): Gaussian
NLL, AUSE (sparsification by predicted std against the oracle by true error,
error metric ``--ause_metric``, per image then averaged), Spearman
correlation of std and absolute error (per image, averaged), and the
fractions of pixels within 1 and 2 standard deviations; a second table in
the log and ``"uncertainty"`` in the JSON (per-image mean and pixel-weighted;
the mean sparsification curves, also drawn as a PNG beside the JSON,
``--sparsification_plot``; the mean total / epistemic / aleatoric std).
About 20 samples give stable numbers; each costs a forward pass.

**DIW** (``--dataset=diw --data_path=DIW_test.csv``) has only one ordinal
point pair per image: the metric is WKDR (the fraction of pairs ordered
wrongly; DIW's WHDR).

Examples::

  python -m d3tf.evaluate --model=runs/quickstart
  python -m d3tf.evaluate --model=runs/nyu_focus2m --dataset=nyu_mat \
      --data_path=nyu_depth_v2_labeled.mat --output_json=nyu_focus2m.json
  python -m d3tf.evaluate --model=runs/nyu_focus2m --dataset=nyu_png \
      --data_path=../shared/data/nyuv2_samples --split=all --samples=20
  python -m d3tf.evaluate --model=runs/nyu_real_focus2m --dataset=nyu_densedepth \
      --data_path=../shared/data/nyuv2_train --split=validation --frame_stride=8
  python -m d3tf.evaluate --model=runs/dfd --dataset=dfd \
      --data_path=../shared/data/dfd_indoor --split=train
  python -m d3tf.evaluate --model=runs/bayesian --samples=20 --ause_metric=rmse
"""

from __future__ import annotations

import json
import math
import os
import sys
import time
from typing import Any, Iterator

from absl import app
from absl import flags
from absl import logging
import numpy as np

from d3tf import artifacts
from d3tf import inference

DATASETS = ("procedural", "nyu_png", "nyu_mat", "nyu_densedepth", "dfd", "middlebury", "folder",
            "diw")
_NYU = ("nyu_png", "nyu_mat")
_SHARP_DATASETS = ("procedural", "nyu_png", "nyu_mat", "nyu_densedepth", "middlebury", "folder")
_DEFAULT_PROCEDURAL_EXAMPLES = 32
# Standard deviations of Predictor.predict whose mean is reported.
_STD_KEYS = ("depth_std", "epistemic_std", "aleatoric_std")

_MODEL = flags.DEFINE_string("model", None, "A model_dir written by d3tf.train (model.keras or "
                             "best.keras + d3tf_metadata.json) or a .keras file.")
_CHECKPOINT = flags.DEFINE_enum("checkpoint", "auto", list(artifacts.CHECKPOINTS),
                                artifacts.model_dir.CHECKPOINT_HELP)
_DATASET = flags.DEFINE_enum("dataset", "procedural", list(DATASETS), "Evaluation data.")
_DATA_PATH = flags.DEFINE_string(
    "data_path", None, "The dataset: nyu_png: folder of NNNNN_colors.png/_depth.png; "
    "nyu_densedepth: the folder of <scene>_out/ folders (DenseDepth's layout); nyu_mat: "
    "nyu_depth_v2_labeled.mat; dfd: the dfd_indoor folder; middlebury: the folder of scenes; "
    "folder: a folder of RGB + depth files; diw: DIW_test.csv. Unused for procedural.")
_SPLIT = flags.DEFINE_string(
    "split", "test", "procedural: train|validation|test; nyu_*: train|test|all (train/test "
    "need splits.mat, see --splits_path; for nyu_png without one every image is used); dfd: "
    "the sub-folder (train|test); nyu_densedepth: validation|train|all (by scene, see "
    "--val_scenes) or a comma-separated list of scenes. Ignored by middlebury, folder and diw.")
_VAL_SCENES = flags.DEFINE_list("val_scenes", ["office_0011"], "nyu_densedepth: the "
                                "validation scene(s) of --split=validation|train.")
_FRAME_STRIDE = flags.DEFINE_integer(
    "frame_stride", 1, "nyu_densedepth: score every N-th frame of each scene (neighbouring "
    "video frames are near-duplicates).", lower_bound=1)
_SPLITS_PATH = flags.DEFINE_string("splits_path", None, "NYU splits.mat (default: splits.mat "
                                   "beside --data_path).")
_DEPTH_DIR = flags.DEFINE_string("depth_dir", None, "folder: depth files in another folder.")
_DEPTH_SCALE = flags.DEFINE_float("depth_scale", 0.001, "folder: metres per depth PNG unit "
                                  "(0.001: millimetres; 1: metres).")
_ON_ERROR = flags.DEFINE_enum(
    "on_error", "raise", ["raise", "skip"],
    "A bad example: 'raise' stops with one line naming the file; 'skip' leaves it out and "
    "reports the count and the files in the log and in the JSON ('skipped_examples').")
_NUM_EXAMPLES = flags.DEFINE_integer(
    "num_examples", None, "Evaluate the first N images (default: all; procedural: "
    f"{_DEFAULT_PROCEDURAL_EXAMPLES}).", lower_bound=1)
_HEIGHT = flags.DEFINE_integer("height", 256, "Height of procedural scenes, pixels.")
_WIDTH = flags.DEFINE_integer("width", 256, "Width of procedural scenes, pixels.")
_DFD_APERTURE = flags.DEFINE_enum(
    "dfd_aperture", "auto", ["auto", "N2_8", "N8"], "dfd: which photos. 'auto': N2_8 (real "
    "defocus) for a model trained on defocused input, N8 (all-in-focus) for a sharp one.")
_MAX_DEPTH = flags.DEFINE_float("max_depth_m", 10.0, "Ground truth above this is not scored; "
                                "predictions are clipped to it.")
_MIN_DEPTH = flags.DEFINE_float("min_depth_m", 1e-3, "Predictions are clipped up to this.")
_EIGEN_CROP = flags.DEFINE_boolean("eigen_crop", None, "Score only inside the Eigen crop "
                                   "(default: on for NYU, off otherwise).")
_MEDIAN_SCALING = flags.DEFINE_boolean("median_scaling", False, "Scale each prediction by "
                                       "median(gt) / median(pred) (for models without scale).")
_CAMERA = flags.DEFINE_enum(
    "camera", "model", ["model", "none", "nyu", "dslr"], "Defocus to render on sharp "
    "datasets: 'model' (the camera in the model's metadata, none for an all-in-focus model), "
    "'none' (feed the images as they are, e.g. a folder of real defocused photos), or a preset "
    "('nyu': 15 mm f/2.8 5.6 um focused at 2 m; 'dslr': 35 mm f/2.8 36 um at 1.7 m). Never "
    "applied to dfd and diw, whose photos are real.")
_FOCUS = flags.DEFINE_float("focus_distance_m", None, "Overrides the camera's focus distance.")
_F_NUMBER = flags.DEFINE_float("f_number", None, "Overrides the camera's f-number.")
_RENDER_BITS = flags.DEFINE_integer(
    "render_bits", None, "Overrides the model's rounding of the rendered images: 8 rounds them "
    "to 256 levels as a camera's file (and the exports' uint8 input) holds them, 0 keeps them "
    "float. Default: as the model was trained.", lower_bound=0, upper_bound=16)
_SAMPLES = flags.DEFINE_integer(
    "samples", 1, "Monte-Carlo samples per image (MC dropout and variational layers). 1: one "
    "deterministic pass (a model with an aleatoric head still reports its uncertainty "
    "metrics); T > 1 (e.g. 20): also the epistemic uncertainty, scored by NLL, AUSE, "
    "Spearman and 1/2-sigma coverage.", lower_bound=1)
_AUSE_METRIC = flags.DEFINE_enum(
    "ause_metric", "abs", ["abs", "rmse"], "Error of the sparsification curves behind AUSE: "
    "mean absolute error or RMSE (metres).")
_BATCH_SIZE = flags.DEFINE_integer("batch_size", 4, "Images rendered and predicted together.",
                                   lower_bound=1)
_BIN_WIDTH = flags.DEFINE_float("bin_width_m", 1.0, "Width of the depth bins of the per-bin "
                                "RMS, metres (bins from 0 to --max_depth_m).")
_SEED = flags.DEFINE_integer("seed", 0, "Seed of the sensor noise of the rendered defocus "
                             "(if the model's render options have noise).")
_OUTPUT_JSON = flags.DEFINE_string(
    "output_json", None, "Where to write the results (default: eval_<dataset>_<split>.json "
    "beside the model file).")
_PER_IMAGE = flags.DEFINE_boolean("per_image", True, "Include each image's metrics in the JSON.")
_SPARSIFICATION_PLOT = flags.DEFINE_string(
    "sparsification_plot", None, "With uncertainty metrics: also draw the mean sparsification "
    "curve, its oracle and the random ranking as a PNG here (default: <output_json>_"
    "sparsification.png; '' for none).")


# --------------------------------------------------------------- the camera
def _preset(name: str):
  from d3tf.optics import Camera  # pylint: disable=g-import-not-at-top
  return Camera.nyu() if name == "nyu" else Camera.dslr_d200_35mm()


def choose_camera(predictor) -> tuple[Any, str]:
  """The camera whose blur to render on sharp images, and where it came from."""
  from d3tf.optics import Camera  # pylint: disable=g-import-not-at-top
  if _CAMERA.value == "model":
    camera, source = predictor.camera, "model metadata"
  elif _CAMERA.value == "none":
    camera, source = None, "--camera=none"
  else:
    camera, source = _preset(_CAMERA.value), f"--camera={_CAMERA.value}"
  overrides = {key: flag.value for key, flag in (("focus_distance_m", _FOCUS),
                                                 ("f_number", _F_NUMBER))
               if flag.value is not None}
  if overrides:
    if camera is None:
      raise app.UsageError(f"{sorted(overrides)} given but no camera: the model was trained on "
                           "all-in-focus input; name one with --camera=nyu|dslr")
    camera = Camera(**{**camera.to_dict(), **overrides})
    source += " with " + ", ".join(f"{k}={v:g}" for k, v in overrides.items())
  if camera != predictor.camera:
    logging.warning("Rendering input with camera %s, but the model was trained on %s",
                    camera.to_dict() if camera else "sharp images",
                    predictor.camera.to_dict() if predictor.camera else "sharp images")
  return camera, source


# ------------------------------------------------------------------- data
def _require_data_path() -> str:
  if not _DATA_PATH.value:
    raise app.UsageError(f"--dataset={_DATASET.value} needs --data_path")
  if not os.path.exists(_DATA_PATH.value):
    raise app.UsageError(f"--data_path={_DATA_PATH.value}: no such file or folder")
  return _DATA_PATH.value


def _nyu_split(data_dir: str) -> tuple[str, str | None]:
  split = _SPLIT.value
  if split not in ("train", "test", "all"):
    raise app.UsageError(f"--split for NYU must be train, test or all, got {split!r}")
  splits_path = _SPLITS_PATH.value
  if splits_path is None and split != "all":
    beside = os.path.join(data_dir, "splits.mat")
    if os.path.isfile(beside):
      splits_path = beside
  return split, splits_path


def make_reader(dataset: str, dfd_aperture: str):
  """The dataset reader named by the flags (all but procedural and diw).

  The reader's ``split`` attribute (where it has one) is the split actually
  read: nyu_png without splits.mat reads every image.
  """
  reader = _make_reader(dataset, dfd_aperture)
  _READERS.append(reader)  # For the report of skipped examples.
  return reader


_READERS = []


def _make_reader(dataset: str, dfd_aperture: str):
  from d3tf.data import readers  # pylint: disable=g-import-not-at-top
  from d3tf.data.readers import folder  # pylint: disable=g-import-not-at-top
  path = _require_data_path()
  on_error = _ON_ERROR.value
  if dataset == "nyu_png":
    split, splits_path = _nyu_split(path)
    if split != "all" and splits_path is None:
      logging.warning("nyu_png: no splits.mat in %s and no --splits_path: evaluating every image "
                      "in the folder (as --split=all)", path)
      split = "all"
    return readers.NyuPngReader(path, split=split, splits_path=splits_path, on_error=on_error)
  if dataset == "nyu_mat":
    split, splits_path = _nyu_split(os.path.dirname(os.path.abspath(path)))
    return readers.NyuMatReader(path, split=split, splits_path=splits_path, on_error=on_error)
  if dataset == "nyu_densedepth":
    split = _SPLIT.value
    by_split = split in ("train", "validation", "all")
    try:
      return readers.NyuDenseDepthReader(
          path, split=split if by_split else "all", scenes=None if by_split else split.split(","),
          val_scenes=_VAL_SCENES.value, frame_stride=_FRAME_STRIDE.value,
          on_error=on_error)
    except ValueError as e:
      raise app.UsageError(f"--dataset=nyu_densedepth --split={split}: {e}") from None
  if dataset == "dfd":
    return readers.DfdReader(path, aperture=dfd_aperture, split=_SPLIT.value, on_error=on_error)
  if dataset == "middlebury":
    return readers.MiddleburyReader(path, on_error=on_error)
  if dataset == "folder":
    # One layout for train and evaluate: rgb/ + depth/, one folder with suffixes, --depth_dir.
    return folder.folder_reader_for(path, _DEPTH_SCALE.value, depth_dir=_DEPTH_DIR.value,
                                    on_error=on_error)
  raise ValueError(f"no reader for dataset {dataset!r}")


def iterate_samples(dataset: str, dfd_aperture: str, limit: int | None,
                    info: dict[str, Any]) -> Iterator[tuple[str, np.ndarray, np.ndarray]]:
  """Yields ``(name, image uint8 [H, W, 3], depth float32 [H, W] metres)``.

  Fills ``info["split"]`` with the split read (None where there are none) and
  ``info["num_available"]`` with the dataset's size (None: unbounded).
  """
  info["split"] = None if dataset in ("middlebury", "folder") else _SPLIT.value
  info["num_available"] = None
  if dataset == "procedural":
    from d3tf.data.procedural import procedural_dataset  # pylint: disable=g-import-not-at-top
    if _SPLIT.value not in ("train", "validation", "test"):
      raise app.UsageError(f"--split for procedural must be train, validation or test, got "
                           f"{_SPLIT.value!r}")
    count = limit or _DEFAULT_PROCEDURAL_EXAMPLES
    ds = procedural_dataset(_SPLIT.value, count, height=_HEIGHT.value, width=_WIDTH.value)
    for i, element in enumerate(ds.as_numpy_iterator()):
      yield f"{_SPLIT.value}_{i:04d}", element["image"], element["depth"]
    return
  reader = make_reader(dataset, dfd_aperture)
  info["split"] = getattr(reader, "split", None) or info["split"]
  info["num_available"] = len(reader)
  if len(reader) == 0:
    raise app.UsageError(f"--data_path={_DATA_PATH.value}: no {dataset} samples found")
  for n, (sample, image, depth) in enumerate(reader.iter_samples()):
    if limit is not None and n >= limit:
      break
    yield sample.name, image, depth


def _batches(samples: Iterator, batch_size: int) -> Iterator[list]:
  """Groups consecutive samples of one size into lists of at most ``batch_size``."""
  batch = []
  for sample in samples:
    if batch and (len(batch) == batch_size or batch[0][1].shape != sample[1].shape):
      yield batch
      batch = []
    batch.append(sample)
  if batch:
    yield batch


# ------------------------------------------------------------------ output
def _json_ready(value):
  """NaN / inf -> None, NumPy scalars -> Python, recursively."""
  if isinstance(value, dict):
    return {k: _json_ready(v) for k, v in value.items()}
  if isinstance(value, (list, tuple)):
    return [_json_ready(v) for v in value]
  if isinstance(value, np.generic):
    value = value.item()
  if isinstance(value, float) and not math.isfinite(value):
    return None
  return value


def _default_json_path(model_path: str, dataset: str) -> str:
  split = "" if dataset in ("middlebury", "folder", "diw") else f"_{_SPLIT.value}"
  return os.path.join(os.path.dirname(os.path.abspath(model_path)), f"eval_{dataset}{split}.json")


# -------------------------------------------------------------- evaluation
def evaluate_dense(predictor, dataset: str, camera, render_kwargs: dict[str, Any],
                   dfd_aperture: str) -> dict[str, Any]:
  """Predicts every image and scores it; returns the JSON-ready results."""
  from d3tf import metrics  # pylint: disable=g-import-not-at-top
  from d3tf import uncertainty_metrics  # pylint: disable=g-import-not-at-top

  eigen = _EIGEN_CROP.value if _EIGEN_CROP.value is not None else dataset in _NYU
  if eigen and dataset not in _NYU:
    logging.warning("--eigen_crop on %s: the crop is defined for NYU frames (scaled to this "
                    "size)", dataset)
  render = camera is not None and dataset in _SHARP_DATASETS
  edges = np.arange(0.0, _MAX_DEPTH.value + 0.5 * _BIN_WIDTH.value, _BIN_WIDTH.value)
  if edges[-1] < _MAX_DEPTH.value:
    edges = np.append(edges, _MAX_DEPTH.value)
  acc = metrics.MetricsAccumulator(max_depth_m=_MAX_DEPTH.value, min_depth_m=_MIN_DEPTH.value,
                                   median_scaling=_MEDIAN_SCALING.value, bin_edges_m=edges)
  unc = uncertainty_metrics.UncertaintyAccumulator(metric=_AUSE_METRIC.value,
                                                   max_depth_m=_MAX_DEPTH.value)
  std_sums = {key: [0.0, 0] for key in _STD_KEYS}
  names, stds, info = [], [], {}
  samples = iterate_samples(dataset, dfd_aperture, _NUM_EXAMPLES.value, info)
  for k, batch in enumerate(_batches(samples, _BATCH_SIZE.value)):
    images = np.stack([b[1] for b in batch])
    depths = np.stack([b[2] for b in batch])
    if render:
      import tensorflow as tf  # pylint: disable=g-import-not-at-top
      from d3tf.optics import render_defocus  # pylint: disable=g-import-not-at-top
      inputs = render_defocus(tf.constant(images, tf.float32) / 255.0, depths, camera,
                              seed=_SEED.value + k, **render_kwargs).numpy()
    else:
      inputs = images
    out = predictor.predict(inputs, samples=_SAMPLES.value)
    mask = None
    if eigen:
      from d3tf.data.readers import eigen_crop_mask  # pylint: disable=g-import-not-at-top
      mask = eigen_crop_mask(*depths.shape[1:])
    scored = acc.update(depths, out["depth"], mask)
    if "depth_std" in out:
      valid = metrics.valid_mask(depths, mask, _MAX_DEPTH.value)
      stds.extend(float(s[v].mean()) if v.any() else float("nan")
                  for s, v in zip(out["depth_std"], valid))
      for key in _STD_KEYS:
        if key in out:
          std_sums[key][0] += float(np.sum(out[key][valid]))
          std_sums[key][1] += int(np.count_nonzero(valid))
      # Median scaling scales each image's std with its prediction.
      scale = np.array([m.get("median_scale", 1.0) for m in scored])[:, None, None]
      scale = np.where(np.isfinite(scale), scale, 1.0)
      unc.update(depths, out["depth"] * scale, out["depth_std"] * scale, mask)
    names.extend(b[0] for b in batch)
    logging.info("Evaluated %d images (%s)", len(names), names[-1])
  if not names:
    raise app.UsageError(f"no images to evaluate in {dataset} ({_DATA_PATH.value})")
  result = acc.result()
  out = {
      "averaging": "per_image_mean",
      "metrics": result["per_image_mean"],
      "metrics_per_image_mean": result["per_image_mean"],
      "metrics_pixel_weighted": result["pixel_weighted"],
      "rms_per_depth_bin": result["rms_per_depth_bin"],
      "split": info["split"],
      "num_images": result["num_images"],
      "num_available": info["num_available"],
      "num_empty_images": result["num_empty_images"],
      "eigen_crop": bool(eigen),
      "median_scaling": _MEDIAN_SCALING.value,
      "rendered_defocus": render,
  }
  if stds:
    out["mean_depth_std_m"] = float(np.nanmean(stds))
    uncertainty = unc.result()
    uncertainty["mean_std_m"] = {key.replace("_std", "").replace("depth", "total"):
                                 total / count for key, (total, count) in std_sums.items()
                                 if count}
    out["uncertainty"] = uncertainty
  if _PER_IMAGE.value:
    per_image = acc.per_image
    unc_per_image = unc.per_image
    for i, name in enumerate(names):
      per_image[i] = {"name": name, **per_image[i]}
      if stds:
        per_image[i]["mean_depth_std_m"] = stds[i]
        per_image[i]["uncertainty"] = unc_per_image[i]
    out["per_image"] = per_image
  table = metrics.format_table(result)
  logging.info("Metrics over %d images (first row: per-image mean, the reported convention):"
               "\n%s\nRMS per depth bin (pixel-weighted):\n%s", result["num_images"], table,
               metrics.format_bin_table(result["rms_per_depth_bin"]))
  if stds:
    rows = {"per-image mean": uncertainty["per_image_mean"],
            "pixel-weighted": uncertainty["pixel_weighted"]}
    logging.info("Uncertainty metrics of the total std (%d samples; AUSE of %s error, per "
                 "image; mean std (m): %s):\n%s", _SAMPLES.value, _AUSE_METRIC.value,
                 ", ".join(f"{k} {v:.4f}" for k, v in uncertainty["mean_std_m"].items()),
                 metrics.format_table(rows, names=list(
                     uncertainty_metrics.UNCERTAINTY_METRIC_NAMES)))
  return out


def evaluate_diw(predictor) -> dict[str, Any]:
  """WKDR over the DIW pairs named by --data_path (a DIW CSV)."""
  from d3tf import metrics  # pylint: disable=g-import-not-at-top
  from d3tf.data import readers  # pylint: disable=g-import-not-at-top

  reader = readers.DiwReader(_require_data_path())
  if predictor.input_kind == "defocus":
    logging.warning("DIW photos carry whatever blur their cameras gave them; the model was "
                    "trained on %s", predictor.camera.to_dict())
  wrong, total, per_image = 0, 0, []
  for n, sample in enumerate(reader.samples()):
    if _NUM_EXAMPLES.value is not None and n >= _NUM_EXAMPLES.value:
      break
    image, pairs, ordinal = reader.load(sample)
    depth = predictor.predict(image, samples=_SAMPLES.value)["depth"][0]
    rate = metrics.wkdr(depth, pairs, ordinal)
    wrong += int(round(rate * len(ordinal)))
    total += len(ordinal)
    per_image.append({"name": sample.name, "wkdr": rate, "n_pairs": len(ordinal)})
  if not total:
    raise app.UsageError(f"--data_path={_DATA_PATH.value}: no DIW samples")
  result = {"wkdr": wrong / total, "n_pairs": total}
  logging.info("DIW: WKDR %.4f over %d pairs (%d images)", result["wkdr"], total, len(per_image))
  out = {"metrics": result, "split": None, "num_images": len(per_image),
         "num_available": len(reader), "rendered_defocus": False}
  if _PER_IMAGE.value:
    out["per_image"] = per_image
  return out


def main(argv):
  if len(argv) > 1:
    raise app.UsageError(f"Unexpected arguments: {argv[1:]}")
  if not _MODEL.value:
    raise app.UsageError("--model is required (a model_dir or a .keras file)")
  if not _MIN_DEPTH.value < _MAX_DEPTH.value:
    raise app.UsageError(f"--min_depth_m ({_MIN_DEPTH.value}) must be below --max_depth_m "
                         f"({_MAX_DEPTH.value})")
  if not _BIN_WIDTH.value > 0:
    raise app.UsageError(f"--bin_width_m must be positive, got {_BIN_WIDTH.value}")
  dataset = _DATASET.value
  if dataset != "procedural":
    _require_data_path()
  if _FOCUS.value is not None or _F_NUMBER.value is not None:
    from d3tf.optics import Camera  # pylint: disable=g-import-not-at-top
    # Checks the camera values now, before the slow model load.
    Camera.nyu().with_parameters(f_number=_F_NUMBER.value, focus_distance_m=_FOCUS.value)

  start = time.time()
  try:
    # Cheap checks first (no TensorFlow yet): the model file and its metadata exist.
    artifacts.read_metadata(artifacts.resolve_model_path(_MODEL.value, _CHECKPOINT.value))
    predictor = inference.load_predictor(_MODEL.value, checkpoint=_CHECKPOINT.value)
  except (FileNotFoundError, ValueError) as e:
    raise app.UsageError(str(e)) from None
  render_kwargs = predictor.metadata.render_kwargs()
  if _RENDER_BITS.value is not None:
    render_kwargs["output_bits"] = _RENDER_BITS.value
  camera, camera_source = (None, "real photos") if dataset in ("dfd", "diw") else choose_camera(
      predictor)
  dfd_aperture = _DFD_APERTURE.value
  dfd_camera = None
  if dataset == "dfd":
    from d3tf.data.readers.dfd import APERTURES  # pylint: disable=g-import-not-at-top
    from d3tf.optics import Camera  # pylint: disable=g-import-not-at-top
    if dfd_aperture == "auto":
      dfd_aperture = "N2_8" if predictor.input_kind == "defocus" else "N8"
    dfd_camera = Camera.dslr_d200_35mm(f_number=APERTURES[dfd_aperture])
    if _CAMERA.value != "model" or _FOCUS.value is not None or _F_NUMBER.value is not None:
      logging.warning("--camera, --focus_distance_m and --f_number are ignored for dfd: its "
                      "photos carry the real blur of their camera")
    logging.info("DFD: the real %s photos are used as they are (camera %s; nothing rendered)",
                 dfd_aperture, dfd_camera.to_dict())
    from d3tf.optics import camera_match  # pylint: disable=g-import-not-at-top
    camera_match.warn_if_mismatch(predictor.camera, dfd_camera, f"the DFD {dfd_aperture} photos")
  logging.info("Model %s expects %s.", predictor.path, predictor.metadata.describe())

  if dataset == "diw":
    results = evaluate_diw(predictor)
  else:
    results = evaluate_dense(predictor, dataset, camera, render_kwargs, dfd_aperture)

  report = {
      "model": os.path.abspath(predictor.path),
      "model_metadata": predictor.metadata.to_dict(),
      "dataset": dataset,
      "data_path": os.path.abspath(_DATA_PATH.value) if _DATA_PATH.value else None,
      "camera": camera.to_dict() if camera is not None else None,
      "camera_source": camera_source,
      "psf": render_kwargs["psf"] if camera is not None else None,
      "render_options": ({k: v for k, v in render_kwargs.items() if k != "psf"}
                         if camera is not None else None),
      "samples": _SAMPLES.value,
      "max_depth_m": _MAX_DEPTH.value,
      "min_depth_m": _MIN_DEPTH.value,
      **results,
      "seconds": round(time.time() - start, 2),
      "command_line": " ".join(sys.argv),
  }
  if _ON_ERROR.value == "skip":
    from d3tf.data import stream_errors  # pylint: disable=g-import-not-at-top
    report["skipped_examples"] = stream_errors.skip_report(_READERS)
    stream_errors.log_skip_report(report["skipped_examples"])
  if dfd_camera is not None:
    report["dfd_aperture"] = dfd_aperture
    report["camera"] = dfd_camera.to_dict()
  path = _OUTPUT_JSON.value or _default_json_path(predictor.path, dataset)
  os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
  from d3tf import atomic_io  # pylint: disable=g-import-not-at-top
  atomic_io.write_text(path, json.dumps(_json_ready(report), indent=2, allow_nan=False))
  logging.info("Wrote %s", os.path.abspath(path))
  _write_sparsification_plot(report, path)


def _write_sparsification_plot(report: dict[str, Any], json_path: str) -> None:
  """Draws the mean sparsification curve of an evaluation with uncertainty metrics."""
  sparsification = (report.get("uncertainty") or {}).get("sparsification")
  plot_path = _SPARSIFICATION_PLOT.value
  if plot_path is None:
    plot_path = os.path.splitext(json_path)[0] + "_sparsification.png"
  if not sparsification or not plot_path:
    return
  from d3tf import uncertainty_plots  # pylint: disable=g-import-not-at-top
  metric = report["uncertainty"]["ause_metric"]
  model_path = os.path.normpath(report["model"])
  label = os.path.join(os.path.basename(os.path.dirname(model_path)), os.path.basename(model_path))
  uncertainty_plots.write_sparsification_plot(
      {label: sparsification}, plot_path,
      error_name="RMSE" if metric == "rmse" else "mean abs error",
      title=f"{report['num_images']} images of {report['dataset']}, T = {report['samples']}")
  logging.info("Wrote %s", os.path.abspath(plot_path))


if __name__ == "__main__":
  from d3tf import cli_errors  # pylint: disable=g-import-not-at-top
  cli_errors.run(main)
