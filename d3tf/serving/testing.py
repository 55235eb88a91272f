"""Test doubles of TF Serving: loopback REST and gRPC servers that run SavedModels.

``tensorflow_model_server`` cannot be installed here (no package, no Docker),
so the clients are tested against these doubles. They are **not** TF Serving:
each loads the SavedModel versions of its models with ``tf.saved_model.load``
and runs the requested signature, speaking TF Serving's documented protocols:

* :class:`RestServingDouble`: ``http.server`` in a thread, answering
  ``POST /v1/models/NAME[/versions/N]:predict`` in the row (``instances`` ->
  ``predictions``) and columnar (``inputs`` -> ``outputs``) JSON formats,
  ``{"b64": ...}`` values for string inputs, a single output's name omitted,
  ``GET /v1/models/NAME[/versions/N]`` (status) and ``.../metadata``, and
  ``{"error": "..."}`` with HTTP 400 (bad request) or 404 (unknown model,
  version or path) on failure;
* :class:`GrpcServingDouble`: a gRPC server implementing the official
  ``tensorflow_serving.apis.prediction_service_pb2_grpc.PredictionServiceServicer``
  (``Predict``), answering errors with TF Serving's status codes
  (``NOT_FOUND``, ``INVALID_ARGUMENT``).

Both bind to 127.0.0.1 on a free port and are context managers::

  with RestServingDouble({"tiny": "savedmodels/tiny"}) as server:
    client = RestClient(server.url, "tiny")
"""

from __future__ import annotations

import base64
from concurrent import futures
import http.server
import json
import re
import threading
from typing import Any, Mapping

from absl import logging
import numpy as np

from d3tf import artifacts
from d3tf.serving import protocol

_PREDICT_PATH = re.compile(r"^/v1/models/([^/:]+)(?:/versions/(\d+))?:predict$")
_STATUS_PATH = re.compile(r"^/v1/models/([^/:]+)(?:/versions/(\d+))?(/metadata)?$")


class RequestError(Exception):
  """A request the double refuses: ``code`` is a gRPC status name, ``message`` TF Serving's."""

  def __init__(self, code: str, message: str):
    super().__init__(message)
    self.code = code
    self.message = message


class SavedModelRunner:
  """Loads the versions of named SavedModel exports on demand and runs their signatures.

  Args:
    models: ``{name: base folder}`` (the folder of integer versions, as TF
      Serving's ``--model_base_path``).
  """

  def __init__(self, models: Mapping[str, str]):
    self.models = {name: str(path) for name, path in models.items()}
    self._loaded: dict[tuple[str, int], Any] = {}
    self._lock = threading.Lock()

  def versions(self, name: str) -> list[int]:
    """The versions of model ``name`` that hold a SavedModel."""
    if name not in self.models:
      raise RequestError("NOT_FOUND", f"Servable not found for request: Latest({name})")
    base = self.models[name]
    return [v for v in artifacts.list_versions(base)
            if artifacts.find_export(f"{base}/{v}") is not None]

  def load(self, name: str, version: int | None) -> tuple[Any, int]:
    """``(loaded SavedModel, version)``; the latest version when ``version`` is None."""
    versions = self.versions(name)
    if version is None:
      if not versions:
        raise RequestError("NOT_FOUND", f"Servable not found for request: Latest({name})")
      version = versions[-1]
    elif version not in versions:
      raise RequestError("NOT_FOUND",
                         f"Servable not found for request: Specific({name}, {version})")
    with self._lock:
      if (name, version) not in self._loaded:
        import tensorflow as tf  # pylint: disable=g-import-not-at-top
        self._loaded[(name, version)] = tf.saved_model.load(f"{self.models[name]}/{version}")
    return self._loaded[(name, version)], version

  def signature(self, name: str, version: int | None, signature_name: str):
    """``(concrete function, version)`` of a signature."""
    loaded, version = self.load(name, version)
    signature_name = signature_name or protocol.SERVING_SIGNATURE
    if signature_name not in loaded.signatures:
      raise RequestError("INVALID_ARGUMENT",
                         f"Serving signature key \"{signature_name}\" not found.")
    return loaded.signatures[signature_name], version

  @staticmethod
  def input_specs(function) -> dict[str, Any]:
    """``{input name: tf.TensorSpec}`` of a signature."""
    return dict(function.structured_input_signature[1])

  def run(self, name: str, version: int | None, signature_name: str,
          inputs: Mapping[str, np.ndarray]) -> tuple[dict[str, np.ndarray], int]:
    """Runs a signature on NumPy inputs: ``(outputs, version)``.

    Raises:
      RequestError: unknown model, version, signature or input name, a dtype
        other than the signature's, or an error raised by the graph (its
        message, e.g. a failed input assertion).
    """
    import tensorflow as tf  # pylint: disable=g-import-not-at-top
    function, version = self.signature(name, version, signature_name)
    specs = self.input_specs(function)
    unknown = sorted(set(inputs) - set(specs))
    if unknown:
      raise RequestError("INVALID_ARGUMENT", f"input tensor alias not found in signature: "
                         f"{', '.join(unknown)}. Inputs expected to be in the set "
                         f"{{{', '.join(sorted(specs))}}}.")
    missing = sorted(set(specs) - set(inputs))
    if missing:
      raise RequestError("INVALID_ARGUMENT", f"Missing input(s) {', '.join(missing)}; the "
                         f"signature takes {{{', '.join(sorted(specs))}}}")
    tensors = {}
    for key, value in inputs.items():
      tensor = tf.convert_to_tensor(value)
      if tensor.dtype != specs[key].dtype:
        raise RequestError("INVALID_ARGUMENT", f"Expects arg '{key}' to be "
                           f"{specs[key].dtype.name} but {tensor.dtype.name} is provided")
      tensors[key] = tensor
    try:
      outputs = function(**tensors)
    except (tf.errors.OpError,) as e:
      raise RequestError("INVALID_ARGUMENT", e.message) from None
    except (TypeError, ValueError) as e:
      raise RequestError("INVALID_ARGUMENT", str(e)) from None
    return {key: value.numpy() for key, value in outputs.items()}, version

  def signature_def(self, name: str, version: int | None) -> dict[str, Any]:
    """A JSON description of the signatures (inputs and outputs with dtypes and shapes)."""
    loaded, version = self.load(name, version)
    result = {}
    for key, function in loaded.signatures.items():
      describe = lambda spec: {"dtype": spec.dtype.name, "shape": (
          None if spec.shape.rank is None else [d if d is not None else -1 for d in
                                                spec.shape.as_list()])}
      result[key] = {"inputs": {k: describe(v) for k, v in self.input_specs(function).items()},
                     "outputs": {k: describe(v) for k, v in function.structured_outputs.items()}}
    return {"model_spec": {"name": name, "version": str(version)},
            "metadata": {"signature_def": {"signature_def": result}}}


