"""Tests of the TF Serving clients against loopback test doubles of TF Serving.

The doubles (d3tf.serving.testing) load the SavedModel exports and speak TF
Serving's REST JSON and gRPC PredictionService protocols; the real
tensorflow_model_server cannot be installed here. Export "tiny": version 1
deterministic (one output, which TF Serving's REST API leaves unnamed),
version 2 with 4 Monte-Carlo samples (depth and depth_std).
"""

import base64
import io

import keras
import numpy as np
from PIL import Image
import pytest
import tensorflow as tf

from d3tf import artifacts
from d3tf.models import D3NetConfig
from d3tf.models import build_d3net
from d3tf.optics import Camera
from d3tf.serving import exporter
from d3tf.serving import grpc_client
from d3tf.serving import protocol
from d3tf.serving import rest_client
from d3tf.serving import testing

pytest.importorskip("tensorflow_serving.apis", reason="tensorflow-serving-api (TF Serving's "
                    "gRPC stubs) is not installed: pip install -e '.[test]'")


def _images(*shape, seed=0):
  return np.random.default_rng(seed).integers(0, 256, shape + (3,), dtype=np.uint8)


def _png(image):
  buffer = io.BytesIO()
  Image.fromarray(image).save(buffer, format="PNG")
  return buffer.getvalue()


@pytest.fixture(scope="module")
def base_dir(tmp_path_factory):
  keras.utils.set_random_seed(0)
  config = D3NetConfig.tiny()
  model = build_d3net(config)
  meta = artifacts.Metadata(input_kind="defocus", camera=Camera.nyu(), psf="gaussian",
                            model_config=config.to_dict(), train_data="procedural")
  base = tmp_path_factory.mktemp("savedmodels") / "tiny"
  exporter.export_saved_model(model, meta, base, samples=1)
  exporter.export_saved_model(model, meta, base, samples=4)
  return base


@pytest.fixture(scope="module")
def expected(base_dir):
  """Deterministic depth of version 1, run locally, for 2 images of 40x50."""
  images = _images(2, 40, 50)
  signature = tf.saved_model.load(str(base_dir / "1")).signatures[protocol.SERVING_SIGNATURE]
  return images, signature(images=tf.constant(images))["depth"].numpy()


@pytest.fixture(scope="module")
def rest_server(base_dir):
  with testing.RestServingDouble({"tiny": str(base_dir)}) as server:
    yield server


@pytest.fixture(scope="module")
def grpc_server(base_dir):
  with testing.GrpcServingDouble({"tiny": str(base_dir)}) as server:
    yield server


# -------------------------------------------------------------------- REST
@pytest.mark.parametrize("request_format", ["instances", "inputs"])
def test_rest_predict_matches_the_saved_model(rest_server, expected, request_format):
  images, depth = expected
  client = rest_client.RestClient(rest_server.url, "tiny", version=1)
  out = client.predict(images, request_format=request_format)
  assert set(out) == {"depth"}  # The single output comes back unnamed and is named depth.
  np.testing.assert_allclose(out["depth"], depth, atol=1e-6)
  encoded = client.predict_encoded([_png(image) for image in images],
                                   request_format=request_format)
  np.testing.assert_allclose(encoded["depth"], depth, atol=1e-6)
  latest = rest_client.RestClient(rest_server.url, "tiny").predict(images[0])
  assert set(latest) == {"depth", "depth_std", "epistemic_std"} and latest["depth"].shape == (1, 40, 50)
  assert latest["depth_std"].mean() > 0


def test_rest_curl_body_status_and_metadata(rest_server, expected):
  images, depth = expected
  client = rest_client.RestClient(rest_server.url, "tiny", version=1)
  # The README's curl body: unnamed {"b64": ...} instances of predict_encoded.
  answer = client.predict_raw({"signature_name": "predict_encoded", "instances": [
      {"b64": base64.b64encode(_png(images[1])).decode("ascii")}]})
  np.testing.assert_allclose(np.asarray(answer["predictions"]), depth[1:], atol=1e-6)
  status = rest_client.RestClient(rest_server.url, "tiny").status()
  assert [v["version"] for v in status["model_version_status"]] == ["1", "2"]
  signatures = client.metadata()["metadata"]["signature_def"]["signature_def"]
  assert signatures["serving_default"]["inputs"] == {"images": {"dtype": "uint8", "shape": None}}
  assert list(signatures["predict_encoded"]["inputs"]) == ["image_bytes"]


