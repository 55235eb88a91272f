"""A client of TF Serving's REST predict API for d3tf exports (standard library only).

TF Serving answers ``POST /v1/models/NAME[/versions/N]:predict`` with JSON
(https://www.tensorflow.org/tfx/serving/api_rest). Requests are in *row*
format (``{"instances": [...]}``, one item per image; the response is
``{"predictions": [...]}``) or *columnar* format (``{"inputs": ...}`` ->
``{"outputs": ...}``). Encoded images travel as ``{"b64": "..."}``. When the
signature has one output, TF Serving drops its name: that output is
``depth``. On failure the server answers an HTTP error with
``{"error": "..."}``, which :class:`d3tf.serving.protocol.ServingError`
carries.

Typical use::

  client = RestClient("http://localhost:8501", "nyu_focus2m")
  out = client.predict(images)                     # uint8 [B, H, W, 3]
  out["depth"]                                     # float32 [B, H, W], metres
  out = client.predict_encoded([open("a.jpg", "rb").read()])   # predict_encoded
  out = client.predict(images, camera=[15.0, 2.8, 5.6, 2.0])   # camera-aware: serving_camera

A camera-aware export (``docs/any_camera.md``) takes the images' camera through
the signatures ``serving_camera`` / ``predict_encoded_camera`` (input
``camera``: float32 ``[batch, 4]``, focal length mm, f-number, pixel pitch um,
focus distance m); without ``camera=`` the client calls ``serving_default`` /
``predict_encoded``, which use the export's default camera.
"""

from __future__ import annotations

import base64
import json
from typing import Any, Iterable
import urllib.error
import urllib.parse
import urllib.request

import numpy as np

from d3tf.serving import protocol

#: Request formats: TF Serving's row ("instances") and columnar ("inputs") formats.
REQUEST_FORMATS = ("instances", "inputs")
ServingError = protocol.ServingError


