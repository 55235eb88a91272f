"""Named experiment presets: name -> :class:`ExperimentConfig`, as data.

Each ``pipelines/NAME.flags`` has the preset ``NAME`` (a test holds that the
flagfile and the preset give the same config); ``--experiment=NAME`` starts
from it and any flag given on top overrides it::

  python -m d3tf.train --experiment=quickstart_procedural --epochs=1
  config = presets.get_preset("procedural480_focus2m_bandpass")

A preset is a nested dict of the fields that differ from the config's
defaults; :func:`register_preset` adds one.
"""

from __future__ import annotations

import copy
from typing import Any, Mapping

from d3tf.experiment import config as config_lib

_PRESETS: dict[str, dict[str, Any]] = {}


def register_preset(name: str, values: Mapping[str, Any], base: str | None = None) -> None:
  """Registers preset ``name``: ``values`` (nested dict) on top of ``base`` (a preset name)."""
  if name in _PRESETS:
    raise ValueError(f"preset {name!r} is already registered")
  merged = copy.deepcopy(_PRESETS[base]) if base is not None else {}
  for section, fields in values.items():
    merged.setdefault(section, {}).update(fields)
  config_lib.ExperimentConfig.from_dict(merged)  # Validates it now.
  _PRESETS[name] = merged


def register_seeds(base: str, seeds) -> None:
  """Registers ``{base}_seed{N}``: preset ``base`` with ``training.seed=N``, for each of ``seeds``."""
  for seed in seeds:
    register_preset(f"{base}_seed{seed}", {"training": {"seed": seed}}, base=base)


def preset_names() -> tuple[str, ...]:
  return tuple(_PRESETS)


def get_preset(name: str) -> config_lib.ExperimentConfig:
  """A fresh :class:`ExperimentConfig` of preset ``name`` (ValueError naming the known ones)."""
  if name not in _PRESETS:
    raise ValueError(f"unknown experiment preset {name!r}; known: {', '.join(_PRESETS)}")
  return config_lib.ExperimentConfig.from_dict(copy.deepcopy(_PRESETS[name]))


# The default run of `python -m d3tf.train` (no flags): the quick start.
register_preset("default", {})
register_preset("quickstart_procedural", {
    "data": {"dataset": "procedural", "crop_size": 128, "batch_size": 8},
    "camera": {"preset": "nyu", "focus_distance_m": 2.0},
    "render": {"input": "defocus"},
    "model": {"size": "small"},
    "training": {"epochs": 3, "steps_per_epoch": 100, "validation_steps": 4},
})

# The base of the recorded hyperparameter search (pipelines/tune_procedural.flags, whose
# --tune_* flags give the space; benchmarks/results/tune_procedural.md): the quick start's
# defaults (Adam 2e-4, L1, RGB input) on a budget of 3 epochs of 40 steps.
register_preset("tune_procedural", {
    # Recorded without the scene pool (it came later): one fresh scene per example.
    "data": {"dataset": "procedural", "crop_size": 128, "batch_size": 8, "scene_pool_size": 0},
    "camera": {"preset": "nyu", "focus_distance_m": 2.0},
    "render": {"input": "defocus"},
    "model": {"size": "small"},
    "training": {"epochs": 3, "steps_per_epoch": 40, "validation_steps": 8,
                 "save_every_steps": 40, "log_every_steps": 20},
})

# The CPU experiments on the endless procedural stream (README experiment A).
_PROCEDURAL = {
    # Recorded without the scene pool (it came later): one fresh scene per example (the pool
    # does not draw per-example cameras either, for procedural_anycamera below).
    "data": {"dataset": "procedural", "crop_size": 128, "batch_size": 8, "scene_pool_size": 0},
    "model": {"size": "small"},
    "training": {"epochs": 30, "steps_per_epoch": 100, "validation_steps": 8,
                 "learning_rate": 1e-3, "beta1": 0.5, "loss": "l1", "seed": 0,
                 "save_every_steps": 100, "log_every_steps": 50},
}
register_preset("procedural_aif", {**_PROCEDURAL, "render": {"input": "sharp"}})
register_preset("procedural_focus2m", {
    **_PROCEDURAL, "render": {"input": "defocus"},
    "camera": {"preset": "nyu", "focus_distance_m": 2.0}})

