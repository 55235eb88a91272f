"""Evaluation as a library: ``run_evaluation(EvalConfig(model=...))``, no flags read.

Scores a trained model on a dataset (see ``python -m d3tf.evaluate``, which
calls this, for the metrics, the averaging conventions, and how the input is
rendered): the standard metrics per image and pixel-weighted, the RMS per
depth bin, uncertainty metrics with ``samples`` > 1 or an aleatoric head,
and WKDR on DIW. Returns the report and writes it as JSON (and the
sparsification plot).
"""

from __future__ import annotations

import dataclasses
import json
import math
import os
import time
from typing import Any, Iterator

from absl import logging
import numpy as np

from d3tf.experiment import config as config_lib

_NYU = ("nyu_png", "nyu_mat")
_SHARP_DATASETS = ("procedural", "nyu_png", "nyu_mat", "nyu_densedepth", "middlebury", "folder")
DEFAULT_PROCEDURAL_EXAMPLES = 32
# Standard deviations of Predictor.predict whose mean is reported.
_STD_KEYS = ("depth_std", "epistemic_std", "aleatoric_std")


@dataclasses.dataclass
class EvalConfig:
  """What to evaluate and how.

  Attributes:
    model: A model_dir or ``.keras`` file (with its metadata).
    checkpoint: "auto", "final" or "best" (of a model_dir).
    dataset: A :mod:`d3tf.data.registry` name (procedural, nyu_png, nyu_mat,
      dfd, middlebury, folder, diw).
    data_path, split, splits_path, depth_dir, depth_scale: The data source.
    val_scenes, frame_stride: nyu_densedepth: the validation scene(s) of
      split "validation"/"train" (split may also list scenes, comma-separated),
      and every N-th frame scored.
    on_error: A bad example: "raise" stops naming the file; "skip" leaves it
      out and reports it (the JSON's "skipped_examples").
    num_examples: Evaluate the first N images (None: all; procedural 32).
    height, width: Size of procedural scenes.
    dfd_aperture: "auto" (a defocus model: the aperture nearest its
      camera's f-number; a sharp one: N8), "N2_8" or "N8".
    dfd_val_views: dfd: the latest N views of the train folder by capture
      time are split "validation", the others "train" (0: "train" is the
      whole folder, and there is no "validation").
    max_depth_m, min_depth_m: Scored depth range / prediction clipping.
    eigen_crop: Score inside the Eigen crop (None: on for NYU only).
    median_scaling: Scale each prediction by median(gt) / median(pred).
    camera: The camera rendered on sharp datasets (preset "model": the
      model's; "none": feed the images as they are).
    render_bits: Overrides the model's rounding of rendered images.
    samples: Monte-Carlo samples per image.
    flip_average: Average each image's depth with its mirror image's
      (:mod:`d3tf.inference.flip_average`; a second forward pass).
    ause_metric: "abs" or "rmse".
    batch_size: Images rendered and predicted together.
    bin_width_m: Width of the depth bins of the per-bin RMS.
    seed: Seed of the render noise.
    output_json: Where to write the report (None: beside the model).
    per_image: Include each image's metrics.
    sparsification_plot: PNG path (None: beside the JSON; "": none).
    command_line: Recorded in the report.
  """

  model: str
  checkpoint: str = "auto"
  dataset: str = "procedural"
  data_path: str | None = None
  split: str = "test"
  splits_path: str | None = None
  depth_dir: str | None = None
  depth_scale: float = 0.001
  on_error: str = "raise"
  val_scenes: tuple[str, ...] = ("office_0011",)
  frame_stride: int = 1
  num_examples: int | None = None
  height: int = 256
  width: int = 256
  dfd_aperture: str = "auto"
  dfd_val_views: int = 0
  max_depth_m: float = 10.0
  min_depth_m: float = 1e-3
  eigen_crop: bool | None = None
  median_scaling: bool = False
  camera: config_lib.CameraConfig = dataclasses.field(
      default_factory=lambda: config_lib.CameraConfig(preset="model"))
  render_bits: int | None = None
  samples: int = 1
  flip_average: bool = False
  ause_metric: str = "abs"
  batch_size: int = 4
  bin_width_m: float = 1.0
  seed: int = 0
  output_json: str | None = None
  per_image: bool = True
  sparsification_plot: str | None = None
  command_line: str = ""

  def validate(self) -> "EvalConfig":
    """Raises ConfigError naming a bad field."""
    from d3tf.data import registry  # pylint: disable=g-import-not-at-top
    if not self.model:
      raise config_lib.ConfigError("model", self.model, "model is required (a model_dir or a "
                                   ".keras file)")
    try:
      spec = registry.get_dataset(self.dataset)
    except ValueError as e:
      raise config_lib.ConfigError("dataset", self.dataset, str(e)) from None
    if spec.needs_path:
      if not self.data_path:
        raise config_lib.ConfigError("data_path", None,
                                     f"--dataset={self.dataset} needs --data_path")
      if not os.path.exists(self.data_path):
        raise config_lib.ConfigError("data_path", self.data_path,
                                     f"--data_path={self.data_path}: no such file or folder")
    if not self.min_depth_m < self.max_depth_m:
      raise config_lib.ConfigError("min_depth_m", self.min_depth_m,
                                   f"--min_depth_m ({self.min_depth_m}) must be below "
                                   f"--max_depth_m ({self.max_depth_m})")
    if not self.bin_width_m > 0:
      raise config_lib.ConfigError("bin_width_m", self.bin_width_m,
                                   f"--bin_width_m must be positive, got {self.bin_width_m}")
    for name, choices in (("dfd_aperture", ("auto", "N2_8", "N8")),
                          ("ause_metric", ("abs", "rmse")), ("on_error", ("raise", "skip"))):
      if getattr(self, name) not in choices:
        raise config_lib.ConfigError(name, getattr(self, name), f"--{name} must be one of "
                                     f"{choices}, got {getattr(self, name)!r}")
    if not isinstance(self.dfd_val_views, int) or self.dfd_val_views < 0:
      raise config_lib.ConfigError("dfd_val_views", self.dfd_val_views, "--dfd_val_views "
                                   f"must be an integer >= 0, got {self.dfd_val_views!r}")
    if self.dfd_val_views and self.dataset != "dfd":
      raise config_lib.ConfigError("dfd_val_views", self.dfd_val_views, "--dfd_val_views "
                                   f"applies to --dataset=dfd, not --dataset={self.dataset}")
    for name in ("samples", "batch_size"):
      if not getattr(self, name) >= 1:
        raise config_lib.ConfigError(name, getattr(self, name),
                                     f"--{name} must be >= 1, got {getattr(self, name)}")
    # The camera's values, now, before the slow model load.
    from d3tf.optics import Camera  # pylint: disable=g-import-not-at-top
    if self.camera.preset in ("model", "none"):
      Camera.nyu().with_parameters(**self.camera.overrides())
    else:
      self.camera.build()
    return self


