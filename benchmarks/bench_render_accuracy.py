"""Accuracy of the layered defocus renderer against the thin-lens ray tracer.

Every scene is made of textured opaque cards (d3tf.optics.reference.raytrace). The ray
tracer renders it twice: through the aperture centre (the all-in-focus image
and its depth map, which is all the layered renderer gets) and through the
whole aperture (the reference). The layered renderer's output is compared
with the reference, in PSNR (dB), over the whole image, in a band around
occlusion edges (pixels within the larger blur radius + 1 px of a depth
discontinuity) and away from it.

Scenes:
  step_far_focus   NYU camera focused at 4 m; a card at 1 m covers the left
                   half of the view in front of a background at 4 m (the near
                   card is blurred, the background sharp).
  step_near_focus  The mirror case: the same scene focused at 1 m (the near
                   card is sharp, the background blurred).
  cards_nyu        Three overlapping cards at 0.8, 1.5 and 4 m in front of a
                   background at 8 m, NYU camera focused at 2 m.
  cards_dslr       The same cards, Nikon D200 35 mm camera (f/2.8, focus 1.7 m).

For each scene and PSF (Gaussian, disk) it reports the paper mode and the
improved mode, then an ablation: the paper mode with one improvement switched
on at a time.

Usage (from the repository root):

  TF_CPP_MIN_LOG_LEVEL=2 python benchmarks/bench_render_accuracy.py \
      --output=benchmarks/results/render_accuracy.md
"""

from __future__ import annotations

import dataclasses
import datetime
import hashlib
import os
import subprocess
import sys
import time

from absl import app
from absl import flags
import numpy as np

from d3tf.optics import Camera
from d3tf.optics import psf as psf_lib
from d3tf.optics.reference import raytrace as rt
from d3tf.optics import render_defocus

_HEIGHT = flags.DEFINE_integer("height", 160, "Image rows.")
_WIDTH = flags.DEFINE_integer("width", 240, "Image columns.")
_SAMPLES = flags.DEFINE_integer("samples", 512, "Aperture samples of the ray tracer.")
_OUTPUT = flags.DEFINE_string("output", None, "Markdown file to write the results to.")
_SCENES = flags.DEFINE_list("scenes", None, "Subset of scenes to run (default: all).")
_ENGINES = flags.DEFINE_list(
    "engines", ["reference"], "Render engines (RenderOptions.engine) whose improved mode is "
    "compared in an extra table; the other tables use the first.")

PSFS = psf_lib.names()
#: Text after this line of the output file is kept when the benchmark re-runs.
_NOTES_MARKER = "<!-- notes: kept across re-runs -->"
#: Ablation: the paper mode with one improvement switched on at a time.
ABLATION = (
    ("paper", {"mode": "paper"}),
    ("+ blur-spaced soft slabs", {"mode": "paper", "layer_spacing": "blur"}),
    ("+ no dilation", {"mode": "paper", "dilation_px": 0}),
    ("+ normalised accumulation", {"mode": "paper", "normalize": True}),
    ("+ linear light", {"mode": "paper", "linear_light": True}),
    ("+ reflect borders", {"mode": "paper", "border": "reflect"}),
    ("improved (all)", {"mode": "improved"}),
)


@dataclasses.dataclass(frozen=True)
class Scene:
  name: str
  camera: Camera
  scene: rt.CardScene
  description: str