# ---------------------------------------------------------------- REST double
def _decode_b64(value: Any) -> Any:
  """Replaces ``{"b64": ...}`` objects (at any depth) by their bytes."""
  if isinstance(value, dict) and set(value) == {"b64"}:
    try:
      return base64.b64decode(value["b64"], validate=True)
    except (ValueError, TypeError) as e:
      raise RequestError("INVALID_ARGUMENT", f"Unable to base64 decode: {e}") from None
  if isinstance(value, list):
    return [_decode_b64(item) for item in value]
  return value


def _to_array(value: Any, spec, name: str) -> np.ndarray:
  """A JSON value as an array of the input's dtype, refused as TF Serving refuses it."""
  value = _decode_b64(value)
  if spec.dtype.name == "string":
    array = np.array(value, dtype=object)
    flat = array.reshape(-1)
    if not all(isinstance(item, (bytes, str)) for item in flat):
      raise RequestError("INVALID_ARGUMENT", f"JSON Value for string input '{name}' must be "
                         "strings or {\"b64\": ...} objects")
    return np.array([item.encode() if isinstance(item, str) else item for item in flat],
                    dtype=object).reshape(array.shape)
  try:
    array = np.asarray(value)
  except ValueError as e:  # Ragged nesting.
    raise RequestError("INVALID_ARGUMENT", f"Failed to process input '{name}': its lists have "
                       f"different lengths ({e})") from None
  if array.dtype == object or not (np.issubdtype(array.dtype, np.number) or array.size == 0):
    raise RequestError("INVALID_ARGUMENT", f"Failed to process input '{name}': expected nested "
                       "lists of numbers of one shape")
  dtype = np.dtype(spec.dtype.as_numpy_dtype)
  if np.issubdtype(dtype, np.integer):
    info = np.iinfo(dtype)
    if array.size and (not np.issubdtype(array.dtype, np.integer) or array.min() < info.min or
                       array.max() > info.max):
      bad = array.reshape(-1)[0] if not np.issubdtype(array.dtype, np.integer) else (
          array.min() if array.min() < info.min else array.max())
      raise RequestError("INVALID_ARGUMENT", f"JSON Value: {bad} is not of expected type: "
                         f"{spec.dtype.name} (input '{name}')")
  return array.astype(dtype)


