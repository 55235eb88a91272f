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
:mod:`d3tf.inference`) says whether it was trained on defocused images, and
with which camera. For datasets of all-in-focus images (procedural, NYU,
Middlebury, folder) the blur of that camera is rendered before predicting,
with the training PSF and renderer options; ``--camera`` (a preset, with
``--focal_length_mm --f_number --pixel_pitch_um --focus_distance_m``) overrides
(``none``: feed the sharp images). The real DFD photos are used as they are: for
a defocus model those whose f-number is nearest its camera's (``N2_8``, f/2.8,
real defocus, for the NYU camera), ``N8`` (nearly all-in-focus) for a sharp
one (``--dfd_aperture`` overrides). ``--dfd_val_views=N`` splits DFD's train
folder by capture time: ``--split=validation`` scores its latest N views
(those a training run with the same ``--dfd_val_views`` held out),
``--split=train`` the others.

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
  python -m d3tf.evaluate --model=runs/dfd_finetune_small_f2_8 --dataset=dfd \
      --data_path=../shared/data/dfd_indoor --dfd_aperture=N2_8 --split=validation \
      --dfd_val_views=16
  python -m d3tf.evaluate --model=runs/bayesian --samples=20 --ause_metric=rmse
  python -m d3tf.evaluate --model=runs/nyu_real_focus2m --dataset=nyu_densedepth \
      --data_path=../shared/data/nyuv2_train --split=validation --frame_stride=8
"""

from __future__ import annotations

from absl import app

from d3tf import flags as flags_lib

flags_lib.define_eval_flags()


def main(argv):
  if len(argv) > 1:
    raise app.UsageError(f"Unexpected arguments: {argv[1:]}")
  config = flags_lib.eval_config_from_flags()
  from d3tf.experiment import eval_lib  # pylint: disable=g-import-not-at-top
  try:
    eval_lib.run_evaluation(config)
  except (FileNotFoundError, ValueError) as e:
    raise flags_lib.usage_error(e) from None


if __name__ == "__main__":
  from d3tf import cli_errors  # pylint: disable=g-import-not-at-top
  cli_errors.run(main)