def _scenes(height: int, width: int) -> list[Scene]:
  """The benchmark scenes; textures have the image's size (texels on pixels)."""

  def texture(rgb, seed):
    return rt.random_texture(height, width, rgb, contrast=0.3, sigma_px=1.5, seed=seed)

  red, green, yellow, blue = (0.85, 0.25, 0.1), (0.2, 0.75, 0.25), (0.9, 0.85, 0.2), (0.15, 0.3, 0.85)
  step = rt.CardScene((rt.Card(1.0, texture(red, 1), rt.Rect(u_max=0.0)),
                       rt.Card(4.0, texture(blue, 2))))
  # Overlapping cards: a near rectangle over a mid disk over a far rectangle.
  h, w = height / 2.0, width / 2.0
  cards = rt.CardScene((
      rt.Card(0.8, texture(red, 3), rt.Rect(-0.75 * w, -0.15 * w, -0.1 * h, 0.8 * h)),
      rt.Card(1.5, texture(green, 4), rt.Disk(-0.1 * w, -0.1 * h, 0.45 * h)),
      rt.Card(4.0, texture(yellow, 5), rt.Rect(-0.05 * w, 0.7 * w, -0.7 * h, 0.35 * h)),
      rt.Card(8.0, texture(blue, 6)),
  ))
  return [
      Scene("step_far_focus", Camera.nyu(focus_distance_m=4.0), step,
            "NYU f/2.8 focus 4 m: card 1 m (left half) over background 4 m"),
      Scene("step_near_focus", Camera.nyu(focus_distance_m=1.0), step,
            "NYU f/2.8 focus 1 m: card 1 m (left half) over background 4 m"),
      Scene("cards_nyu", Camera.nyu(focus_distance_m=2.0), cards,
            "NYU f/2.8 focus 2 m: cards 0.8 / 1.5 / 4 m over background 8 m"),
      Scene("cards_dslr", Camera.dslr_d200_35mm(), cards,
            "D200 35 mm f/2.8 focus 1.7 m: cards 0.8 / 1.5 / 4 m over background 8 m"),
  ]


def _scores(image: np.ndarray, reference: np.ndarray, band: np.ndarray) -> tuple[float, float, float]:
  return (rt.psnr(image, reference), rt.psnr(image, reference, band),
          rt.psnr(image, reference, ~band))


def _fmt(value: float) -> str:
  return f"{value:.2f}"


def run(height: int, width: int, samples: int, scene_names=None, engines=("reference",)) -> str:
  """Runs the benchmark and returns its Markdown report (without the header)."""
  scenes = _scenes(height, width)
  if scene_names:
    unknown = sorted(set(scene_names) - {s.name for s in scenes})
    if unknown:
      raise ValueError(f"Unknown scenes {unknown}; known: {[s.name for s in scenes]}")
    scenes = [s for s in scenes if s.name in scene_names]

  main_rows = []
  losses = []
  ablation = {psf: {} for psf in PSFS}  # psf -> variant -> scene -> (all, band, away)
  scene_rows = []
  timings = {"ray tracer": 0.0, "layered": 0.0}
  engine_rows = []
  for scene in scenes:
    camera = scene.camera
    sharp, depth = rt.render_pinhole(scene.scene, camera, height, width)
    band = rt.occlusion_band(depth, camera)
    blur = {card.depth_m: camera.blur_diameter_px(card.depth_m) for card in scene.scene.cards}
    scene_rows.append(
        f"| {scene.name} | {scene.description} | "
        + ", ".join(f"{z:g} m: {b:.1f}" for z, b in blur.items())
        + f" | {100.0 * band.mean():.0f}% |")
    sharp32 = sharp.astype(np.float32)
    depth32 = depth.astype(np.float32)
    for psf in PSFS:
      start = time.perf_counter()
      reference = rt.render_thin_lens(scene.scene, camera, height, width, aperture=psf,
                                      num_samples=samples)
      timings["ray tracer"] += time.perf_counter() - start
      results = {}
      for label, options in ABLATION:
        start = time.perf_counter()
        out = render_defocus(sharp32, depth32, camera, psf=psf, engine=engines[0],
                             **options).numpy()
        timings["layered"] += time.perf_counter() - start
        results[label] = _scores(out, reference, band)
        ablation[psf].setdefault(label, {})[scene.name] = results[label]
        if label == "improved (all)":
          first = out
      for engine in engines[1:]:
        out = render_defocus(sharp32, depth32, camera, psf=psf, engine=engine).numpy()
        engine_rows.append(
            f"| {scene.name} | {psf} | {engine} | "
            + " | ".join(_fmt(v) for v in _scores(out, reference, band))
            + f" | {np.abs(out - first).max():.1e} | {np.abs(out - first).mean():.1e} |")
      paper, improved = results["paper"], results["improved (all)"]
      for region, i, p in zip(("all", "band", "away"), improved, paper):
        if not i > p:
          losses.append(f"- {scene.name}, {psf} PSF, {region}: improved {i:.2f} dB <= "
                        f"paper {p:.2f} dB")
      main_rows.append(
          f"| {scene.name} | {psf} | {_fmt(rt.psnr(sharp, reference))} | "
          + " | ".join(_fmt(v) for v in paper) + " | "
          + " | ".join(_fmt(v) for v in improved) + " | "
          + " | ".join(f"{i - p:+.2f}" for i, p in zip(improved, paper)) + " |")

  lines = ["## Scenes", "",
           f"{height}x{width} pixels, {samples} aperture samples per pixel (Vogel spiral; "
           "Gaussian aperture of per-axis std 0.3 A for the Gaussian PSF). "
           "Band: pixels within max(eps)/2 + 1 px of a depth discontinuity.", "",
           "| scene | setup | blur diameter eps (px) per card | band |",
           "|---|---|---|---|", *scene_rows, "",
           "## Paper mode vs improved mode (PSNR in dB against the ray tracer; higher is better)", "",
           "| scene | PSF | sharp input, all | paper, all | paper, band | paper, away "
           "| improved, all | improved, band | improved, away | gain, all | gain, band | gain, away |",
           "|---|---|---|---|---|---|---|---|---|---|---|---|", *main_rows, ""]
  if engine_rows:
    lines += [f"## Engines: improved mode (PSNR in dB against the ray tracer) and difference "
              f"to the {engines[0]} engine", "",
              f"Settings an engine does not cover (the disk PSF for fused and tiled) are "
              f"rendered by the reference engine.", "",
              "| scene | PSF | engine | all | band | away | max abs diff | mean abs diff |",
              "|---|---|---|---|---|---|---|---|", *engine_rows, ""]
  names = [s.name for s in scenes]
  for psf in PSFS:
    lines += [f"## Ablation, {psf} PSF: paper mode + one improvement (PSNR all / band, dB)", "",
              "| variant | " + " | ".join(names) + " |",
              "|---|" + "---|" * len(names)]
    for label, _ in ABLATION:
      cells = [f"{ablation[psf][label][n][0]:.2f} / {ablation[psf][label][n][1]:.2f}" for n in names]
      lines.append(f"| {label} | " + " | ".join(cells) + " |")
    lines.append("")
  lines += ["## Where the improved mode does not beat the paper mode", "",
            *(losses or ["- none"]), ""]
  lines.append(f"Time: ray tracer {timings['ray tracer']:.1f} s, layered renderer "
               f"{timings['layered']:.1f} s (eager, CPU).")
  return "\n".join(lines)


