r"""The camera-mismatch table (issue 14): trained models on a grid of test cameras.

A single-camera model knows the one camera it was trained on; a camera-aware
model (``predictor.camera_aware``) takes each image's camera as an input. This
benchmark renders every test image with every camera of a grid (the NYU camera,
15 mm and 5.6 um, focused at 1, 2, 4, 8 m, at f/2, f/2.8, f/5.6 by default) and
scores every model on it:

* a single-camera model (and an all-in-focus or camera-agnostic one) gets the
  rendered image only: its camera is fixed, so every other test camera is a
  mismatch;
* a camera-aware model also gets the test camera (``predict(..., camera=)``,
  as ``d3tf.evaluate`` gives it).

Each (camera, image) is rendered once (``d3tf.optics.render_defocus`` with the
models' training render options, as ``d3tf.evaluate`` renders; models whose
options differ get their own render, all-in-focus models the first defocus
model's) and fed to every model. Metrics are :mod:`d3tf.metrics`'s (per-image
mean, ground truth in (0, ``--max_depth_m``]).

Datasets (``--datasets``):

* ``procedural``: ``--procedural_scenes`` scenes of d3tf's procedural generator
  (split ``--procedural_split``, seed 0), ``--procedural_height`` x
  ``--procedural_width``;
* ``nyu``: real NYU frames of the validation scene ``--nyu_scene`` of
  DenseDepth's copy (``--nyu_data_path``, reader ``nyu_densedepth``), every
  ``--nyu_frame_stride``-th frame, the first ``--nyu_frames`` of those, binned
  by ``--nyu_downscale`` (the image averaged over s x s blocks, the depth's
  block centres; the test camera keeps its pixel pitch, so the blur in pixels
  is the camera's at any size, as on the procedural scenes), scored inside the
  Eigen crop (``--nyu_eigen_crop``; the model sees the whole frame).

Output: a Markdown file (``--output``) with the command line, the date, per
dataset a table of rel (rows: test cameras; columns: models; the best of each
row in bold; each single-camera model's own camera marked "(own)"; cameras
outside a camera-aware model's training range marked "†"), the goal check
(the camera-aware model within 10 % of each single-camera model on that
model's own camera, and better than it on every other camera) and rms and
delta < 1.25 tables; and a JSON (``--output_json``, default beside it) with
all metrics. A single-camera model's camera that is not in the grid is added
as a row (``--add_model_cameras``).

Usage (from the repository root)::

  TF_CPP_MIN_LOG_LEVEL=2 python benchmarks/camera_mismatch.py \
      --model=focus2m=runs/nyu_real_focus2m --model=focus8m=runs/nyu_real_focus8m \
      --model=anycamera=runs/nyu_real_anycamera \
      --nyu_data_path=../shared/data/nyuv2_train \
      --output=benchmarks/results/camera_mismatch.md
"""

from __future__ import annotations

import dataclasses
import datetime
import json
import os
import sys
import time
from typing import Any, Callable, Sequence

from absl import logging
import numpy as np

#: Metrics shown in the Markdown tables (all of :mod:`d3tf.metrics` go to the JSON).
TABLE_METRICS = (("rel", "rel", ".3f"), ("rms", "rms (m)", ".3f"),
                 ("delta1", "delta < 1.25", ".3f"))
#: The camera-aware model may be this much worse (relative rel) on a model's own camera.
OWN_CAMERA_TOLERANCE = 0.10
#: Model kinds.
SINGLE, AWARE, AGNOSTIC, SHARP = "single-camera", "camera-aware", "camera-agnostic", "all-in-focus"


