"""Examples/s of the procedural training pipeline: local vs 1 and 2 tf.data service workers.

  python benchmarks/bench_data_service.py [--batches=6] [--rounds=2] [--crop_size=128]

Each round measures, interleaved: the local pipeline (``DepthTask.build_inputs
("train")`` read in this process), then the same pipeline read through a tf.data
service dispatcher with 1, then 2, worker processes (``python -m
d3tf.data_service``), each started afresh. A measurement reads 2 warm-up batches,
then times ``--batches`` batches (wall time), and records the CPU time spent in
that window by this process and by the worker processes (``/proc/PID/stat``;
the dispatcher's is counted with the workers). Prints a Markdown table.
"""

from __future__ import annotations

import argparse
import datetime
import os
import pathlib
import resource
import socket
import subprocess
import sys
import tempfile
import time

_REPO = pathlib.Path(__file__).resolve().parents[1]
sys.path.insert(0, str(_REPO))
_TICK = os.sysconf("SC_CLK_TCK")


def _cpu_of(pids):
  total = 0.0
  for pid in pids:
    try:
      fields = pathlib.Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
      total += (int(fields[11]) + int(fields[12])) / _TICK
    except (OSError, IndexError, ValueError):
      pass
  return total


def _self_cpu():
  usage = resource.getrusage(resource.RUSAGE_SELF)
  return usage.ru_utime + usage.ru_stime


def _free_port():
  with socket.socket() as s:
    s.bind(("127.0.0.1", 0))
    return s.getsockname()[1]


def _measure(dataset, batches, batch_size, pids=()):
  iterator = iter(dataset)
  for _ in range(2):
    next(iterator)
  cpu_self, cpu_workers, start = _self_cpu(), _cpu_of(pids), time.perf_counter()
  for _ in range(batches):
    next(iterator)
  wall = time.perf_counter() - start
  return {"examples_per_s": batches * batch_size / wall, "wall_s": wall,
          "cpu_trainer_s": _self_cpu() - cpu_self, "cpu_workers_s": _cpu_of(pids) - cpu_workers}


def _wait_for_registration(make, limit_s=600.0):
  """The dataset of ``make()`` once a worker has registered it (workers register at start)."""
  import tensorflow as tf  # pylint: disable=g-import-not-at-top
  end = time.time() + limit_s
  while True:
    try:
      dataset = make()
      next(iter(dataset))
      return dataset
    except (tf.errors.NotFoundError, tf.errors.InvalidArgumentError, tf.errors.UnavailableError):
      if time.time() > end:
        raise
      time.sleep(1.0)


def _servers(workers, flags, log_dir, limit_s=600.0):
  """A dispatcher and ``workers`` worker processes, once every worker serves."""
  env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2", PYTHONPATH=str(_REPO))
  port = _free_port()
  cmd = [sys.executable, "-m", "d3tf.data_service"]
  processes = [subprocess.Popen([*cmd, "--role=dispatcher", f"--port={port}"], env=env,
                                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)]
  logs = []
  for index in range(workers):
    logs.append(pathlib.Path(log_dir) / f"worker_{port}_{index}.log")
    with open(logs[-1], "w") as log:
      processes.append(subprocess.Popen(
          [*cmd, "--role=worker", f"--dispatcher=localhost:{port}", f"--port={_free_port()}",
           "--alsologtostderr", *flags], env=env, stdout=subprocess.DEVNULL, stderr=log))
  end = time.time() + limit_s
  while not all("tf.data service worker on port" in log.read_text() for log in logs):
    if time.time() > end or any(p.poll() is not None for p in processes):
      raise RuntimeError(f"workers did not start: see {logs}")
    time.sleep(0.5)
  return f"grpc://localhost:{port}", processes


def main():
  parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  parser.add_argument("--batches", type=int, default=6)
  parser.add_argument("--rounds", type=int, default=2)
  parser.add_argument("--crop_size", type=int, default=128)
  parser.add_argument("--batch_size", type=int, default=8)
  args = parser.parse_args()
  from d3tf.experiment import config as config_lib  # pylint: disable=g-import-not-at-top
  from d3tf.experiment import data_service_lib  # pylint: disable=g-import-not-at-top
  from d3tf.experiment import presets  # pylint: disable=g-import-not-at-top
  from d3tf.experiment import task as task_lib  # pylint: disable=g-import-not-at-top
  del config_lib
  flags = [f"--crop_size={args.crop_size}", f"--batch_size={args.batch_size}"]
  config = presets.get_preset("default").replace(
      data={"crop_size": args.crop_size, "batch_size": args.batch_size})
  task = task_lib.DepthTask(config)
  rows = []
  log_dir = tempfile.mkdtemp(prefix="bench_data_service_")
  for round_index in range(args.rounds):
    rows.append(("local", round_index, _measure(task.build_inputs("train"), args.batches,
                                                args.batch_size)))
    for workers in (1, 2):
      address, processes = _servers(workers, flags, log_dir)
      try:
        dataset = _wait_for_registration(lambda: data_service_lib.service_dataset(  # pylint: disable=cell-var-from-loop
            task, address, job_name=f"bench-{round_index}-{workers}"))
        rows.append((f"service, {workers} worker{'s' * (workers > 1)}", round_index,
                     _measure(dataset, args.batches, args.batch_size,
                              [p.pid for p in processes])))
      finally:
        for process in processes:
          process.terminate()
          process.wait()
  print(f"{datetime.datetime.now(datetime.timezone.utc):%Y-%m-%d %H:%M} UTC; "
        f"{os.cpu_count()} CPUs; load average {os.getloadavg()[0]:.1f}; "
        f"crop {args.crop_size}, batch {args.batch_size}, {args.batches} timed batches\n")
  print("| pipeline | round | examples/s | wall s | CPU s trainer | CPU s workers+dispatcher |")
  print("|---|---|---|---|---|---|")
  for name, round_index, r in rows:
    print(f"| {name} | {round_index} | {r['examples_per_s']:.2f} | {r['wall_s']:.1f} | "
          f"{r['cpu_trainer_s']:.1f} | {r['cpu_workers_s']:.1f} |")


if __name__ == "__main__":
  main()