class RestClient:
  """Calls a d3tf export served by TF Serving over REST.

  Args:
    url: The server's REST address, e.g. ``http://localhost:8501``.
    model_name: The served model's name (TF Serving's ``MODEL_NAME``).
    version: A model version to call; None for the latest.
    timeout: Seconds to wait for an answer.

  Raises:
    ValueError: a bad URL, name or version.
  """

  def __init__(self, url: str, model_name: str, *, version: int | None = None,
               timeout: float = 60.0):
    parsed = urllib.parse.urlparse(url)
    if parsed.scheme not in ("http", "https") or not parsed.netloc:
      raise ValueError(f"url must be http(s)://HOST:PORT (TF Serving's REST port, 8501 by "
                       f"default), got {url!r}")
    if not model_name or "/" in model_name or ":" in model_name:
      raise ValueError(f"model_name must be a plain name, got {model_name!r}")
    if version is not None and (isinstance(version, bool) or int(version) != version or
                                version < 0):
      raise ValueError(f"version must be a non-negative integer or None, got {version!r}")
    self.url = url.rstrip("/")
    self.model_name = model_name
    self.version = None if version is None else int(version)
    self.timeout = float(timeout)

  @property
  def model_url(self) -> str:
    """``URL/v1/models/NAME[/versions/N]``."""
    url = f"{self.url}/v1/models/{urllib.parse.quote(self.model_name)}"
    return url if self.version is None else f"{url}/versions/{self.version}"

  # ------------------------------------------------------------ transport
  def _call(self, url: str, body: dict[str, Any] | None = None) -> dict[str, Any]:
    """GET (no body) or POST JSON; the parsed JSON answer, or ServingError."""
    data = None if body is None else json.dumps(body).encode("utf-8")
    request = urllib.request.Request(url, data=data, method="GET" if body is None else "POST",
                                     headers={"Content-Type": "application/json"})
    try:
      with urllib.request.urlopen(request, timeout=self.timeout) as response:
        text = response.read().decode("utf-8")
    except urllib.error.HTTPError as e:
      detail = e.read().decode("utf-8", "replace")
      try:
        detail = json.loads(detail).get("error", detail)
      except (json.JSONDecodeError, AttributeError):
        pass
      raise ServingError(f"{url}: HTTP {e.code} {e.reason}: {detail}") from None
    except (urllib.error.URLError, OSError) as e:
      reason = getattr(e, "reason", e)
      raise ServingError(f"{url}: cannot reach TF Serving ({reason})") from None
    try:
      answer = json.loads(text)
    except json.JSONDecodeError as e:
      raise ServingError(f"{url}: the answer is not JSON ({e}): {text[:200]!r}") from None
    if not isinstance(answer, dict):
      raise ServingError(f"{url}: expected a JSON object, got {text[:200]!r}")
    if "error" in answer:
      raise ServingError(f"{url}: {answer['error']}")
    return answer

  def status(self) -> dict[str, Any]:
    """The model's version status (TF Serving's ``GET /v1/models/NAME``)."""
    return self._call(self.model_url)

  def metadata(self) -> dict[str, Any]:
    """The model's signatures (TF Serving's ``GET /v1/models/NAME/metadata``)."""
    return self._call(f"{self.model_url}/metadata")

  def predict_raw(self, body: dict[str, Any]) -> dict[str, Any]:
    """POSTs a predict request body as it is; returns the JSON answer."""
    return self._call(f"{self.model_url}:predict", body)

  # ------------------------------------------------------------ predict
  def predict(self, images, *, camera=None, request_format: str = "instances"
              ) -> dict[str, np.ndarray]:
    """Depth for images, through ``serving_default`` (``serving_camera`` with a camera).

    Args:
      images: uint8 (or float in [0, 1]) RGB, ``[B, H, W, 3]`` or one
        ``[H, W, 3]`` image; checked before sending.
      camera: Camera-aware exports: the images' camera (a
        :class:`d3tf.optics.Camera`, a ``[4]`` vector of focal length mm,
        f-number, pixel pitch um, focus distance m, or ``[B, 4]``), sent as
        the input ``camera`` of ``serving_camera``; None: ``serving_default``
        (the export's default camera).
      request_format: ``"instances"`` (row) or ``"inputs"`` (columnar).

    Returns:
      ``{"depth": float32 [B, H, W], ...}`` in metres (plus ``depth_std``
      etc. when the export has them).

    Raises:
      ValueError: bad images, camera or format (nothing is sent).
      ServingError: the server refused the request (its message included) or
        could not be reached.
    """
    batch, _ = protocol.as_uint8_images(images)
    return self._predict(protocol.SERVING_SIGNATURE, {protocol.IMAGES_INPUT: batch.tolist()},
                         request_format, camera, len(batch))

  def predict_encoded(self, encoded: bytes | Iterable[bytes], *, camera=None,
                      request_format: str = "instances") -> dict[str, np.ndarray]:
    """Depth for encoded JPEG/PNG images, through ``predict_encoded`` (``..._camera``).

    Args:
      encoded: One encoded image or a sequence of them, all of one size;
        checked (real images, one size) before sending, then sent as
        ``{"b64": ...}``.
      camera: As :meth:`predict`: with one, the ``predict_encoded_camera``
        signature.
      request_format: ``"instances"`` (row) or ``"inputs"`` (columnar).

    Returns:
      As :meth:`predict`.

    Raises:
      ValueError: not images, or images of different sizes (nothing is sent).
      ServingError: as :meth:`predict`.
    """
    items = protocol.check_encoded_images(encoded)
    values = [{"b64": base64.b64encode(item).decode("ascii")} for item in items]
    return self._predict(protocol.ENCODED_SIGNATURE, {protocol.ENCODED_INPUT: values},
                         request_format, camera, len(items))

  def _predict(self, signature: str, columns: dict[str, list], request_format: str,
               camera=None, batch: int = 0) -> dict[str, np.ndarray]:
    """Sends named input columns (one item per image); a camera switches the signature."""
    if request_format not in REQUEST_FORMATS:
      raise ValueError(f"request_format must be one of {REQUEST_FORMATS}, got {request_format!r}")
    if camera is not None:
      columns = {**columns, protocol.CAMERA_INPUT:
                 protocol.as_camera_vectors(camera, batch).tolist()}
      signature = protocol.CAMERA_SIGNATURE_OF[signature]
    body: dict[str, Any] = {"signature_name": signature}
    if request_format == "instances":
      count = len(next(iter(columns.values())))
      body["instances"] = [{name: values[i] for name, values in columns.items()}
                           for i in range(count)]
    else:
      body["inputs"] = columns
    answer = self.predict_raw(body)
    return parse_predict_response(answer, f"{self.model_url}:predict")


def parse_predict_response(answer: dict[str, Any], where: str = "response"
                           ) -> dict[str, np.ndarray]:
  """Output arrays from a TF Serving predict answer (row or columnar format).

  A single unnamed output is ``depth`` (TF Serving omits the name of a
  signature's only output).

  Raises:
    ServingError: neither ``predictions`` nor ``outputs`` in the answer, or
      ragged / non-numeric values.
  """
  try:
    if "predictions" in answer:
      rows = answer["predictions"]
      if rows and isinstance(rows[0], dict):
        names = list(rows[0])
        result = {name: np.asarray([row[name] for row in rows], np.float32) for name in names}
      else:
        result = {protocol.DEPTH: np.asarray(rows, np.float32)}
    elif "outputs" in answer:
      outputs = answer["outputs"]
      if isinstance(outputs, dict):
        result = {name: np.asarray(value, np.float32) for name, value in outputs.items()}
      else:
        result = {protocol.DEPTH: np.asarray(outputs, np.float32)}
    else:
      raise ServingError(f"{where}: no 'predictions' or 'outputs' in the answer (keys "
                         f"{sorted(answer)})")
  except (ValueError, TypeError, KeyError) as e:
    raise ServingError(f"{where}: malformed outputs ({e})") from None
  return result