# ------------------------------------------------------------------ models
@dataclasses.dataclass
class Model:
  """A model of the table.

  Attributes:
    name: Its column name.
    predictor: Its :class:`d3tf.inference.Predictor`.
    kind: SINGLE, AWARE, AGNOSTIC (trained on a camera range without the
      camera as input) or SHARP (trained on all-in-focus images).
    camera_range: The training camera range of an AWARE / AGNOSTIC model
      (:class:`d3tf.optics.camera_range.CameraRange`), else None.
  """

  name: str
  predictor: Any
  kind: str
  camera_range: Any = None

  @property
  def own_camera(self):
    """The one training camera of a SINGLE model, else None."""
    return self.predictor.camera if self.kind == SINGLE else None

  def describe(self) -> str:
    """One line for the legend."""
    if self.kind == SINGLE:
      return f"{SINGLE}: {self.predictor.camera.describe()}"
    if self.kind in (AWARE, AGNOSTIC):
      name = self.camera_range.name if self.camera_range is not None else "unknown"
      return f"{self.kind}, trained on camera range `{name}`"
    return f"{SHARP} input"


def parse_model_spec(spec: str) -> tuple[str, str]:
  """``"NAME=PATH"`` -> ``(NAME, PATH)``; ValueError naming the flag value."""
  name, sep, path = spec.partition("=")
  if not sep or not name or not path:
    raise ValueError(f"--model={spec!r}: expected NAME=PATH (a model_dir or .keras file)")
  return name, path


def model_of(name: str, predictor) -> Model:
  """Classifies a loaded predictor (from its metadata) into a :class:`Model`."""
  from d3tf.optics import camera_range as camera_range_lib  # pylint: disable=g-import-not-at-top
  metadata = predictor.metadata
  range_dict = (metadata.extra.get("camera_range") if metadata is not None else None)
  camera_range = camera_range_lib.CameraRange.from_dict(range_dict) if range_dict else None
  if getattr(predictor, "camera_aware", False):
    kind = AWARE
  elif predictor.input_kind == "sharp" or predictor.camera is None:
    kind = SHARP
  elif camera_range is not None:
    kind = AGNOSTIC
  else:
    kind = SINGLE
  return Model(name, predictor, kind, camera_range)


def load_models(specs: Sequence[str], checkpoint: str = "best",
                flip_average: bool = False) -> list[Model]:
  """Loads ``NAME=PATH`` specs (model_dirs: their ``checkpoint``) with d3tf's loader.

  ``flip_average``: every model predicts each image and its mirror image, averaged
  (:mod:`d3tf.inference.flip_average`).
  """
  from d3tf import inference  # pylint: disable=g-import-not-at-top
  parsed = [parse_model_spec(spec) for spec in specs]
  names = [name for name, _ in parsed]
  if len(set(names)) != len(names):
    raise ValueError(f"--model: names must differ, got {names}")
  models = []
  for name, path in parsed:
    if not os.path.exists(path):
      raise FileNotFoundError(f"--model={name}={path}: no such file or folder")
    model = model_of(name, inference.load_predictor(path, checkpoint=checkpoint,
                                                    flip_average=flip_average))
    logging.info("Model %s (%s): %s", name, model.predictor.path, model.describe())
    models.append(model)
  return models


# ----------------------------------------------------------------- cameras
@dataclasses.dataclass(frozen=True)
class TestCamera:
  """A row of the table: a camera and its label."""

  label: str
  camera: Any
  in_grid: bool = True


def grid_cameras(focus_m: Sequence[float], f_numbers: Sequence[float],
                 focal_length_mm: float = 15.0, pixel_pitch_um: float = 5.6
                 ) -> list[TestCamera]:
  """The grid: every focus distance (outer) by every f-number (inner)."""
  from d3tf.optics import Camera  # pylint: disable=g-import-not-at-top
  rows = []
  for focus in focus_m:
    for f_number in f_numbers:
      try:
        camera = Camera(focal_length_m=focal_length_mm * 1e-3, f_number=f_number,
                        pixel_pitch_m=pixel_pitch_um * 1e-6, focus_distance_m=focus)
      except ValueError as e:
        raise ValueError(f"--focus_m={focus:g} / --f_numbers={f_number:g}: {e}") from None
      rows.append(TestCamera(f"{focus:g} m, f/{f_number:g}", camera))
  return rows


