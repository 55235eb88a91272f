"""Scale-out on tf.distribute and tf.data service (docs/scale_out.md), on this CPU.

* MirroredStrategy over 2 logical CPU devices trains like one device on the
  same global batch (a subprocess: the logical split must precede TF's
  device initialisation, which the pytest process has already done);
* MultiWorkerMirroredStrategy, 2 local processes on 127.0.0.1: one worker
  killed mid-run; a collective cannot go on without it, so, as documented,
  the whole cluster restarts and resumes from the chief's saved state; both
  workers end with identical weights;
* an in-process tf.data service dispatcher and worker yield the local
  pipeline's examples;
* mixed precision: a step under mixed_bfloat16, the heads' outputs in float32.
"""

import json
import os
import pathlib
import signal
import socket
import subprocess
import sys
import time

from absl import flags
from absl.testing import flagsaver
import numpy as np
import pytest

from d3tf import flags as flags_lib
from d3tf.experiment import config as config_lib
from d3tf.experiment import distribute_lib
from d3tf.experiment import task as task_lib

_REPO = pathlib.Path(__file__).resolve().parents[1]
_WORKER = str(_REPO / "tests" / "distribute_worker.py")
flags_lib.define_training_flags()


def _env(**extra):
  env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2", **extra)
  env["PYTHONPATH"] = os.pathsep.join([str(_REPO), env.get("PYTHONPATH", "")])
  return env


def _result(stdout: str) -> dict:
  return json.loads([line for line in stdout.splitlines() if line.startswith("{")][-1])


def _tiny(**runtime) -> config_lib.ExperimentConfig:
  return config_lib.ExperimentConfig().replace(
      data={"crop_size": 32, "batch_size": 2}, model={"size": "tiny"},
      training={"seed": 3, "validation_steps": 0}, runtime=runtime)


def test_strategy_flag_and_its_old_name():
  with flagsaver.flagsaver():
    for args in (["--strategy=mirrored"], ["--distribution_strategy=mirrored"]):
      flags.FLAGS.unparse_flags()
      flags.FLAGS(["train", *args, "--precision=mixed_bfloat16"])
      runtime = flags_lib.experiment_config_from_flags().runtime
      assert (runtime.distribution_strategy, runtime.precision) == ("mirrored",
                                                                    "mixed_bfloat16")


def test_multi_worker_without_tf_config_is_named():
  with pytest.raises(ValueError, match="TF_CONFIG"):
    distribute_lib.check_tf_config({})
  with pytest.raises(ValueError, match="cluster"):
    distribute_lib.check_tf_config({"TF_CONFIG": '{"task": {}}'})


def test_mixed_bfloat16_step_is_finite_with_float32_head_outputs():
  import keras  # pylint: disable=g-import-not-at-top
  task = task_lib.DepthTask(_tiny(precision="mixed_bfloat16").replace(
      model={"aleatoric": "laplace", "variational_blocks": [5]}))
  with distribute_lib.precision_policy("mixed_bfloat16"):
    model = task.build_model()
  assert keras.config.dtype_policy().name == "float32"  # Restored after the build.
  model.compile(optimizer=task.build_optimizer(), loss=task.build_losses())
  x, y = next(iter(task.build_inputs("train")))
  logs = model.train_on_batch(x, y, return_dict=True)
  assert np.isfinite(logs["loss"]) and np.isfinite(logs["kl"]) and logs["kl"] > 0
  out = model(x, training=False)
  assert out["depth"].dtype == "float32" and out["log_scale"].dtype == "float32"
  assert model.get_layer("decoder5_conv").compute_dtype == "bfloat16"
  # The heads convolve in bfloat16 (no float32 copy of the full-resolution features) and
  # compute the rest in float32.
  for name in ("depth_conv", "log_scale_conv"):
    layer = model.get_layer(name)
    assert layer.compute_dtype == "bfloat16" and layer.kernel.dtype == "float32"
  for name in ("depth_sigmoid", "depth", "log_scale"):
    assert model.get_layer(name).compute_dtype == "float32"
  with distribute_lib.precision_policy("mixed_float16"):
    half = task.build_model()
  half.compile(optimizer=task.build_optimizer(), loss=task.build_losses())
  assert isinstance(half.optimizer, keras.optimizers.LossScaleOptimizer)  # Dynamic scaling.