# The 480x640 procedural TFRecords (README experiments B-D).
_PROCEDURAL480 = {
    "data": {"dataset": "tfrecord", "data_path": "data/procedural_480x640/train-*.tfrecord",
             "val_data_path": "data/procedural_480x640/validation-*.tfrecord",
             "crop_size": 128, "batch_size": 8},
    "model": {"size": "small"},
    "training": {"epochs": 40, "steps_per_epoch": 100, "validation_steps": 8,
                 "learning_rate": 1e-3, "beta1": 0.5, "loss": "l1", "seed": 0,
                 "save_every_steps": 100, "log_every_steps": 50},
}
register_preset("procedural480_aif", {**_PROCEDURAL480, "render": {"input": "sharp"}})
register_preset("procedural480_focus2m", {
    **_PROCEDURAL480, "render": {"input": "defocus"},
    "camera": {"preset": "nyu", "focus_distance_m": 2.0}})
register_preset("procedural480_focus8m", {
    **_PROCEDURAL480, "render": {"input": "defocus"},
    "camera": {"preset": "nyu", "focus_distance_m": 8.0}})
register_preset("procedural480_aif_bandpass", {
    "model": {"input_features": "rgb+bandpass"}}, base="procedural480_aif")
register_preset("procedural480_focus2m_bandpass", {
    "model": {"input_features": "rgb+bandpass"}}, base="procedural480_focus2m")
register_preset("procedural480_aif_bandpass_laplace", {
    "model": {"aleatoric": "laplace"}}, base="procedural480_aif_bandpass")
register_preset("procedural480_focus2m_bandpass_laplace", {
    "model": {"aleatoric": "laplace"}}, base="procedural480_focus2m_bandpass")
register_preset("procedural480_focus2m_bandpass_8bit", {
    "render": {"bits": 8}}, base="procedural480_focus2m_bandpass")

# NYUv2 (the paper's 795 labelled training images).
_NYU = {
    "data": {"dataset": "nyu_mat", "data_path": "data/nyuv2/nyu_depth_v2_labeled.mat",
             "crop_size": 256, "batch_size": 8, "flips": True},
    "model": {"size": "full"},
    "training": {"epochs": 200, "validation_steps": 20, "learning_rate": 2e-4, "beta1": 0.5,
                 "loss": "l1", "seed": 0},
}
register_preset("nyuv2_aif", {**_NYU, "render": {"input": "sharp"}})
for _focus in (2, 4, 8):
  register_preset(f"nyuv2_focus{_focus}m", {
      **_NYU, "render": {"input": "defocus", "psf": "gaussian"},
      "camera": {"preset": "nyu", "focus_distance_m": float(_focus)}})
register_preset("dfd_pretrain_nyuv2", {
    **_NYU, "render": {"input": "defocus"}, "camera": {"preset": "dslr"}})
register_preset("dfd_finetune", {
    "data": {"dataset": "dfd", "data_path": "../shared/data/dfd_indoor", "crop_size": 256,
             "batch_size": 8, "flips": True},
    "model": {"size": "full"},
    "training": {"epochs": 100, "validation_steps": 4, "learning_rate": 2e-4, "beta1": 0.5,
                 "loss": "l1", "seed": 0, "init_from": "runs/dfd_pretrain_nyuv2"},
})

# Real NYU frames (DenseDepth's layout, split by scene), small D3-Net + band-pass stem.
_NYU_REAL = {
    "data": {"dataset": "nyu_densedepth", "data_path": "../shared/data/nyuv2_train",
             "val_scenes": ["office_0011"], "mix_procedural": 0.0, "crop_size": 128,
             "batch_size": 8},
    "model": {"size": "small", "input_features": "rgb+bandpass"},
    "training": {"epochs": 8, "steps_per_epoch": 200, "validation_steps": 2,
                 "learning_rate": 1e-3, "beta1": 0.5, "loss": "l1", "seed": 0,
                 "save_every_steps": 100, "log_every_steps": 50},
}
register_preset("nyu_real_aif", {
    **_NYU_REAL, "render": {"input": "sharp"}, "camera": {"preset": "nyu",
                                                         "focus_distance_m": 2.0}})