# --------------------------------------------------------------- the camera
def choose_camera(config: EvalConfig, predictor) -> tuple[Any, str]:
  """The camera whose blur to render on sharp images, and where it came from."""
  camera = config.camera.build(predictor.camera)
  preset = config.camera.preset
  source = "model metadata" if preset == "model" else f"--camera={preset}"
  overrides = config.camera.overrides()
  if overrides:
    source += " with " + ", ".join(f"{k}={v:g}" for k, v in overrides.items())
  if camera != predictor.camera and not getattr(predictor, "camera_aware", False):
    logging.warning("Rendering input with camera %s, but the model was trained on %s",
                    camera.to_dict() if camera else "sharp images",
                    predictor.camera.to_dict() if predictor.camera else "sharp images")
  return camera, source


def auto_dfd_aperture(predictor) -> str:
  """``--dfd_aperture=auto``: N8 for a sharp model, else the aperture nearest its f-number.

  A model trained on defocused input gets the photos whose f-number is
  nearest (on a log scale) to its camera's: N2_8 for f/2.8 (and the NYU
  camera), N8 for a model fine-tuned on the f/8 photos.
  """
  from d3tf.data.readers import dfd  # pylint: disable=g-import-not-at-top
  if predictor.input_kind != "defocus":
    return "N8"
  camera = predictor.camera
  if camera is None:
    return "N2_8"
  return min(dfd.APERTURES, key=lambda a: abs(math.log(dfd.APERTURES[a] / camera.f_number)))