def test_rest_client_checks_input_before_sending(expected):
  images, _ = expected
  client = rest_client.RestClient("http://127.0.0.1:9", "tiny")  # Nothing listens there.
  with pytest.raises(ValueError, match=r"\[B, H, W, 3\].*\(2, 40, 50, 4\)"):
    client.predict(np.zeros((2, 40, 50, 4), np.uint8))
  with pytest.raises(ValueError, match="uint8.*int32"):
    client.predict(np.zeros((1, 8, 8, 3), np.int32))
  with pytest.raises(ValueError, match=r"\[0, 1\].*255"):
    client.predict(np.full((8, 8, 3), 255.0))
  with pytest.raises(ValueError, match="encoded image 1 is not a JPEG, PNG"):
    client.predict_encoded([_png(images[0]), b"GIF? no, text"])
  with pytest.raises(ValueError, match="same size: image 0 is 40x50, image 1 is 9x8"):
    client.predict_encoded([_png(images[0]), _png(_images(9, 8))])
  with pytest.raises(ValueError, match="request_format"):
    client.predict(images, request_format="rows")
  with pytest.raises(protocol.ServingError, match="(?s)127.0.0.1:9.*cannot reach TF Serving"):
    client.predict(images)


def test_rest_server_errors_are_surfaced(rest_server, expected):
  images, _ = expected
  client = rest_client.RestClient(rest_server.url, "tiny")
  with pytest.raises(protocol.ServingError, match="(?s)HTTP 400.*channels are not 3"):
    client.predict_raw({"instances": images[..., :2].tolist()})
  with pytest.raises(protocol.ServingError, match="(?s)HTTP 400.*300 is not of expected type: uint8"):
    client.predict_raw({"inputs": {"images": [[[[300, 0, 0]]]]}})
  with pytest.raises(protocol.ServingError, match="(?s)HTTP 400.*Unknown image file format"):
    client.predict_raw({"signature_name": "predict_encoded",
                        "instances": [{"b64": base64.b64encode(b"text").decode()}]})
  with pytest.raises(protocol.ServingError, match="(?s)HTTP 400.*signature key \"nope\" not found"):
    client.predict_raw({"signature_name": "nope", "instances": images.tolist()})
  with pytest.raises(protocol.ServingError, match="(?s)HTTP 400.*'inputs' or 'instances'"):
    client.predict_raw({"examples": []})
  with pytest.raises(protocol.ServingError, match=r"(?s)HTTP 404.*Specific\(tiny, 9\)"):
    rest_client.RestClient(rest_server.url, "tiny", version=9).predict(images)
  with pytest.raises(protocol.ServingError, match=r"(?s)HTTP 404.*Latest\(other\)"):
    rest_client.RestClient(rest_server.url, "other").predict(images)


# -------------------------------------------------------------------- gRPC
def test_grpc_predict_matches_the_saved_model(grpc_server, expected):
  images, depth = expected
  with grpc_client.GrpcClient(grpc_server.target, "tiny", version=1) as client:
    out = client.predict(images)
    assert set(out) == {"depth"}
    np.testing.assert_allclose(out["depth"], depth, atol=1e-6)
    encoded = client.predict_encoded([_png(image) for image in images])
    np.testing.assert_allclose(encoded["depth"], depth, atol=1e-6)
  with grpc_client.GrpcClient(grpc_server.target, "tiny") as client:
    latest = client.predict(images / 255.0)  # Float in [0, 1] is rounded to uint8.
  assert set(latest) == {"depth", "depth_std", "epistemic_std"} and latest["depth"].shape == (2, 40, 50)


def test_grpc_errors_client_and_server_side(grpc_server, expected):
  images, _ = expected
  with grpc_client.GrpcClient(grpc_server.target, "tiny") as client:
    with pytest.raises(ValueError, match=r"\[B, H, W, 3\]"):
      client.predict(np.zeros((40, 50), np.uint8))
    with pytest.raises(ValueError, match="encoded image 0 is not a JPEG"):
      client.predict_encoded(b"\x00\x01")
    request = client._request(protocol.SERVING_SIGNATURE,  # pylint: disable=protected-access
                              {protocol.IMAGES_INPUT: images[..., :1]})
    with pytest.raises(protocol.ServingError, match="(?s)INVALID_ARGUMENT.*channels are not 3"):
      client.predict_raw(request)
    request = client._request(protocol.SERVING_SIGNATURE,  # pylint: disable=protected-access
                              {protocol.IMAGES_INPUT: images.astype(np.float32)})
    with pytest.raises(protocol.ServingError, match="(?s)INVALID_ARGUMENT.*uint8 but float32 is provided"):
      client.predict_raw(request)
    request = client._request(protocol.SERVING_SIGNATURE, {"image": images})  # pylint: disable=protected-access
    with pytest.raises(protocol.ServingError, match="(?s)alias not found.*image.*{images}"):
      client.predict_raw(request)
  with grpc_client.GrpcClient(grpc_server.target, "tiny", version=3) as client:
    with pytest.raises(protocol.ServingError, match=r"(?s)NOT_FOUND.*Specific\(tiny, 3\)"):
      client.predict(images)
  with pytest.raises(ValueError, match="HOST:PORT"):
    grpc_client.GrpcClient("http://localhost:8500", "tiny")