for _focus in (2, 8):
  register_preset(f"nyu_real_focus{_focus}m", {
      **_NYU_REAL, "render": {"input": "defocus"},
      "camera": {"preset": "nyu", "focus_distance_m": float(_focus)}})
# Procedural pre-training for the procinit arms: the same network, camera and budget on
# procedural scenes generated on the fly (scene pool on), then the real-frame budget.
# The pool and renderer settings of the recorded runs (before the defaults became 64 crops per
# scene and the tiled engine for the pool's windows) are kept, so that the recorded figures
# reproduce.
register_preset("nyu_real_procpretrain_aif", {
    **_NYU_REAL, "data": {"dataset": "procedural", "crop_size": 128, "batch_size": 8,
                          "scene_reuse": 32},
    "render": {"input": "sharp", "engine": "reference"},
    "training": {**_NYU_REAL["training"], "validation_steps": 4},
    "camera": {"preset": "nyu", "focus_distance_m": 2.0}})
register_preset("nyu_real_procpretrain_focus2m", {"render": {"input": "defocus"}},
                base="nyu_real_procpretrain_aif")
for _twin in ("aif", "focus2m"):
  register_preset(f"nyu_real_{_twin}_mix50", {"data": {"mix_procedural": 0.5}},
                  base=f"nyu_real_{_twin}")
  register_preset(f"nyu_real_{_twin}_procinit", {
      "training": {"init_from": f"runs/nyu_real_procpretrain_{_twin}"}},
      base=f"nyu_real_{_twin}")
for _twin in ("aif", "focus2m", "focus8m"):
  register_seeds(f"nyu_real_{_twin}", (1,))
register_seeds("nyu_real_procpretrain_focus2m", (1,))
register_preset("nyu_real_focus2m_procinit_seed1", {
    "training": {"seed": 1, "init_from": "runs/nyu_real_procpretrain_focus2m_seed1"}},
    base="nyu_real_focus2m_procinit")

# Camera-aware (docs/any_camera.md): each example rendered with a camera drawn from the
# "anycamera" range, the camera an input of the model; NYU at focus 2 m stays its default.
register_preset("procedural_anycamera", {
    **_PROCEDURAL, "render": {"input": "defocus"},
    "camera": {"preset": "nyu", "focus_distance_m": 2.0, "range": "anycamera"},
    "model": {"size": "small", "input_features": "rgb+bandpass", "camera_aware": True}})
register_preset("nyu_real_anycamera", {
    "data": {"mix_procedural": 0.5}, "camera": {"range": "anycamera"},
    "model": {"camera_aware": True}}, base="nyu_real_focus2m")
# Twice the budget: continued from nyu_real_anycamera's best.keras with fresh draws.
register_preset("nyu_real_anycamera_long", {
    "training": {"seed": 1, "init_from": "runs/nyu_real_anycamera"}}, base="nyu_real_anycamera")
# Third stage: from the second's best.keras, 2,400 steps at the paper's learning rate (2e-4).
register_preset("nyu_real_anycamera_finetune", {
    "training": {"seed": 2, "init_from": "runs/nyu_real_anycamera_long/best.keras",
                 "learning_rate": 2e-4, "epochs": 12}}, base="nyu_real_anycamera")
# Stochastic weight averaging: from the weight average of the second and third stages' models
# (pipelines/average/nyu_real_anycamera_average.flags), 8 epochs at 2e-4 keeping every epoch's
# model, to be averaged in turn.
register_preset("nyu_real_anycamera_swa", {
    "training": {"seed": 3, "init_from": "runs/nyu_real_anycamera_average",
                 "learning_rate": 2e-4, "epochs": 8, "keep_epoch_models": True}},
                base="nyu_real_anycamera")

# The SWA run's twin with the NYU family widened to f/2-f/5.6 (range "anycamera_wide"): the
# mismatch grid's f/2 and f/5.6 cells of the NYU lens lay outside "anycamera".
register_preset("nyu_real_anycamera_wide", {"camera": {"range": "anycamera_wide"}},
                base="nyu_real_anycamera_swa")