def describe_grid(cameras: Sequence[TestCamera]) -> str:
  """One line: the lenses, pixel pitches, focus distances and f-numbers of the rows."""
  def values(key, scale):
    return ", ".join(f"{v:g}" for v in sorted({round(getattr(c.camera, key) * scale, 6)
                                                for c in cameras}))
  return (f"{len(cameras)} cameras: {values('focal_length_m', 1e3)} mm, "
          f"{values('pixel_pitch_m', 1e6)} um, focus {values('focus_distance_m', 1)} m x "
          f"f/{values('f_number', 1).replace(', ', ', f/')}")


def is_same_camera(a, b) -> bool:
  """Whether two cameras agree in all four parameters (d3tf.optics.camera_match's tolerance)."""
  from d3tf.optics import camera_match  # pylint: disable=g-import-not-at-top
  return a is not None and b is not None and not camera_match.camera_differences(a, b)


def add_model_cameras(cameras: list[TestCamera], models: Sequence[Model]) -> list[TestCamera]:
  """The grid plus each single-camera model's camera that it lacks (labelled by that model)."""
  rows = list(cameras)
  for model in models:
    own = model.own_camera
    if own is None or any(is_same_camera(own, row.camera) for row in rows):
      continue
    label = (f"{own.focus_distance_m:g} m, f/{own.f_number:g}, {own.focal_length_m * 1e3:g} mm, "
             f"{own.pixel_pitch_m * 1e6:g} um ({model.name}'s)")
    logging.info("Adding %s's camera to the grid: %s", model.name, own.describe())
    rows.append(TestCamera(label, own, in_grid=False))
  return rows


def in_training_range(model: Model, camera) -> bool | None:
  """Whether ``camera`` lies in a range-trained model's camera range (None: not such a model)."""
  if model.camera_range is None:
    return None
  from d3tf.optics import camera_range as camera_range_lib  # pylint: disable=g-import-not-at-top
  return bool(model.camera_range.contains(camera_range_lib.camera_vector(camera)))


# ------------------------------------------------------------------- data
@dataclasses.dataclass
class TestSet:
  """Sharp test images with their depth."""

  name: str
  description: str
  images: np.ndarray  # uint8 [N, H, W, 3]
  depths: np.ndarray  # float32 [N, H, W], metres
  mask: np.ndarray | None = None  # bool [H, W]: the scored pixels (None: all valid).


def procedural_set(num: int, split: str = "test", height: int = 240, width: int = 320
                   ) -> TestSet:
  """The first ``num`` procedural scenes of ``split`` (seed 0, as ``d3tf.evaluate`` draws)."""
  from d3tf.experiment import render_lib  # pylint: disable=g-import-not-at-top
  _, images, depths = render_lib.procedural_samples(num, split=split, height=height, width=width)
  return TestSet("procedural", f"{num} procedural {split} scenes (seed 0), {height}x{width}",
                 images, depths)