def test_rest_double_reads_named_and_unnamed_inputs():
  one = {"images": tf.TensorSpec([None, None, None, 3], tf.uint8)}
  two = {**one, "scale": tf.TensorSpec([None], tf.float32)}
  pixel = [[[[1, 2, 3]]]]
  for body, request_format in (({"instances": pixel}, "instances"),
                               ({"inputs": pixel}, "inputs")):
    columns, got_format = testing._rest_inputs(body, one)  # pylint: disable=protected-access
    assert got_format == request_format and columns["images"].dtype == np.uint8
    np.testing.assert_array_equal(columns["images"], np.asarray(pixel, np.uint8))
    with pytest.raises(testing.RequestError,
                       match=rf"takes inputs \['images', 'scale'\]: '{request_format}' must be"):
      testing._rest_inputs(body, two)  # pylint: disable=protected-access
  columns, _ = testing._rest_inputs(  # pylint: disable=protected-access
      {"inputs": {"images": pixel, "scale": [0.5]}}, two)
  assert columns["scale"].dtype == np.float32 and columns["scale"].tolist() == [0.5]


# ------------------------------------------------------------ camera-aware
def test_clients_send_the_camera_to_a_camera_aware_export(camera_aware_model_dir,
                                                          camera_aware_export):
  from d3tf import inference  # pylint: disable=g-import-not-at-top
  images = _images(2, 40, 50)
  far = Camera.nyu(8.0)  # The export's default camera is NYU at 2 m.
  keras_predictor = inference.load_predictor(str(camera_aware_model_dir))
  expected_far = keras_predictor.predict(images, camera=far)["depth"]
  expected_default = keras_predictor.predict(images)["depth"]
  assert np.abs(expected_far - expected_default).mean() > 0.05
  per_image = [[15.0, 2.8, 5.6, 2.0], [15.0, 2.8, 5.6, 8.0]]  # Image 0 at 2 m, image 1 at 8 m.
  models = {"anycam": str(camera_aware_export.parent)}
  with testing.RestServingDouble(models) as server:
    client = rest_client.RestClient(server.url, "anycam")
    for request_format in rest_client.REQUEST_FORMATS:
      out = client.predict(images, camera=far, request_format=request_format)
      np.testing.assert_allclose(out["depth"], expected_far, atol=1e-5)
    np.testing.assert_allclose(client.predict(images)["depth"], expected_default, atol=1e-5)
    mixed = client.predict(images, camera=per_image)["depth"]
    np.testing.assert_allclose(mixed[0], expected_default[0], atol=1e-5)
    np.testing.assert_allclose(mixed[1], expected_far[1], atol=1e-5)
    encoded = client.predict_encoded([_png(image) for image in images], camera=far)
    np.testing.assert_allclose(encoded["depth"], expected_far, atol=1e-5)
    with pytest.raises(ValueError, match=r"one per image \[2, 4\]"):
      client.predict(images, camera=[[15.0, 2.8, 5.6, 2.0]] * 3)  # Refused before sending.
    with pytest.raises(protocol.ServingError, match="(?s)HTTP 400.*alias not found.*camera"):
      client.predict_raw({"signature_name": "serving_default", "instances": [
          {"images": images[0].tolist(), "camera": per_image[0]}]})  # No camera there.
  with testing.GrpcServingDouble(models) as server:
    with grpc_client.GrpcClient(server.target, "anycam") as client:
      np.testing.assert_allclose(client.predict(images, camera=far)["depth"], expected_far,
                                 atol=1e-5)
      np.testing.assert_allclose(client.predict(images)["depth"], expected_default, atol=1e-5)
      encoded = client.predict_encoded([_png(image) for image in images], camera=per_image)
      np.testing.assert_allclose(encoded["depth"][1], expected_far[1], atol=1e-5)
      request = client._request("serving_camera", {  # pylint: disable=protected-access
          "images": images, "camera": np.asarray(per_image[:1], np.float32)})
      with pytest.raises(protocol.ServingError, match="(?s)INVALID_ARGUMENT.*number of rows"):
        client.predict_raw(request)
