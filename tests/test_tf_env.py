"""The CLIs' TensorFlow environment defaults: set before TensorFlow starts, never over the user's."""

import ast
import pathlib
import subprocess
import sys

from d3tf import tf_env

_ROOT = pathlib.Path(__file__).resolve().parents[1]


def test_defaults_fill_only_what_is_unset():
  environ = {}
  assert tf_env.apply_defaults(environ) == {"TF_CPU_ALLOCATOR_USE_BFC": "true"}
  assert environ == {"TF_CPU_ALLOCATOR_USE_BFC": "true"}
  explicit = {"TF_CPU_ALLOCATOR_USE_BFC": "false"}
  assert tf_env.apply_defaults(explicit) == {}
  assert explicit == {"TF_CPU_ALLOCATOR_USE_BFC": "false"}


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