# ------------------------------------------------------------------- data
def make_reader(config: EvalConfig, dfd_aperture: str, readers: list | None = None):
  """The reader of ``config.dataset`` (all but procedural and diw), via the registry."""
  from d3tf.data import registry  # pylint: disable=g-import-not-at-top
  if config.dataset in _NYU and config.split not in ("train", "test", "all"):
    raise config_lib.ConfigError("split", config.split, "--split for NYU must be train, test "
                                 f"or all, got {config.split!r}")
  options = {}
  if config.dataset == "nyu_densedepth":
    options.update(val_scenes=config.val_scenes, frame_stride=config.frame_stride)
  reader = registry.make_reader(
      config.dataset, config.data_path, config.split, splits_path=config.splits_path,
      missing_splits="all", aperture=dfd_aperture, val_views=config.dfd_val_views,
      depth_dir=config.depth_dir,
      depth_scale=config.depth_scale, on_error=config.on_error, **options)
  if readers is not None:
    readers.append(reader)  # For the report of skipped examples.
  return reader


def iterate_samples(config: EvalConfig, dfd_aperture: str, info: dict[str, Any],
                    readers: list | None = None
                    ) -> Iterator[tuple[str, np.ndarray, np.ndarray]]:
  """Yields ``(name, image uint8 [H, W, 3], depth float32 [H, W] metres)``.

  Fills ``info["split"]`` with the split read (None where there are none) and
  ``info["num_available"]`` with the dataset's size (None: unbounded).
  """
  limit = config.num_examples
  info["split"] = None if config.dataset in ("middlebury", "folder") else config.split
  info["num_available"] = None
  if config.dataset == "procedural":
    from d3tf.data.procedural import procedural_dataset  # pylint: disable=g-import-not-at-top
    if config.split not in ("train", "validation", "test"):
      raise config_lib.ConfigError("split", config.split, "--split for procedural must be "
                                   f"train, validation or test, got {config.split!r}")
    count = limit or DEFAULT_PROCEDURAL_EXAMPLES
    ds = procedural_dataset(config.split, count, height=config.height, width=config.width)
    for i, element in enumerate(ds.as_numpy_iterator()):
      yield f"{config.split}_{i:04d}", element["image"], element["depth"]
    return
  reader = make_reader(config, dfd_aperture, readers)
  info["split"] = getattr(reader, "split", None) or info["split"]
  info["num_available"] = len(reader)
  if len(reader) == 0:
    raise ValueError(f"--data_path={config.data_path}: no {config.dataset} samples found")
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
def json_ready(value):
  """NaN / inf -> None, NumPy scalars -> Python, recursively."""
  if isinstance(value, dict):
    return {k: json_ready(v) for k, v in value.items()}
  if isinstance(value, (list, tuple)):
    return [json_ready(v) for v in value]
  if isinstance(value, np.generic):
    value = value.item()
  if isinstance(value, float) and not math.isfinite(value):
    return None
  return value


def default_json_path(config: EvalConfig, model_path: str) -> str:
  split = "" if config.dataset in ("middlebury", "folder", "diw") else f"_{config.split}"
  return os.path.join(os.path.dirname(os.path.abspath(model_path)),
                      f"eval_{config.dataset}{split}.json")


