"""The CLIs' TensorFlow environment defaults: set before TensorFlow starts, never over the user's."""

import ast
import importlib.util
import pathlib
import subprocess
import sys

import pytest

from d3tf import tf_env

_ROOT = pathlib.Path(__file__).resolve().parents[1]


def test_defaults_fill_only_what_is_unset():
  environ = {}
  defaults = {"TF_CPU_ALLOCATOR_USE_BFC": "true", "D3TF_LEAN_KERAS_IMPORT": "true"}
  assert tf_env.apply_defaults(environ) == defaults
  assert environ == defaults
  explicit = {"TF_CPU_ALLOCATOR_USE_BFC": "false", "D3TF_LEAN_KERAS_IMPORT": "false"}
  assert tf_env.apply_defaults(explicit) == {}
  assert explicit == {"TF_CPU_ALLOCATOR_USE_BFC": "false", "D3TF_LEAN_KERAS_IMPORT": "false"}


def test_the_blocker_refuses_keras_and_tensorflow_but_serves_everyone_else(monkeypatch):
  # A stand-in optional package that nothing has imported yet (the finder is asked only then).
  monkeypatch.setattr(tf_env, "KERAS_OPTIONAL_IMPORTS", ("colorsys",))
  monkeypatch.delitem(sys.modules, "colorsys", raising=False)
  assert tf_env.install_import_blocker({})  # Installed (once) by importing tf_env already.
  assert sum(isinstance(f, tf_env.KerasOptionalImportBlocker) for f in sys.meta_path) == 1
  for importer in ("keras.src.visualization", "tensorflow.python.keras"):
    with pytest.raises(ModuleNotFoundError,
                       match=f"colorsys is not imported for {importer} .*D3TF_LEAN_KERAS_IMPORT"):
      exec("import colorsys", {"__name__": importer})  # pylint: disable=exec-used
    assert "colorsys" not in sys.modules
  namespace = {"__name__": "d3tf.data.plots"}
  exec("import colorsys", namespace)  # pylint: disable=exec-used
  assert namespace["colorsys"] is sys.modules["colorsys"]


@pytest.mark.parametrize("value", ["false", "False", "0", "no"])
def test_the_blocker_is_not_installed_when_turned_off(value, monkeypatch):
  monkeypatch.setattr(sys, "meta_path", [f for f in sys.meta_path
                                         if not isinstance(f, tf_env.KerasOptionalImportBlocker)])
  assert not tf_env.install_import_blocker({"D3TF_LEAN_KERAS_IMPORT": value})
  assert not any(isinstance(f, tf_env.KerasOptionalImportBlocker) for f in sys.meta_path)


def test_a_cli_process_imports_keras_without_its_optional_packages():
  installed = [name for name in tf_env.KERAS_OPTIONAL_IMPORTS
               if importlib.util.find_spec(name) is not None]
  assert "matplotlib" in installed  # A dependency of d3tf: the test has something to block.
  code = ("import sys; import d3tf.flags; import keras; "
          f"before = [m for m in {installed!r} if m in sys.modules]; "
          "import matplotlib.pyplot; "
          "sys.stdout.write(repr((before, 'matplotlib.pyplot' in sys.modules)))")
  env = {k: v for k, v in __import__("os").environ.items() if k != "D3TF_LEAN_KERAS_IMPORT"}
  out = subprocess.run([sys.executable, "-c", code], cwd=_ROOT, capture_output=True,
                       text=True, check=True, env=env).stdout
  # Keras imported none of them; d3tf's (or the user's) later import of matplotlib works.
  assert ast.literal_eval(out) == ([], True)


def test_the_flags_module_applies_them_before_any_other_d3tf_import():
  tree = ast.parse((_ROOT / "d3tf" / "flags.py").read_text())
  d3tf_imports = [node for node in tree.body if isinstance(node, ast.ImportFrom)
                  and (node.module or "").startswith("d3tf")]
  assert d3tf_imports[0].module == "d3tf" and d3tf_imports[0].names[0].name == "tf_env"


def test_a_cli_process_gets_the_default_but_keeps_an_explicit_setting():
  code = ("import os, sys; import d3tf.flags; "
          "sys.stdout.write(os.environ['TF_CPU_ALLOCATOR_USE_BFC'] + ' ' + "
          "str('tensorflow' in sys.modules))")
  env = {k: v for k, v in __import__("os").environ.items() if k != "TF_CPU_ALLOCATOR_USE_BFC"}
  out = subprocess.run([sys.executable, "-c", code], env=env, cwd=_ROOT, capture_output=True,
                       text=True, check=True).stdout
  assert out.split()[0] == "true"
  out = subprocess.run([sys.executable, "-c", code], cwd=_ROOT, capture_output=True, text=True,
                       check=True, env={**env, "TF_CPU_ALLOCATOR_USE_BFC": "false"}).stdout
  assert out.split()[0] == "false"