def downscale(image: np.ndarray, depth: np.ndarray, factor: int
              ) -> tuple[np.ndarray, np.ndarray]:
  """Bins an image (mean of factor x factor blocks) and samples its depth at the block centres."""
  if factor == 1:
    return image, depth
  height, width = (image.shape[0] // factor) * factor, (image.shape[1] // factor) * factor
  blocks = image[:height, :width].astype(np.float32).reshape(
      height // factor, factor, width // factor, factor, 3)
  binned = np.round(blocks.mean(axis=(1, 3))).astype(np.uint8)
  return binned, np.ascontiguousarray(depth[factor // 2:height:factor, factor // 2:width:factor])


def nyu_set(data_path: str, scene: str = "office_0011", frame_stride: int = 30,
            num_frames: int = 8, downscale_factor: int = 1, eigen_crop: bool = True) -> TestSet:
  """Frames of one DenseDepth scene (every ``frame_stride``-th, the first ``num_frames``)."""
  from d3tf.data import registry  # pylint: disable=g-import-not-at-top
  from d3tf.data.readers import eigen_crop_mask  # pylint: disable=g-import-not-at-top
  if not os.path.isdir(data_path):
    raise ValueError(f"--nyu_data_path={data_path}: not a folder")
  reader = registry.make_reader("nyu_densedepth", data_path, "validation", val_scenes=(scene,),
                                frame_stride=frame_stride)
  names, images, depths = [], [], []
  for sample, image, depth in reader.iter_samples():
    if len(names) == num_frames:
      break
    image, depth = downscale(image, depth, downscale_factor)
    names.append(sample.name)
    images.append(image)
    depths.append(depth)
  if not names:
    raise ValueError(f"--nyu_data_path={data_path}: no frames of scene {scene!r}")
  if len(names) < num_frames:
    logging.warning("Scene %s has only %d frames at stride %d (asked for %d)", scene, len(names),
                    frame_stride, num_frames)
  images, depths = np.stack(images), np.stack(depths)
  height, width = depths.shape[1:]
  mask = eigen_crop_mask(height, width) if eigen_crop else None
  return TestSet("nyu", f"{len(names)} real NYU frames of {scene} (frame stride {frame_stride}: "
                 f"frames {', '.join(n.split('/')[-1] for n in names)}), {height}x{width}"
                 f"{' (binned x%d)' % downscale_factor if downscale_factor > 1 else ''}"
                 f"{', scored in the Eigen crop' if eigen_crop else ''}", images, depths, mask)


# -------------------------------------------------------------- evaluation
def _render_key(kwargs: dict[str, Any]) -> str:
  """The render's identity: the PSF and every render option (defaults filled in)."""
  from d3tf.optics import RenderOptions  # pylint: disable=g-import-not-at-top
  options = RenderOptions.for_mode(**{k: v for k, v in kwargs.items() if k != "psf"})
  return json.dumps({"psf": kwargs.get("psf"), **options.to_dict()}, sort_keys=True, default=str)


def render_settings(models: Sequence[Model]
                    ) -> tuple[dict[str, str], dict[str, dict[str, Any]]]:
  """``(model name -> key of its render options, key -> the options)``: one render per key.

  Defocus models render with their training options (``metadata.render_kwargs()``);
  all-in-focus models see the first defocus model's render (the photo a camera takes).
  """
  keys, options = {}, {}
  for model in models:
    if model.kind != SHARP:
      kwargs = model.predictor.metadata.render_kwargs()
      keys[model.name] = _render_key(kwargs)
      options.setdefault(keys[model.name], kwargs)
  if not options:  # Only all-in-focus models: d3tf's default render.
    from d3tf import artifacts  # pylint: disable=g-import-not-at-top
    from d3tf.optics import Camera  # pylint: disable=g-import-not-at-top
    kwargs = artifacts.Metadata.for_training(camera=Camera.nyu()).render_kwargs()
    options[_render_key(kwargs)] = kwargs
  first = next(iter(options))
  for model in models:
    keys.setdefault(model.name, first)
  return keys, options


def evaluate_set(test_set: TestSet, models: Sequence[Model], cameras: Sequence[TestCamera], *,
                 batch_size: int = 8, seed: int = 0, max_depth_m: float = 10.0,
                 min_depth_m: float = 1e-3) -> dict[str, dict[str, dict[str, Any]]]:
  """Scores every model on ``test_set`` rendered with every camera.

  Returns:
    ``{camera label: {model name: {"per_image_mean": {...}, "pixel_weighted":
    {...}, "num_images": n}}}``.
  """
  import tensorflow as tf  # pylint: disable=g-import-not-at-top
  from d3tf import metrics  # pylint: disable=g-import-not-at-top
  from d3tf.optics import render_defocus  # pylint: disable=g-import-not-at-top
  keys, options = render_settings(models)
  results = {}
  for index, row in enumerate(cameras):
    start, render_s, predict_s = time.time(), 0.0, 0.0
    accumulators = {m.name: metrics.MetricsAccumulator(max_depth_m=max_depth_m,
                                                       min_depth_m=min_depth_m)
                    for m in models}
    for k in range(0, len(test_set.images), batch_size):
      images = test_set.images[k:k + batch_size]
      depths = test_set.depths[k:k + batch_size]
      for key, kwargs in options.items():
        users = [m for m in models if keys[m.name] == key]
        if not users:
          continue
        tick = time.time()
        rendered = render_defocus(tf.constant(images, tf.float32) / 255.0, depths, row.camera,
                                  seed=seed + k // batch_size, **kwargs).numpy()
        render_s += time.time() - tick
        for model in users:
          extra = {"camera": row.camera} if model.kind == AWARE else {}
          tick = time.time()
          depth = model.predictor.predict(rendered, **extra)["depth"]
          predict_s += time.time() - tick
          accumulators[model.name].update(depths, depth, test_set.mask)
    results[row.label] = {}
    for name, accumulator in accumulators.items():
      result = accumulator.result()
      results[row.label][name] = {"per_image_mean": result["per_image_mean"],
                                  "pixel_weighted": result["pixel_weighted"],
                                  "num_images": result["num_images"]}
    logging.info("[%s] camera %d/%d (%s): rel %s (%.1f s: render %.1f s, predict %.1f s)",
                 test_set.name, index + 1, len(cameras), row.label,
                 ", ".join(f"{name} {results[row.label][name]['per_image_mean']['rel']:.3f}"
                           for name in accumulators), time.time() - start, render_s, predict_s)
  return results


# ----------------------------------------------------------------- report
def _rel(results, label, name) -> float:
  return results[label][name]["per_image_mean"]["rel"]


def goal_check(results, models: Sequence[Model], cameras: Sequence[TestCamera]
               ) -> list[dict[str, Any]]:
  """Each camera-aware model against each single-camera model (issue 14's goal).

  Own camera: camera-aware rel <= (1 + 10 %) x the single-camera model's;
  every other camera: camera-aware rel < the single-camera model's. ``"passed"``
  is None where the single-camera model's own camera is not a row.
  """
  checks = []
  for aware in (m for m in models if m.kind == AWARE):
    for single in (m for m in models if m.kind == SINGLE):
      own = [row.label for row in cameras if is_same_camera(single.own_camera, row.camera)]
      away = [row.label for row in cameras if row.label not in own]
      own_ok = {label: _rel(results, label, aware.name)
                <= (1 + OWN_CAMERA_TOLERANCE) * _rel(results, label, single.name)
                for label in own}
      away_ok = {label: _rel(results, label, aware.name) < _rel(results, label, single.name)
                 for label in away}
      checks.append({"camera_aware": aware.name, "single_camera": single.name,
                     "own_cameras": own_ok, "other_cameras": away_ok,
                     # None: no verdict, the single-camera model's camera is not a row.
                     "passed": (all(own_ok.values()) and all(away_ok.values())) if own
                     else None})
  return checks


def _cell(value: float, fmt: str, best: bool, marks: str) -> str:
  text = "-" if value is None or not np.isfinite(value) else format(value, fmt)
  return (f"**{text}**" if best else text) + marks


def markdown_table(results, models: Sequence[Model], cameras: Sequence[TestCamera],
                   metric: str = "rel", fmt: str = ".3f") -> list[str]:
  """One table: rows = cameras, columns = models; the best of each row bold."""
  higher_better = metric.startswith("delta")
  lines = ["| test camera (focus, f-number) | " + " | ".join(m.name for m in models) + " |",
           "|---|" + "---:|" * len(models)]
  for row in cameras:
    values = [results[row.label][m.name]["per_image_mean"].get(metric) for m in models]
    finite = [v for v in values if v is not None and np.isfinite(v)]
    best = (max(finite) if higher_better else min(finite)) if finite else None
    cells = []
    for model, value in zip(models, values):
      marks = " (own)" if is_same_camera(model.own_camera, row.camera) else ""
      if in_training_range(model, row.camera) is False:
        marks += " †"
      cells.append(_cell(value, fmt, best is not None and value == best, marks))
    lines.append(f"| {row.label} | " + " | ".join(cells) + " |")
  return lines


def _goal_lines(checks: list[dict[str, Any]], results) -> list[str]:
  if not checks:
    return ["Goal check: needs a camera-aware and a single-camera model."]
  lines = []
  for check in checks:
    aware, single = check["camera_aware"], check["single_camera"]
    own, away = check["own_cameras"], check["other_cameras"]
    own_text = "; ".join(
        f"{label}: {_rel(results, label, aware):.3f} vs {_rel(results, label, single):.3f} "
        f"({'ok' if ok else 'FAIL'})" for label, ok in own.items()) or "not in the grid"
    lost = [label for label, ok in away.items() if not ok]
    verdict = {True: "PASS", False: "FAIL", None: "no verdict"}[check["passed"]]
    lines.append(f"* **{aware} vs {single}: {verdict}.** Own camera "
                 f"(within {OWN_CAMERA_TOLERANCE:.0%}): {own_text}. Other cameras: better on "
                 f"{len(away) - len(lost)}/{len(away)}"
                 + (f" (not on {'; '.join(lost)})" if lost else "") + ".")
  return lines


def markdown_report(report: dict[str, Any], models: Sequence[Model],
                    cameras: Sequence[TestCamera]) -> str:
  """The Markdown file: command line, date, legend, per dataset the tables and the goal check."""
  from d3tf import inference  # pylint: disable=g-import-not-at-top
  lines = ["# Camera mismatch: models on a grid of test cameras (issue 14)", "",
           f"Command (from the repository root): `{report['command_line']}`  ",
           f"Date: {report['date']} ({report['seconds'] / 60:.1f} min on this machine)  ",
           "Test cameras: " + report["grid_description"] + ". Each (camera, image) rendered once "
           "with the models' training render options (`d3tf.optics.render_defocus`, noise seed "
           f"{report['seed']} + batch) and fed to every model; a camera-aware model is also given "
           "the test camera, the others the rendered image only. Cells: rel (per-image mean, "
           f"ground truth in (0, {report['max_depth_m']:g}] m); **bold**: the best of the row; "
           "(own): the model's training camera; †: outside the model's training camera range.",
           "", "Models:", ""]
  for model in models:
    flipped = isinstance(model.predictor, inference.FlipAveragingPredictor)
    lines.append(f"* `{model.name}`: `{model.predictor.path}`: {model.describe()}"
                 + ("; each image's depth averaged with its mirror image's" if flipped else "")
                 + ".")
  for name, dataset in report["datasets"].items():
    results = dataset["results"]
    lines += ["", f"## {name}: {dataset['description']}", "",
              *markdown_table(results, models, cameras, "rel", ".3f"), "",
              "Goal (the camera-aware model within 10 % of each single-camera model on that "
              "model's camera, better than it on every other camera):", "",
              *_goal_lines(dataset["goal_check"], results)]
    for metric, title, fmt in TABLE_METRICS[1:]:
      lines += ["", f"{title}:", "", *markdown_table(results, models, cameras, metric, fmt)]
  return "\n".join(lines) + "\n"


# -------------------------------------------------------------------- run
def run(models: Sequence[Model], cameras: Sequence[TestCamera], test_sets: Sequence[TestSet], *,
        output: str, output_json: str | None = None, batch_size: int = 8, seed: int = 0,
        max_depth_m: float = 10.0, min_depth_m: float = 1e-3,
        command_line: str = "") -> dict[str, Any]:
  """Evaluates the grid on every test set; writes the Markdown and the JSON; returns the report."""
  from d3tf import atomic_io  # pylint: disable=g-import-not-at-top
  from d3tf.experiment import eval_lib  # pylint: disable=g-import-not-at-top
  started = time.time()
  report = {"command_line": command_line,
            "date": datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
            "grid_description": describe_grid(cameras), "seed": seed, "max_depth_m": max_depth_m,
            "min_depth_m": min_depth_m,
            "models": {m.name: {"path": m.predictor.path, "kind": m.kind,
                                "describe": m.describe(),
                                "camera": m.predictor.camera.to_dict()
                                if m.predictor.camera is not None else None,
                                "camera_range": m.camera_range.name if m.camera_range else None}
                       for m in models},
            "cameras": [{"label": row.label, "in_grid": row.in_grid, **row.camera.to_dict()}
                        for row in cameras],
            "datasets": {}}
  for test_set in test_sets:
    logging.info("Dataset %s: %s; %d cameras x %d models", test_set.name, test_set.description,
                 len(cameras), len(models))
    results = evaluate_set(test_set, models, cameras, batch_size=batch_size, seed=seed,
                           max_depth_m=max_depth_m, min_depth_m=min_depth_m)
    report["datasets"][test_set.name] = {
        "description": test_set.description, "results": results,
        "goal_check": goal_check(results, models, cameras)}
  report["seconds"] = round(time.time() - started, 1)
  report = eval_lib.json_ready(report)
  output_json = output_json or os.path.splitext(output)[0] + ".json"
  for path, text in ((output, markdown_report(report, models, cameras)),
                     (output_json, json.dumps(report, indent=2, allow_nan=False))):
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    atomic_io.write_text(path, text)
    logging.info("Wrote %s", os.path.abspath(path))
  return report


# ------------------------------------------------------------------ flags
def define_flags() -> dict[str, Callable[[], Any]]:
  """Defines the command-line flags (only when run as a script); returns their getters."""
  from absl import flags as f  # pylint: disable=g-import-not-at-top
  defined = {
      "model": f.DEFINE_multi_string("model", [], "NAME=PATH of a trained model (model_dir or "
                                     ".keras); repeat for each column."),
      "checkpoint": f.DEFINE_enum("checkpoint", "best", ["auto", "final", "best"],
                                  "Checkpoint of a model_dir."),
      "focus_m": f.DEFINE_list("focus_m", ["1", "2", "4", "8"], "Test focus distances (m)."),
      "f_numbers": f.DEFINE_list("f_numbers", ["2", "2.8", "5.6"], "Test f-numbers."),
      "focal_length_mm": f.DEFINE_float("focal_length_mm", 15.0, "Test cameras' focal length "
                                        "(mm; NYU: 15)."),
      "pixel_pitch_um": f.DEFINE_float("pixel_pitch_um", 5.6, "Test cameras' pixel pitch "
                                       "(um; NYU: 5.6)."),
      "add_model_cameras": f.DEFINE_bool("add_model_cameras", True, "Add each single-camera "
                                         "model's camera as a row if the grid lacks it."),
      "datasets": f.DEFINE_list("datasets", ["procedural", "nyu"], "Test sets: procedural, nyu."),
      "procedural_scenes": f.DEFINE_integer("procedural_scenes", 8, "Procedural scenes.",
                                            lower_bound=1),
      "procedural_split": f.DEFINE_enum("procedural_split", "test",
                                        ["train", "validation", "test"], "Procedural split."),
      "procedural_height": f.DEFINE_integer("procedural_height", 240, "Scene rows.",
                                            lower_bound=16),
      "procedural_width": f.DEFINE_integer("procedural_width", 320, "Scene columns.",
                                           lower_bound=16),
      "nyu_data_path": f.DEFINE_string("nyu_data_path", "../shared/data/nyuv2_train",
                                       "DenseDepth's NYU copy (<scene>_out/ folders)."),
      "nyu_scene": f.DEFINE_string("nyu_scene", "office_0011", "The (validation) scene."),
      "nyu_frame_stride": f.DEFINE_integer("nyu_frame_stride", 30, "Every N-th frame.",
                                           lower_bound=1),
      "nyu_frames": f.DEFINE_integer("nyu_frames", 8, "Frames scored.", lower_bound=1),
      "nyu_downscale": f.DEFINE_integer("nyu_downscale", 1, "Bin NYU frames by this factor "
                                        "(1: full 480x640).", lower_bound=1),
      "nyu_eigen_crop": f.DEFINE_bool("nyu_eigen_crop", True, "Score NYU inside the Eigen crop."),
      "batch_size": f.DEFINE_integer("batch_size", 8, "Images rendered and predicted together.",
                                     lower_bound=1),
      "seed": f.DEFINE_integer("seed", 0, "Seed of the render noise."),
      "max_depth_m": f.DEFINE_float("max_depth_m", 10.0, "Scored depth range (m)."),
      "output": f.DEFINE_string("output", "benchmarks/results/camera_mismatch.md",
                                "The Markdown file."),
      "output_json": f.DEFINE_string("output_json", None, "The JSON (default: beside --output)."),
      "flip_average": f.DEFINE_bool("flip_average", False, "Every model predicts each image and "
                                    "its mirror image, averaged (a second forward pass)."),
  }
  return defined


def _floats(name: str, values: Sequence[str]) -> list[float]:
  try:
    out = [float(v) for v in values]
  except ValueError:
    raise ValueError(f"--{name}={','.join(values)}: expected numbers") from None
  if not out:
    raise ValueError(f"--{name} is empty")
  return out


def main_with_flags(holders) -> dict[str, Any]:
  """Builds the run from the flags (after parsing) and runs it."""
  v = {name: holder.value for name, holder in holders.items()}
  if not v["model"]:
    raise ValueError("--model=NAME=PATH is required (repeat it for each model)")
  unknown = sorted(set(v["datasets"]) - {"procedural", "nyu"})
  if unknown or not v["datasets"]:
    raise ValueError(f"--datasets={','.join(v['datasets'])}: each must be procedural or nyu")
  focus, f_numbers = _floats("focus_m", v["focus_m"]), _floats("f_numbers", v["f_numbers"])
  cameras = grid_cameras(focus, f_numbers, v["focal_length_mm"], v["pixel_pitch_um"])
  test_sets = []  # Data first: a bad path fails before the slow model loads.
  if "procedural" in v["datasets"]:
    test_sets.append(procedural_set(v["procedural_scenes"], v["procedural_split"],
                                    v["procedural_height"], v["procedural_width"]))
  if "nyu" in v["datasets"]:
    test_sets.append(nyu_set(v["nyu_data_path"], v["nyu_scene"], v["nyu_frame_stride"],
                             v["nyu_frames"], v["nyu_downscale"], v["nyu_eigen_crop"]))
  models = load_models(v["model"], v["checkpoint"], v["flip_average"])
  if v["add_model_cameras"]:
    cameras = add_model_cameras(cameras, models)
  return run(models, cameras, test_sets, output=v["output"], output_json=v["output_json"],
             batch_size=v["batch_size"], seed=v["seed"], max_depth_m=v["max_depth_m"],
             command_line="TF_CPP_MIN_LOG_LEVEL=2 python " + " ".join(sys.argv))


if __name__ == "__main__":
  from absl import app  # pylint: disable=g-import-not-at-top
  sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))  # This d3tf.
  _HOLDERS = define_flags()

  def _main(argv):
    if len(argv) > 1:
      raise app.UsageError(f"Unexpected arguments: {argv[1:]}")
    try:
      main_with_flags(_HOLDERS)
    except (FileNotFoundError, ValueError) as e:
      raise app.UsageError(str(e)) from None

  app.run(_main)