# The shipped camera-aware model (d3tf_anycamera/3, read back from its export) trained on for
# 12 epochs x 200 steps = 2,400 steps with the learning rate decaying from 5e-4 to zero along a
# cosine, fresh data seed, every epoch's model kept: the DFD fine-tuning kept gaining long after
# its validation looked flat, and a decayed rate ends where the constant one kept swinging.
register_preset("nyu_real_anycamera_cosine", {
    "training": {"seed": 4, "init_from": "savedmodels/d3tf_anycamera/3", "learning_rate": 5e-4,
                 "lr_schedule": "cosine", "epochs": 12, "keep_epoch_models": True}},
                base="nyu_real_anycamera")
register_seeds("nyu_real_anycamera_cosine", (5,))
# The cosine runs gained on procedural scenes and lost on real frames: from the same start, a
# shorter decay (6 epochs from 2e-4) on a stream of 80 % real frames instead of 50 %.
register_preset("nyu_real_anycamera_realmix", {
    "data": {"mix_procedural": 0.2},
    "training": {"seed": 6, "init_from": "savedmodels/d3tf_anycamera/3", "learning_rate": 2e-4,
                 "lr_schedule": "cosine", "epochs": 6}}, base="nyu_real_anycamera")
register_seeds("nyu_real_anycamera_realmix", (7,))
# The real-mix runs' twins but for the camera range: "anycamera_weighted" draws the NYU and DSLR
# families 0.4 each (0.3 in "anycamera"), phones and mirrorless 0.1 each (0.2), for the cells
# still lost to a specialist (the DSLR's camera on real frames, NYU focus 8 m).
register_preset("nyu_real_anycamera_weighted", {"camera": {"range": "anycamera_weighted"}},
                base="nyu_real_anycamera_realmix")
register_seeds("nyu_real_anycamera_weighted", (7,))
# Capacity, two arms identical but for the network: camera-aware from scratch, 28 epochs x 200 =
# 5,600 steps (the shipped model's three stages together) with the rate decaying from 1e-3 to
# zero along a cosine, every epoch's model kept; the small D3-Net (0.75 M parameters) or the
# medium one (2.1 M, still well under the 20 MB a shipped model may take).
for _size in ("small", "medium"):
  register_preset(f"nyu_real_anycamera_{_size}_cosine", {
      "model": {"size": _size},
      "training": {"epochs": 28, "lr_schedule": "cosine", "keep_epoch_models": True}},
                  base="nyu_real_anycamera")
# Continuations on one family each, to be averaged with their start ("model soups" of runs
# specialised from one model): the real-mix runs' twins but for the range, "dfd_dslr" (the DFD
# DSLR, f/2-f/8, focus 1-3 m) or "nyu" (the NYU camera, focus 1-8 m); the model stays camera-aware.
for _family in ("dfd_dslr", "nyu"):
  register_preset(f"nyu_real_anycamera_only_{_family}", {"camera": {"range": _family}},
                  base="nyu_real_anycamera_realmix")
  register_seeds(f"nyu_real_anycamera_only_{_family}", (7,))

# Issue 13, making the 2 m model read blur: the re-blur ratio stem instead of the band-pass one.
register_preset("nyu_real_focus2m_reblur", {"model": {"input_features": "rgb+reblur"}},
                base="nyu_real_focus2m")
register_preset("nyu_real_focus2m_logl1", {"training": {"loss": "log_l1"}},
                base="nyu_real_focus2m")
for _twin in ("aif", "focus2m"):
  register_seeds(f"nyu_real_{_twin}", (2,))

