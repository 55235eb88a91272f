"""A client of TF Serving's gRPC PredictionService for d3tf exports.

Uses the official stubs of ``tensorflow-serving-api``
(``prediction_service_pb2_grpc.PredictionServiceStub``, ``predict_pb2``) and
converts tensors with ``tf.make_tensor_proto`` / ``tf.make_ndarray``. TF
Serving's gRPC port is 8500 by default.

Typical use::

  with GrpcClient("localhost:8500", "nyu_focus2m") as client:
    out = client.predict(images)           # uint8 [B, H, W, 3]
    out["depth"]                           # float32 [B, H, W], metres
    out = client.predict(images, camera=[15.0, 2.8, 5.6, 2.0])   # camera-aware: serving_camera

A camera-aware export's camera goes as the ``camera`` input (float32 ``[batch,
4]``) of ``serving_camera`` / ``predict_encoded_camera``; without ``camera=``
the client calls ``serving_default`` / ``predict_encoded`` (the export's default
camera). See ``docs/any_camera.md``.
"""

from __future__ import annotations

from typing import Iterable

import numpy as np

from d3tf.serving import protocol

ServingError = protocol.ServingError


def _serving_apis():
  """The tensorflow_serving.apis modules, or an ImportError saying what to install."""
  try:
    import grpc  # pylint: disable=g-import-not-at-top
    from tensorflow_serving.apis import predict_pb2  # pylint: disable=g-import-not-at-top
    from tensorflow_serving.apis import prediction_service_pb2_grpc  # pylint: disable=g-import-not-at-top
  except ImportError as e:
    raise ImportError(f"the gRPC client needs tensorflow-serving-api and grpcio ({e}): pip "
                      "install 'tensorflow-serving-api>=2.21,<2.22' (or d3tf[export])") from None
  return grpc, predict_pb2, prediction_service_pb2_grpc


class GrpcClient:
  """Calls a d3tf export served by TF Serving over gRPC.

  Args:
    target: ``HOST:PORT`` of TF Serving's gRPC port (8500 by default).
    model_name: The served model's name.
    version: A model version to call; None for the latest.
    timeout: Seconds to wait for an answer.
    max_message_bytes: Largest message sent or received (images and depth
      maps are large: TF Serving accepts up to 2 GB by default, gRPC clients
      4 MB unless told).

  Raises:
    ValueError: a bad target, name or version.
  """

  def __init__(self, target: str, model_name: str, *, version: int | None = None,
               timeout: float = 60.0, max_message_bytes: int = 512 * 1024 * 1024):
    grpc, _, service = _serving_apis()
    if not target or ":" not in target or "/" in target:
      raise ValueError(f"target must be HOST:PORT (TF Serving's gRPC port, 8500 by default), "
                       f"got {target!r}")
    if not model_name:
      raise ValueError(f"model_name must be a name, got {model_name!r}")
    if version is not None and (isinstance(version, bool) or int(version) != version or
                                version < 0):
      raise ValueError(f"version must be a non-negative integer or None, got {version!r}")
    self.target = target
    self.model_name = model_name
    self.version = None if version is None else int(version)
    self.timeout = float(timeout)
    options = [("grpc.max_send_message_length", int(max_message_bytes)),
               ("grpc.max_receive_message_length", int(max_message_bytes))]
    self._channel = grpc.insecure_channel(target, options=options)
    self._stub = service.PredictionServiceStub(self._channel)

  def close(self) -> None:
    """Closes the channel."""
    self._channel.close()

  def __enter__(self) -> "GrpcClient":
    return self

  def __exit__(self, *exc) -> None:
    self.close()

  def _request(self, signature: str, inputs: dict[str, np.ndarray]):
    import tensorflow as tf  # pylint: disable=g-import-not-at-top
    _, predict_pb2, _ = _serving_apis()
    request = predict_pb2.PredictRequest()
    request.model_spec.name = self.model_name
    request.model_spec.signature_name = signature
    if self.version is not None:
      request.model_spec.version.value = self.version
    for name, array in inputs.items():
      request.inputs[name].CopyFrom(tf.make_tensor_proto(array))
    return request

  def predict_raw(self, request):
    """Sends a ``PredictRequest``; the ``PredictResponse``, or ServingError."""
    grpc, _, _ = _serving_apis()
    try:
      return self._stub.Predict(request, timeout=self.timeout)
    except grpc.RpcError as e:
      code = e.code() if hasattr(e, "code") else None
      details = e.details() if hasattr(e, "details") else str(e)
      raise ServingError(f"{self.target} (model {request.model_spec.name!r}): "
                         f"{getattr(code, 'name', code)}: {details}") from None

  def _predict(self, signature: str, input_name: str, array: np.ndarray, camera=None
               ) -> dict[str, np.ndarray]:
    """One request; a camera adds the ``camera`` input and switches the signature."""
    import tensorflow as tf  # pylint: disable=g-import-not-at-top
    inputs = {input_name: array}
    if camera is not None:
      inputs[protocol.CAMERA_INPUT] = protocol.as_camera_vectors(camera, len(array))
      signature = protocol.CAMERA_SIGNATURE_OF[signature]
    response = self.predict_raw(self._request(signature, inputs))
    return {name: tf.make_ndarray(response.outputs[name]).astype(np.float32)
            for name in response.outputs}

  def predict(self, images, *, camera=None) -> dict[str, np.ndarray]:
    """Depth for images, through ``serving_default`` (``serving_camera`` with a camera).

    Args:
      images: uint8 (or float in [0, 1]) RGB, ``[B, H, W, 3]`` or one
        ``[H, W, 3]`` image; checked before sending.
      camera: Camera-aware exports: the images' camera (a
        :class:`d3tf.optics.Camera`, a ``[4]`` vector of focal length mm,
        f-number, pixel pitch um, focus distance m, or ``[B, 4]``); None: the
        export's default camera (``serving_default``).

    Returns:
      ``{"depth": float32 [B, H, W], ...}`` in metres (plus the export's
      uncertainty outputs).

    Raises:
      ValueError: bad images or camera (nothing is sent).
      ServingError: the server refused the request (its status and message
        included) or could not be reached.
    """
    batch, _ = protocol.as_uint8_images(images)
    return self._predict(protocol.SERVING_SIGNATURE, protocol.IMAGES_INPUT, batch, camera)

  def predict_encoded(self, encoded: bytes | Iterable[bytes], *, camera=None
                      ) -> dict[str, np.ndarray]:
    """Depth for encoded JPEG/PNG images (one size), through ``predict_encoded``.

    ``camera``: as :meth:`predict` (with one: ``predict_encoded_camera``).

    Raises:
      ValueError: not images, or images of different sizes (nothing is sent).
      ServingError: as :meth:`predict`.
    """
    items = protocol.check_encoded_images(encoded)
    return self._predict(protocol.ENCODED_SIGNATURE, protocol.ENCODED_INPUT,
                         np.array(items, dtype=object), camera)