def _renderer_version() -> str:
  """The commit, and the hash of d3tf/optics/render.py (it may differ from the commit)."""
  root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
  path = os.path.join(root, "d3tf", "optics", "render.py")
  with open(path, "rb") as f:
    digest = hashlib.sha256(f.read()).hexdigest()[:12]
  commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=root, capture_output=True,
                          text=True, check=False).stdout.strip() or "unknown"
  changed = subprocess.run(["git", "diff", "--quiet", "HEAD", "--", "d3tf/optics"], cwd=root,
                           check=False).returncode != 0
  state = " + uncommitted changes in d3tf/optics" if changed else ""
  return f"commit {commit}{state}; render.py sha256 {digest}"


def main(argv):
  del argv
  start = time.perf_counter()
  report = run(_HEIGHT.value, _WIDTH.value, _SAMPLES.value, _SCENES.value, _ENGINES.value)
  elapsed = time.perf_counter() - start
  print(report)
  print(f"\nTotal {elapsed:.0f} s.")
  if _OUTPUT.value:
    command = "TF_CPP_MIN_LOG_LEVEL=2 python " + " ".join(
        [os.path.relpath(sys.argv[0])] + sys.argv[1:])
    date = subprocess.run(["date"], capture_output=True, text=True, check=False).stdout.strip()
    date = date or datetime.datetime.now().isoformat()
    header = ["# Layered renderer vs thin-lens ray tracer", "",
              f"Command: `{command}`", "", f"Date: {date}", "",
              f"Renderer: {_renderer_version()}", "",
              f"Total run time: {elapsed:.0f} s (2-core CPU, shared).", ""]
    os.makedirs(os.path.dirname(_OUTPUT.value) or ".", exist_ok=True)
    notes = ""  # Hand-written reading after the marker survives a re-run.
    if os.path.exists(_OUTPUT.value):
      with open(_OUTPUT.value) as f:
        previous = f.read()
      if _NOTES_MARKER in previous:
        notes = previous[previous.index(_NOTES_MARKER):]
    with open(_OUTPUT.value, "w") as f:
      f.write("\n".join(header) + report + "\n\n" + (notes or _NOTES_MARKER + "\n"))


if __name__ == "__main__":
  app.run(main)