# -------------------------------------------------------------- evaluation
def evaluate_dense(config: EvalConfig, predictor, camera, render_kwargs: dict[str, Any],
                   dfd_aperture: str, readers: list | None = None,
                   input_camera=None) -> dict[str, Any]:
  """Predicts every image and scores it; returns the JSON-ready results.

  A camera-aware model is given ``input_camera`` (the camera rendered, or that
  of real photos; None: its metadata's default camera) with every image.
  """
  from d3tf import metrics  # pylint: disable=g-import-not-at-top
  from d3tf import uncertainty_metrics  # pylint: disable=g-import-not-at-top

  dataset = config.dataset
  eigen = config.eigen_crop if config.eigen_crop is not None else dataset in _NYU
  if eigen and dataset not in _NYU:
    logging.warning("--eigen_crop on %s: the crop is defined for NYU frames (scaled to this "
                    "size)", dataset)
  render = camera is not None and dataset in _SHARP_DATASETS
  edges = np.arange(0.0, config.max_depth_m + 0.5 * config.bin_width_m, config.bin_width_m)
  if edges[-1] < config.max_depth_m:
    edges = np.append(edges, config.max_depth_m)
  acc = metrics.MetricsAccumulator(max_depth_m=config.max_depth_m,
                                   min_depth_m=config.min_depth_m,
                                   median_scaling=config.median_scaling, bin_edges_m=edges)
  unc = uncertainty_metrics.UncertaintyAccumulator(metric=config.ause_metric,
                                                   max_depth_m=config.max_depth_m)
  std_sums = {key: [0.0, 0] for key in _STD_KEYS}
  names, stds, info = [], [], {}
  samples = iterate_samples(config, dfd_aperture, info, readers)
  predict_kwargs = {"samples": config.samples}
  if getattr(predictor, "camera_aware", False) and input_camera is not None:
    predict_kwargs["camera"] = input_camera
  for k, batch in enumerate(_batches(samples, config.batch_size)):
    images = np.stack([b[1] for b in batch])
    depths = np.stack([b[2] for b in batch])
    if render:
      import tensorflow as tf  # pylint: disable=g-import-not-at-top
      from d3tf.optics import render_defocus  # pylint: disable=g-import-not-at-top
      inputs = render_defocus(tf.constant(images, tf.float32) / 255.0, depths, camera,
                              seed=config.seed + k, **render_kwargs).numpy()
    else:
      inputs = images
    out = predictor.predict(inputs, **predict_kwargs)
    mask = None
    if eigen:
      from d3tf.data.readers import eigen_crop_mask  # pylint: disable=g-import-not-at-top
      mask = eigen_crop_mask(*depths.shape[1:])
    scored = acc.update(depths, out["depth"], mask)
    if "depth_std" in out:
      valid = metrics.valid_mask(depths, mask, config.max_depth_m)
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
    raise ValueError(f"no images to evaluate in {dataset} ({config.data_path})")
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
      "median_scaling": config.median_scaling,
      "rendered_defocus": render,
  }
  if stds:
    out["mean_depth_std_m"] = float(np.nanmean(stds))
    uncertainty = unc.result()
    uncertainty["mean_std_m"] = {key.replace("_std", "").replace("depth", "total"):
                                 total / count for key, (total, count) in std_sums.items()
                                 if count}
    out["uncertainty"] = uncertainty
  if config.per_image:
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
                 "image; mean std (m): %s):\n%s", config.samples, config.ause_metric,
                 ", ".join(f"{k} {v:.4f}" for k, v in uncertainty["mean_std_m"].items()),
                 metrics.format_table(rows, names=list(
                     uncertainty_metrics.UNCERTAINTY_METRIC_NAMES)))
  return out


def evaluate_diw(config: EvalConfig, predictor) -> dict[str, Any]:
  """WKDR over the DIW pairs of ``config.data_path`` (a DIW CSV)."""
  from d3tf import metrics  # pylint: disable=g-import-not-at-top
  from d3tf.data import registry  # pylint: disable=g-import-not-at-top

  reader = registry.make_reader("diw", config.data_path)
  if predictor.input_kind == "defocus":
    logging.warning("DIW photos carry whatever blur their cameras gave them; the model was "
                    "trained on %s", predictor.camera.to_dict())
  wrong, total, per_image = 0, 0, []
  for n, sample in enumerate(reader.samples()):
    if config.num_examples is not None and n >= config.num_examples:
      break
    image, pairs, ordinal = reader.load(sample)
    depth = predictor.predict(image, samples=config.samples)["depth"][0]
    rate = metrics.wkdr(depth, pairs, ordinal)
    wrong += int(round(rate * len(ordinal)))
    total += len(ordinal)
    per_image.append({"name": sample.name, "wkdr": rate, "n_pairs": len(ordinal)})
  if not total:
    raise ValueError(f"--data_path={config.data_path}: no DIW samples")
  result = {"wkdr": wrong / total, "n_pairs": total}
  logging.info("DIW: WKDR %.4f over %d pairs (%d images)", result["wkdr"], total, len(per_image))
  out = {"metrics": result, "split": None, "num_images": len(per_image),
         "num_available": len(reader), "rendered_defocus": False}
  if config.per_image:
    out["per_image"] = per_image
  return out


def _load_predictor(config: EvalConfig):
  """The model's predictor; cheap checks (file, metadata) before TensorFlow loads."""
  from d3tf import artifacts  # pylint: disable=g-import-not-at-top
  from d3tf import inference  # pylint: disable=g-import-not-at-top
  artifacts.read_metadata(artifacts.resolve_model_path(config.model, config.checkpoint))
  return inference.load_predictor(config.model, checkpoint=config.checkpoint)


