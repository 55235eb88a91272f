r"""Starts a tf.data service server for ``d3tf.train --data_service``: ``python -m d3tf.data_service``.

The per-example training pipeline (procedural scene generation, augmentation,
defocus rendering) then runs on the workers instead of the trainer::

  # one dispatcher (journals to --work_dir, so a restart continues its jobs)
  python -m d3tf.data_service --role=dispatcher --port=5050 --work_dir=/shared/dispatcher
  # workers, on any machines, with the trainer's experiment flags
  python -m d3tf.data_service --role=worker --dispatcher=HOST:5050 --port=5051 \
      --flagfile=pipelines/procedural_focus2m.flags
  # the trainer
  python -m d3tf.train --flagfile=pipelines/procedural_focus2m.flags \
      --data_service=grpc://HOST:5050

A worker builds the experiment's training pipeline and registers it with the
dispatcher before serving (see :mod:`d3tf.experiment.data_service_lib` for
why), so workers and trainer must be given the same experiment flags. The
server runs until the process is stopped.
"""

from __future__ import annotations

from absl import app
from absl import flags
from absl import logging

from d3tf import flags as flags_lib

flags_lib.define_data_service_flags()
FLAGS = flags.FLAGS
_DEFAULT_PORTS = {"dispatcher": 5050, "worker": 5051}


def main(argv):
  if len(argv) > 1:
    raise app.UsageError(f"Unexpected arguments: {argv[1:]}")
  if FLAGS.role is None:
    raise app.UsageError("--role is required: dispatcher or worker")
  from d3tf.experiment import data_service_lib  # pylint: disable=g-import-not-at-top
  port = FLAGS.port if FLAGS.port is not None else _DEFAULT_PORTS[FLAGS.role]
  if FLAGS.role == "dispatcher":
    if FLAGS.fault_tolerant and not FLAGS.work_dir:
      logging.warning("No --work_dir: the dispatcher keeps its state in memory only (a "
                      "restarted dispatcher starts afresh)")
    server = data_service_lib.start_dispatcher(port, FLAGS.work_dir, FLAGS.fault_tolerant)
    logging.info("tf.data service dispatcher at %s (work_dir %s)", server.target,
                 FLAGS.work_dir)
  else:
    if not FLAGS.dispatcher:
      raise app.UsageError("--role=worker needs --dispatcher=HOST:PORT")
    dispatcher = FLAGS.dispatcher.split("://")[-1]
    from d3tf.experiment import task as task_lib  # pylint: disable=g-import-not-at-top
    try:
      task = task_lib.DepthTask(flags_lib.experiment_config_from_flags())
      # First: the registered graph names this process's Python callbacks (module docstring).
      data_service_lib.register(task, f"grpc://{dispatcher}")
    except ValueError as e:
      raise flags_lib.usage_error(e) from e
    server = data_service_lib.start_worker(dispatcher, port, FLAGS.worker_address)
    logging.info("tf.data service worker on port %d of dispatcher %s", port, dispatcher)
  server.join()


if __name__ == "__main__":
  from d3tf import cli_errors  # pylint: disable=g-import-not-at-top
  cli_errors.run(main)