def _unnamed_input(value: Any, names: list[str], request_format: str) -> dict[str, Any]:
  """The columns of a request that does not name its input: only a one-input signature."""
  if len(names) != 1:
    what = "objects" if request_format == "instances" else "an object"
    raise RequestError("INVALID_ARGUMENT", f"the signature takes inputs {names}: "
                       f"'{request_format}' must be {what} naming them")
  return {names[0]: value}


def _rest_inputs(body: Any, specs: Mapping[str, Any]) -> tuple[dict[str, np.ndarray], str]:
  """Inputs of a REST predict body, and its format (``"instances"`` or ``"inputs"``)."""
  if not isinstance(body, dict):
    raise RequestError("INVALID_ARGUMENT", "JSON Value: expected an object with 'instances' or "
                       "'inputs'")
  if ("instances" in body) == ("inputs" in body):
    raise RequestError("INVALID_ARGUMENT", "Missing 'inputs' or 'instances' key (exactly one "
                       "of them is required)")
  names = sorted(specs)
  if "instances" in body:
    request_format = "instances"
    rows = body["instances"]
    if not isinstance(rows, list) or not rows:
      raise RequestError("INVALID_ARGUMENT", "'instances' must be a non-empty list")
    named = [isinstance(row, dict) and set(row) != {"b64"} for row in rows]
    if any(named) and not all(named):
      raise RequestError("INVALID_ARGUMENT", "'instances' mixes named (object) and unnamed items")
    if all(named):
      columns = {}
      for key in {key for row in rows for key in row}:
        if not all(key in row for row in rows):
          raise RequestError("INVALID_ARGUMENT", f"input '{key}' is missing from some instances")
        columns[key] = [row[key] for row in rows]
    else:
      columns = _unnamed_input(rows, names, request_format)
  else:
    request_format = "inputs"
    inputs = body["inputs"]
    if isinstance(inputs, dict) and set(inputs) != {"b64"}:
      columns = inputs
    else:
      columns = _unnamed_input(inputs, names, request_format)
  return {key: (_to_array(value, specs[key], key) if key in specs else np.asarray(0))
          for key, value in columns.items()}, request_format


def _rest_outputs(outputs: Mapping[str, np.ndarray], request_format: str) -> dict[str, Any]:
  """TF Serving's JSON answer: one output unnamed, several as objects."""
  names = list(outputs)
  if request_format == "inputs":
    if len(names) == 1:
      return {"outputs": outputs[names[0]].tolist()}
    return {"outputs": {name: value.tolist() for name, value in outputs.items()}}
  if len(names) == 1:
    return {"predictions": outputs[names[0]].tolist()}
  batch = len(outputs[names[0]])
  return {"predictions": [{name: outputs[name][i].tolist() for name in names}
                          for i in range(batch)]}


class _RestHandler(http.server.BaseHTTPRequestHandler):
  """Speaks TF Serving's REST API for the double's runner."""

  runner: SavedModelRunner  # Set on the subclass made per server.
  protocol_version = "HTTP/1.1"

  def log_message(self, format, *args):  # pylint: disable=redefined-builtin
    logging.debug("REST double: " + format, *args)

  def _answer(self, status: int, payload: dict[str, Any]) -> None:
    data = json.dumps(payload).encode("utf-8")
    self.send_response(status)
    self.send_header("Content-Type", "application/json")
    self.send_header("Content-Length", str(len(data)))
    self.end_headers()
    self.wfile.write(data)

  def _error(self, error: RequestError) -> None:
    self._answer(404 if error.code == "NOT_FOUND" else 400, {"error": error.message})

  def do_GET(self):  # pylint: disable=invalid-name
    match = _STATUS_PATH.match(self.path)
    if not match:
      return self._answer(404, {"error": f"Malformed request: GET {self.path}"})
    name, version, metadata = match.group(1), match.group(2), match.group(3)
    version = None if version is None else int(version)
    try:
      if metadata:
        return self._answer(200, self.runner.signature_def(name, version))
      versions = self.runner.versions(name)
      if version is not None and version not in versions:
        raise RequestError("NOT_FOUND", f"Servable not found for request: Specific({name}, "
                           f"{version})")
      shown = [version] if version is not None else versions
      return self._answer(200, {"model_version_status": [
          {"version": str(v), "state": "AVAILABLE",
           "status": {"error_code": "OK", "error_message": ""}} for v in shown]})
    except RequestError as e:
      return self._error(e)

  def do_POST(self):  # pylint: disable=invalid-name
    length = int(self.headers.get("Content-Length") or 0)
    raw = self.rfile.read(length)
    match = _PREDICT_PATH.match(self.path)
    if not match:
      return self._answer(404, {"error": f"Malformed request: POST {self.path}"})
    name, version = match.group(1), match.group(2)
    version = None if version is None else int(version)
    try:
      try:
        body = json.loads(raw.decode("utf-8"))
      except (UnicodeDecodeError, json.JSONDecodeError) as e:
        raise RequestError("INVALID_ARGUMENT", f"JSON Parse error: {e}") from None
      signature_name = (body.get("signature_name") if isinstance(body, dict) else None) or \
          protocol.SERVING_SIGNATURE
      function, version = self.runner.signature(name, version, signature_name)
      inputs, request_format = _rest_inputs(body, self.runner.input_specs(function))
      outputs, _ = self.runner.run(name, version, signature_name, inputs)
    except RequestError as e:
      return self._error(e)
    return self._answer(200, _rest_outputs(outputs, request_format))