def run_evaluation(config: EvalConfig, predictor=None) -> dict[str, Any]:
  """Evaluates ``config.model`` on ``config.dataset``; writes and returns the report.

  Args:
    config: What to evaluate (validated here).
    predictor: An already loaded :class:`d3tf.inference.Predictor` of
      ``config.model`` (default: loaded here).

  Returns:
    The report (also written to ``config.output_json``; its path is the
    report's ``"output_json"``).

  Raises:
    ConfigError / ValueError / FileNotFoundError: bad config values, data or
      model files (naming them).
  """
  from d3tf import artifacts  # pylint: disable=g-import-not-at-top
  config.validate()
  start = time.time()
  if predictor is None:
    predictor = _load_predictor(config)
  if config.flip_average:
    from d3tf.inference import flip_average  # pylint: disable=g-import-not-at-top
    if not isinstance(predictor, flip_average.FlipAveragingPredictor):
      predictor = flip_average.FlipAveragingPredictor(predictor)
  dataset = config.dataset
  render_kwargs = predictor.metadata.render_kwargs()
  if config.render_bits is not None:
    render_kwargs["output_bits"] = config.render_bits
  if dataset in ("dfd", "diw"):
    camera, camera_source = None, "real photos"
  else:
    camera, camera_source = choose_camera(config, predictor)
  dfd_aperture = config.dfd_aperture
  dfd_camera = None
  if dataset == "dfd":
    from d3tf.data.readers import dfd  # pylint: disable=g-import-not-at-top
    if dfd_aperture == "auto":
      dfd_aperture = auto_dfd_aperture(predictor)
    dfd_camera = dfd.camera_for_aperture(dfd_aperture)
    if config.camera.preset != "model" or config.camera.overrides():
      logging.warning("The camera and its parameters are ignored for dfd: its photos carry the "
                      "real blur of their camera")
    from d3tf.optics import camera_match  # pylint: disable=g-import-not-at-top
    if not getattr(predictor, "camera_aware", False):  # Else the DFD camera is its input.
      camera_match.warn_if_mismatch(predictor.camera, dfd_camera,
                                    f"the DFD {dfd_aperture} photos")
    logging.info("DFD: the real %s photos are used as they are (camera %s; nothing rendered)",
                 dfd_aperture, dfd_camera.to_dict())
  logging.info("Model %s expects %s.", predictor.path, artifacts.describe(predictor.metadata))

  readers = []
  if dataset == "diw":
    results = evaluate_diw(config, predictor)
  else:
    results = evaluate_dense(config, predictor, camera, render_kwargs, dfd_aperture, readers,
                             input_camera=dfd_camera or camera)

  report = {
      "model": os.path.abspath(predictor.path),
      "model_metadata": predictor.metadata.to_dict(),
      "dataset": dataset,
      "data_path": os.path.abspath(config.data_path) if config.data_path else None,
      "camera": camera.to_dict() if camera is not None else None,
      "camera_source": camera_source,
      "psf": render_kwargs["psf"] if camera is not None else None,
      "render_options": ({k: v for k, v in render_kwargs.items() if k != "psf"}
                         if camera is not None else None),
      "samples": config.samples,
      "flip_average": config.flip_average,
      "max_depth_m": config.max_depth_m,
      "min_depth_m": config.min_depth_m,
      **results,
      "seconds": round(time.time() - start, 2),
      "command_line": config.command_line,
  }
  if dfd_camera is not None:
    report["dfd_aperture"] = dfd_aperture
    report["dfd_val_views"] = config.dfd_val_views
    report["camera"] = dfd_camera.to_dict()
  if config.on_error == "skip":
    from d3tf.data import stream_errors  # pylint: disable=g-import-not-at-top
    report["skipped_examples"] = stream_errors.skip_report(readers)
    stream_errors.log_skip_report(report["skipped_examples"])
  path = config.output_json or default_json_path(config, predictor.path)
  os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
  report = json_ready(report)
  from d3tf import atomic_io  # pylint: disable=g-import-not-at-top
  atomic_io.write_text(path, json.dumps(report, indent=2, allow_nan=False))
  logging.info("Wrote %s", os.path.abspath(path))
  write_sparsification_plot(report, path, config.sparsification_plot)
  report["output_json"] = os.path.abspath(path)
  return report


def write_sparsification_plot(report: dict[str, Any], json_path: str,
                              plot_path: str | None = None) -> None:
  """Draws the mean sparsification curve of an evaluation with uncertainty metrics."""
  sparsification = (report.get("uncertainty") or {}).get("sparsification")
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