@pytest.mark.slow
@pytest.mark.long  # Not in the default run (pytest.ini): python -m pytest -m long.
def test_mirrored_on_two_cpu_devices_matches_one_device(tmp_path):
  # 3 steps (epochs of 1 step) of a plain and of a Bayesian model (Laplace NLL + KL), global
  # batch 4: one device vs 2 replicas of 2 examples. A loss term not divided by the replicas
  # would show as a factor 2 in the logged loss and in the step size.
  run = subprocess.run([sys.executable, _WORKER, "compare", str(tmp_path)], cwd=_REPO,
                       env=_env(), capture_output=True, text=True, timeout=2400)
  assert run.returncode == 0, run.stderr[-4000:]
  result = _result(run.stdout)
  assert result["replicas"] == 2
  plain_one, plain_two = result["plain_default"], result["plain_mirrored"]
  assert len(plain_one["losses"]) == 3
  np.testing.assert_allclose(plain_two["losses"], plain_one["losses"], rtol=1e-4)
  bayes_one, bayes_two = result["bayes_default"], result["bayes_mirrored"]
  np.testing.assert_allclose(bayes_two["kl"], bayes_one["kl"], rtol=1e-4)
  # The variational layer draws its own noise per replica (posterior std 1e-6): looser.
  np.testing.assert_allclose(bayes_two["losses"], bayes_one["losses"], rtol=1e-3)
  np.testing.assert_allclose(bayes_two["nll"], bayes_one["nll"], rtol=1e-3)


def _free_ports(n):
  sockets = [socket.socket() for _ in range(n)]
  for s in sockets:
    s.bind(("127.0.0.1", 0))
  ports = [s.getsockname()[1] for s in sockets]
  for s in sockets:
    s.close()
  return ports


def _cluster(model_dir, ports, steps):
  workers = [f"127.0.0.1:{p}" for p in ports]
  processes = []
  for index in range(len(workers)):
    tf_config = json.dumps({"cluster": {"worker": workers},
                            "task": {"type": "worker", "index": index}})
    processes.append(subprocess.Popen(
        [sys.executable, _WORKER, "multi_worker", str(model_dir), "1", str(steps), "2"],
        cwd=_REPO, env=_env(TF_CONFIG=tf_config), stdout=subprocess.PIPE,
        stderr=subprocess.PIPE, text=True))
  return processes


def _global_step(model_dir):
  try:
    return json.loads((model_dir / "backup" / "state.json").read_text())["global_step"]
  except (OSError, ValueError, KeyError):
    return 0


@pytest.mark.slow
@pytest.mark.long  # Not in the default run (pytest.ini): python -m pytest -m long.
def test_two_workers_killed_and_restarted_resume_with_identical_weights(tmp_path):
  model_dir, steps = tmp_path / "run", 16
  chief, worker = _cluster(model_dir, _free_ports(2), steps)
  end = time.time() + 600
  while time.time() < end and _global_step(model_dir) < 2 and chief.poll() is None:
    time.sleep(0.05)
  worker.send_signal(signal.SIGKILL)  # One worker dies mid-run.
  worker.wait()
  try:  # The chief's next collective fails or waits for the dead peer: it goes down too.
    chief.wait(timeout=15)
  except subprocess.TimeoutExpired:
    chief.send_signal(signal.SIGKILL)
    chief.wait()
  interrupted_at = _global_step(model_dir)
  assert 2 <= interrupted_at < steps, interrupted_at
  processes = _cluster(model_dir, _free_ports(2), steps)  # The cluster restarts.
  results = []
  for process in processes:
    stdout, stderr = process.communicate(timeout=600)
    assert process.returncode == 0, stderr[-4000:]
    results.append(_result(stdout))
  assert [r["steps"] for r in results] == [steps, steps]
  assert all(r["resumed_from"] >= interrupted_at for r in results), results
  assert results[0]["weights_digest"] == results[1]["weights_digest"]
  assert (model_dir / "model.keras").exists()
  assert not (model_dir / distribute_lib.WORKER_TMP_DIRNAME / "worker_1").exists()


@pytest.mark.slow
@pytest.mark.long  # Not in the default run (pytest.ini): 55 s for 3 batches; CI's time limit.
def test_in_process_data_service_yields_the_local_examples():
  from d3tf.experiment import data_service_lib  # pylint: disable=g-import-not-at-top
  task = task_lib.DepthTask(_tiny())
  dispatcher = data_service_lib.start_dispatcher()
  worker = data_service_lib.start_worker(dispatcher.target.split("://")[1])
  data_service_lib.register(task, dispatcher.target)
  batches = 3

  def examples(dataset):
    return sorted((x.tobytes(), y.tobytes()) for xs, ys in dataset.take(batches)
                  for x, y in zip(xs.numpy(), ys.numpy()))

  served = examples(data_service_lib.service_dataset(task, dispatcher.target, job_name="t"))
  local = examples(task.build_inputs("train"))
  # Dynamic sharding promises the examples, not their order across workers: compare sorted.
  assert len(served) == batches * 2 and served == local
  worker.stop()
  dispatcher.stop()