# Issue 14, the DFD protocol at CPU scale (docs/experiments.md): the small D3-Net (band-pass stem)
# pre-trained with the DSLR's blur on real NYU frames and procedural scenes, then fine-tuned on
# the real DFD photos of the same aperture, the 16 latest views held out by capture time.
_DFD_SMALL = {"model": {"size": "small", "input_features": "rgb+bandpass"}}
# Six times the fine-tuning (2,400 steps, about 300 passes over the 65 views; the paper ran
# 3,000 epochs), best.keras still chosen on the 16 held-out views.
_DFD_LONG_FINETUNE = {"training": {"epochs": 12, "steps_per_epoch": 200, "save_every_steps": 200}}
for _arm, _aperture, _f_number in (("f2_8", "N2_8", 2.8), ("f8", "N8", 8.0)):
  register_preset(f"dfd_pretrain_small_{_arm}", {
      **_NYU_REAL, **_DFD_SMALL, "data": {**_NYU_REAL["data"], "mix_procedural": 0.5},
      "render": {"input": "defocus"}, "camera": {"preset": "dslr", "f_number": _f_number}})
  register_preset(f"dfd_finetune_small_{_arm}", {
      **_DFD_SMALL,
      "data": {"dataset": "dfd", "data_path": "../shared/data/dfd_indoor",
               "dfd_aperture": _aperture, "dfd_val_views": 16, "crop_size": 128,
               "batch_size": 8, "flips": True},
      "training": {"epochs": 4, "steps_per_epoch": 100, "validation_steps": 2,
                   "learning_rate": 3e-4, "beta1": 0.5, "loss": "l1", "seed": 0,
                   "save_every_steps": 100, "log_every_steps": 50,
                   "init_from": f"runs/dfd_pretrain_small_{_arm}"}})
  register_seeds(f"dfd_finetune_small_{_arm}", (1,))
  # The real f/2.8 blur fits a disk a little better than the Gaussian in 77 % of patches
  # (benchmarks/results/dfd_protocol.md): both arms again, pre-trained with the disk PSF.
  register_preset(f"dfd_pretrain_small_{_arm}_disk", {"render": {"psf": "disk"}},
                  base=f"dfd_pretrain_small_{_arm}")
  register_preset(f"dfd_finetune_small_{_arm}_disk", {
      "training": {"init_from": f"runs/dfd_pretrain_small_{_arm}_disk"}},
                  base=f"dfd_finetune_small_{_arm}")
  register_seeds(f"dfd_finetune_small_{_arm}_disk", (1, 2, 3))
  register_preset(f"dfd_finetune_small_{_arm}_disk_long", _DFD_LONG_FINETUNE,
                  base=f"dfd_finetune_small_{_arm}_disk")
  register_seeds(f"dfd_finetune_small_{_arm}_disk_long", (1,))
  register_preset(f"dfd_finetune_small_{_arm}_disk_long_cosine", {
      "training": {"lr_schedule": "cosine"}}, base=f"dfd_finetune_small_{_arm}_disk_long")
  # Both arms fine-tuned from the camera-aware model (d3tf_anycamera/3, which saw the DSLR at
  # f/2-f/8 in training) instead of a single-camera pre-training; the photos' camera its input.
  register_preset(f"dfd_finetune_anycamera_{_arm}", {
      "model": {"camera_aware": True},
      "training": {"init_from": "runs/nyu_real_anycamera_average"}},
                  base=f"dfd_finetune_small_{_arm}")
  register_seeds(f"dfd_finetune_anycamera_{_arm}", (1, 2, 3))
  register_preset(f"dfd_finetune_anycamera_{_arm}_long", _DFD_LONG_FINETUNE,
                  base=f"dfd_finetune_anycamera_{_arm}")
  register_seeds(f"dfd_finetune_anycamera_{_arm}_long", (1, 2))
  # Twice that again (24 epochs, 4,800 steps): the f/2.8 arm's best models came at the end of
  # the 2,400. Same seeds, so the first 2,400 steps are the _long runs' (docs/experiments.md).
  register_preset(f"dfd_finetune_anycamera_{_arm}_xlong", {"training": {"epochs": 24}},
                  base=f"dfd_finetune_anycamera_{_arm}_long")
  register_seeds(f"dfd_finetune_anycamera_{_arm}_xlong", (1, 2))
  # 2,400 steps more (36 epochs, 7,200 steps) keeping each epoch's model: the last 12 (the
  # steps beyond _xlong) are averaged, as decided before the runs (pipelines/average/).
  register_preset(f"dfd_finetune_anycamera_{_arm}_xxlong", {
      "training": {"epochs": 36, "keep_epoch_models": True}},
                  base=f"dfd_finetune_anycamera_{_arm}_xlong")
  register_seeds(f"dfd_finetune_anycamera_{_arm}_xxlong", (1, 2))
  # 2,400 steps more again (48 epochs, 9,600 steps): does the gap keep widening? (seed 0)
  register_preset(f"dfd_finetune_anycamera_{_arm}_xxxlong", {"training": {"epochs": 48}},
                  base=f"dfd_finetune_anycamera_{_arm}_xxlong")
