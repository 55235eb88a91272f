r"""Why defocus at focus 2 m helps less than at 8 m on real NYU frames (issue 13).

Two parts, on the 10 official NYU test images (``nyu_png``, Eigen crop, ground
truth in (0, 10] m):

1. Optics alone (no model): the blur-circle diameter of the NYU camera
   (15 mm, f/2.8, 5.6 um) at each depth for focus 2 m and 8 m, and the share
   of test pixels where blur says little or nothing: below 1 px (near the
   focal plane) and two-sided ambiguous (some depth on the other side of the
   focal plane, within 0.5-10 m, has the same blur; a Gaussian or disk PSF is
   the same in front of and behind the focus).
2. Models (``name=model_dir[:checkpoint][@none]``; ``@none`` feeds the
   all-in-focus images, otherwise the model's own camera is rendered as
   ``d3tf.evaluate`` does): pixel-weighted rel in front of and behind the
   focal plane, the share of pixels predicted on the wrong side of 2 m (among
   those with >= 1 px blur), and rel inside the two-sided ambiguous region.

::

  python benchmarks/diag_nyu_focus2m.py --data_path=../shared/data/nyuv2_samples \
      aif=runs/nyu_real_aif:best f2=runs/nyu_real_focus2m:best \
      f2_sharp=runs/nyu_real_focus2m:best@none
"""

from __future__ import annotations

import argparse
import json

import numpy as np

FOCAL_PLANE_M = 2.0
NEAREST_M = 0.5
FARTHEST_M = 10.0


def _samples(data_path):
  from d3tf.data import registry  # pylint: disable=g-import-not-at-top
  from d3tf.data.readers import eigen_crop_mask  # pylint: disable=g-import-not-at-top
  reader = registry.make_reader("nyu_png", data_path, "all", missing_splits="all")
  images, depths = [], []
  for _, image, depth in reader.iter_samples():
    images.append(image)
    depths.append(depth)
  depths = np.stack(depths)
  valid = eigen_crop_mask(*depths.shape[1:])[None] & np.isfinite(depths) & (depths > 0) & (
      depths <= FARTHEST_M)
  return np.stack(images), depths, valid


def _ambiguous(camera, depth):
  """True where a depth on the other side of the focal plane, in 0.5-10 m, blurs alike."""
  blur = camera.blur_diameter_px(depth)
  near = depth < camera.focus_distance_m
  return np.where(near, blur <= camera.blur_diameter_px(FARTHEST_M),
                  blur <= camera.blur_diameter_px(NEAREST_M))


def optics_table(depths, valid):
  from d3tf.optics import Camera  # pylint: disable=g-import-not-at-top
  d = depths[valid]
  out = {"test_pixels": int(d.size), "depth_quantiles_m": {
      q: round(float(np.quantile(d, q)), 3) for q in (0.1, 0.25, 0.5, 0.75, 0.9)}}
  grid = [0.5, 1.0, 1.5, 2.0, 2.5, 3.0, 4.0, 5.0, 6.0, 8.0, 10.0]
  for focus in (2.0, 8.0):
    cam = Camera.nyu(focus)
    blur = cam.blur_diameter_px(d)
    out[f"focus_{focus:g}m"] = {
        "blur_diameter_px": {f"{x:g}": round(float(cam.blur_diameter_px(x)), 2) for x in grid},
        "share_blur_below_1px": round(float(np.mean(blur < 1.0)), 3),
        "share_in_front_of_focus": round(float(np.mean(d < focus)), 3),
        "share_two_sided_ambiguous": round(float(np.mean(_ambiguous(cam, d))), 3),
        "median_blur_px": round(float(np.median(blur)), 2),
    }
  return out


def model_rows(specs, images, depths, valid, batch_size=4):
  import tensorflow as tf  # pylint: disable=g-import-not-at-top
  from d3tf import inference  # pylint: disable=g-import-not-at-top
  from d3tf.optics import Camera, render_defocus  # pylint: disable=g-import-not-at-top
  cam2 = Camera.nyu(FOCAL_PLANE_M)
  rows = {}
  for spec in specs:
    name, path = spec.split("=", 1)
    sharp = path.endswith("@none")
    path = path[:-len("@none")] if sharp else path
    path, _, checkpoint = path.partition(":")
    predictor = inference.load_predictor(path, checkpoint=checkpoint or "auto")
    camera = None if sharp else predictor.camera
    preds = []
    for k in range(0, len(images), batch_size):
      batch = images[k:k + batch_size]
      if camera is not None:
        batch = render_defocus(tf.constant(batch, tf.float32) / 255.0, depths[k:k + batch_size],
                               camera, seed=k // batch_size,
                               **predictor.metadata.render_kwargs()).numpy()
      preds.append(predictor.predict(batch)["depth"])
    pred = np.clip(np.concatenate(preds), 1e-3, FARTHEST_M)
    gt, p = depths[valid], pred[valid]
    rel = np.abs(p - gt) / gt
    near = gt < FOCAL_PLANE_M
    blurred = cam2.blur_diameter_px(gt) >= 1.0
    wrong = (p < FOCAL_PLANE_M) != near
    amb = _ambiguous(cam2, gt)
    rows[name] = {
        "model": path, "checkpoint": checkpoint or "auto",
        "input": "sharp" if camera is None else f"defocus {camera.focus_distance_m:g} m",
        "rel_pixel_weighted": round(float(rel.mean()), 3),
        "rel_in_front_of_2m": round(float(rel[near].mean()), 3),
        "rel_behind_2m": round(float(rel[~near].mean()), 3),
        "mean_signed_error_in_front_m": round(float((p - gt)[near].mean()), 3),
        "mean_signed_error_behind_m": round(float((p - gt)[~near].mean()), 3),
        "wrong_side_of_2m_where_blur_ge_1px": round(float(wrong[blurred].mean()), 3),
        "wrong_side_in_front": round(float(wrong[blurred & near].mean()), 3),
        "wrong_side_behind": round(float(wrong[blurred & ~near].mean()), 3),
        "rel_two_sided_ambiguous": round(float(rel[amb].mean()), 3),
        "rel_not_ambiguous": round(float(rel[~amb].mean()), 3) if (~amb).any() else None,
    }
  return rows


def main() -> None:
  parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
  parser.add_argument("--data_path", required=True, help="nyuv2_samples (nyu_png layout)")
  parser.add_argument("--output_json", default=None)
  parser.add_argument("models", nargs="*", help="name=model_dir[:checkpoint][@none]")
  args = parser.parse_args()
  images, depths, valid = _samples(args.data_path)
  report = {"optics": optics_table(depths, valid), "models": model_rows(args.models, images,
                                                                        depths, valid)}
  text = json.dumps(report, indent=2)
  if args.output_json:
    with open(args.output_json, "w") as f:
      f.write(text + "\n")
  print(text)


if __name__ == "__main__":
  main()