class RestServingDouble:
  """A loopback HTTP server speaking TF Serving's REST predict API (a test double).

  Args:
    models: ``{name: base folder of integer versions}``.

  Attributes:
    url: ``http://127.0.0.1:PORT`` once started.
    runner: The :class:`SavedModelRunner`.
  """

  def __init__(self, models: Mapping[str, str]):
    self.runner = SavedModelRunner(models)
    handler = type("Handler", (_RestHandler,), {"runner": self.runner})
    self._server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    self._server.daemon_threads = True
    self._thread: threading.Thread | None = None
    self.url = f"http://127.0.0.1:{self._server.server_address[1]}"

  def start(self) -> "RestServingDouble":
    self._thread = threading.Thread(target=self._server.serve_forever, name="rest-double",
                                    daemon=True)
    self._thread.start()
    return self

  def stop(self) -> None:
    self._server.shutdown()
    self._server.server_close()
    if self._thread is not None:
      self._thread.join(timeout=10)

  def __enter__(self) -> "RestServingDouble":
    return self.start()

  def __exit__(self, *exc) -> None:
    self.stop()


# ---------------------------------------------------------------- gRPC double
class GrpcServingDouble:
  """A loopback gRPC server with the official PredictionService (a test double).

  Args:
    models: ``{name: base folder of integer versions}``.

  Attributes:
    target: ``127.0.0.1:PORT``.
    runner: The :class:`SavedModelRunner`.
  """

  def __init__(self, models: Mapping[str, str]):
    import grpc  # pylint: disable=g-import-not-at-top
    from tensorflow_serving.apis import prediction_service_pb2_grpc  # pylint: disable=g-import-not-at-top
    self.runner = SavedModelRunner(models)
    servicer = _make_servicer(self.runner, prediction_service_pb2_grpc)
    self._server = grpc.server(futures.ThreadPoolExecutor(max_workers=2), options=[
        ("grpc.max_send_message_length", 512 * 1024 * 1024),
        ("grpc.max_receive_message_length", 512 * 1024 * 1024)])
    prediction_service_pb2_grpc.add_PredictionServiceServicer_to_server(servicer, self._server)
    port = self._server.add_insecure_port("127.0.0.1:0")
    self.target = f"127.0.0.1:{port}"

  def start(self) -> "GrpcServingDouble":
    self._server.start()
    return self

  def stop(self) -> None:
    self._server.stop(grace=None).wait(10)

  def __enter__(self) -> "GrpcServingDouble":
    return self.start()

  def __exit__(self, *exc) -> None:
    self.stop()


def _make_servicer(runner: SavedModelRunner, service):
  """A PredictionServiceServicer whose Predict runs ``runner``."""
  import grpc  # pylint: disable=g-import-not-at-top
  import tensorflow as tf  # pylint: disable=g-import-not-at-top
  from tensorflow_serving.apis import predict_pb2  # pylint: disable=g-import-not-at-top

  class Servicer(service.PredictionServiceServicer):
    """Predict only; the other methods answer UNIMPLEMENTED (the base class)."""

    def Predict(self, request, context):  # pylint: disable=invalid-name
      spec = request.model_spec
      version = spec.version.value if spec.HasField("version") else None
      try:
        inputs = {key: tf.make_ndarray(value) for key, value in request.inputs.items()}
        outputs, version = runner.run(spec.name, version, spec.signature_name, inputs)
      except RequestError as e:
        context.abort(getattr(grpc.StatusCode, e.code), e.message)
      response = predict_pb2.PredictResponse()
      response.model_spec.name = spec.name
      response.model_spec.version.value = version
      response.model_spec.signature_name = spec.signature_name or protocol.SERVING_SIGNATURE
      for key, value in outputs.items():
        response.outputs[key].CopyFrom(tf.make_tensor_proto(value))
      return response

  return Servicer()
