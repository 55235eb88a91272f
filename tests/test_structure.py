"""Tests of d3tf's structure, read from the source with ``ast`` (nothing is imported).

They hold what the redesign settled: no import circles, no library module
reading absl flags, each shared concept defined once.
"""

import ast
import pathlib

import pytest

_ROOT = pathlib.Path(__file__).resolve().parents[1]
_PACKAGE = _ROOT / "d3tf"

#: Command-line modules: the only ones that may define or read absl flags.
_CLI_MODULES = {
    "d3tf.train", "d3tf.evaluate", "d3tf.predict", "d3tf.export", "d3tf.render", "d3tf.tune",
    "d3tf.flags", "d3tf.preview", "d3tf.data.write_procedural", "d3tf.data.check",
    "d3tf.data_service", "d3tf.average",
}


def _module_name(path: pathlib.Path) -> str:
  parts = path.relative_to(_ROOT).with_suffix("").parts
  return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _sources() -> dict[str, tuple[pathlib.Path, ast.Module]]:
  return {_module_name(path): (path, ast.parse(path.read_text(), str(path)))
          for path in sorted(_PACKAGE.rglob("*.py"))}


_MODULES = _sources()


def _resolve(name: str) -> str | None:
  """The d3tf module that an imported dotted name lands in (the longest known prefix)."""
  parts = name.split(".")
  for end in range(len(parts), 0, -1):
    candidate = ".".join(parts[:end])
    if candidate in _MODULES:
      return candidate
  return None


def _imports(tree: ast.Module):
  """``(imported d3tf module, at module level?)`` for every import in a module."""
  found = []

  def visit(node, in_function):
    if isinstance(node, ast.Import):
      for alias in node.names:
        found.append((alias.name, in_function))
    elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
      for alias in node.names:  # "from d3tf import artifacts" imports d3tf.artifacts.
        found.append((f"{node.module}.{alias.name}", in_function))
    inner = in_function or isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.Lambda))
    for child in ast.iter_child_nodes(node):
      visit(child, inner)

  visit(tree, False)
  return [(_resolve(name), not in_function) for name, in_function in found
          if name.split(".")[0] == "d3tf" and _resolve(name) not in (None, "d3tf")]


def _edges(module_level_only: bool) -> dict[str, set[str]]:
  edges = {name: set() for name in _MODULES}
  for name, (_, tree) in _MODULES.items():
    for target, module_level in _imports(tree):
      if target != name and (module_level or not module_level_only):
        edges[name].add(target)
  return edges


def _cycles(edges: dict[str, set[str]]) -> list[list[str]]:
  """Strongly connected components of more than one node (Tarjan)."""
  index, low, stack, on_stack, found = {}, {}, [], set(), []

  def connect(node):
    index[node] = low[node] = len(index)
    stack.append(node)
    on_stack.add(node)
    for target in edges.get(node, ()):
      if target not in index:
        connect(target)
        low[node] = min(low[node], low[target])
      elif target in on_stack:
        low[node] = min(low[node], index[target])
    if low[node] == index[node]:
      component = []
      while True:
        member = stack.pop()
        on_stack.discard(member)
        component.append(member)
        if member == node:
          break
      if len(component) > 1:
        found.append(sorted(component))

  for node in sorted(edges):
    if node not in index:
      connect(node)
  return found


def _unit(module: str) -> str:
  """The top-level part of d3tf a module belongs to: ``d3tf.serving.graph`` -> ``d3tf.serving``.

  A command-line module is a unit of its own wherever it lives (``d3tf.data.check``): CLIs sit
  on the top floor, above the package that holds them, and nothing imports them.
  """
  return module if module in _CLI_MODULES else ".".join(module.split(".")[:2])


def test_the_source_is_read():
  assert {"d3tf.artifacts", "d3tf.inference", "d3tf.serving.exporter", "d3tf.optics.psf",
          "d3tf.sizes"} <= set(_MODULES)
  assert ("d3tf.artifacts", True) in _imports(_MODULES["d3tf.inference.loader"][1])
  assert _cycles({"a": {"b"}, "b": {"a"}, "c": {"a"}}) == [["a", "b"]]


def test_no_import_cycles_between_modules():
  assert _cycles(_edges(module_level_only=True)) == []


def test_no_import_cycles_between_top_level_packages():
  """Module- and function-level imports both count: d3tf.X never reaches back to itself."""
  units = {}
  for name, targets in _edges(module_level_only=False).items():
    units.setdefault(_unit(name), set()).update(
        _unit(target) for target in targets if _unit(target) != _unit(name))
  assert _cycles(units) == []


@pytest.mark.parametrize("unit, forbidden", [
    # The bottom floor imports nothing of d3tf above it.
    ("d3tf.optics", {"d3tf.data", "d3tf.models", "d3tf.artifacts", "d3tf.inference",
                     "d3tf.serving"}),
    ("d3tf.models", {"d3tf.data", "d3tf.artifacts", "d3tf.inference", "d3tf.serving"}),
    ("d3tf.metrics", {"d3tf.data", "d3tf.artifacts", "d3tf.inference", "d3tf.serving"}),
    ("d3tf.sizes", {"d3tf"}),
    # Inference and serving share the artifacts floor; serving needs no predictor.
    ("d3tf.artifacts", {"d3tf.data", "d3tf.models", "d3tf.inference", "d3tf.serving"}),
    ("d3tf.serving", {"d3tf.inference", "d3tf.data"}),
    ("d3tf.data", {"d3tf.artifacts", "d3tf.inference", "d3tf.serving"}),
])
def test_floors(unit, forbidden):
  reached = set()
  for name, targets in _edges(module_level_only=False).items():
    if _unit(name) == unit:
      reached |= {_unit(target) for target in targets if _unit(target) != unit}
  assert not {target for target in reached
              if target in forbidden or "d3tf" in forbidden}, (unit, reached)


def _is_cli(module: str) -> bool:
  return module in _CLI_MODULES or module.startswith("d3tf.cli")


def test_only_command_line_modules_use_absl_flags():
  offenders = []
  for name, (path, tree) in _MODULES.items():
    if _is_cli(name):
      continue
    for node in ast.walk(tree):
      flag_use = (isinstance(node, ast.Attribute) and isinstance(node.value, ast.Name)
                  and node.value.id == "flags"
                  and (node.attr == "FLAGS" or node.attr.startswith("DEFINE")))
      flag_import = (isinstance(node, ast.ImportFrom) and node.module == "absl.flags"
                     and any(alias.name == "FLAGS" for alias in node.names))
      if flag_use or flag_import:
        offenders.append(f"{path.relative_to(_ROOT)}:{node.lineno}")
  assert not offenders


def _definitions(name: str) -> list[str]:
  """Where ``name`` is defined (a function, class or module-level assignment)."""
  places = []
  for module, (path, tree) in _MODULES.items():
    for node in ast.walk(tree):
      if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
        hit = node.name == name
      elif isinstance(node, ast.Assign):
        hit = any(isinstance(t, ast.Name) and t.id == name for t in node.targets)
      elif isinstance(node, ast.AnnAssign):
        hit = isinstance(node.target, ast.Name) and node.target.id == name
      else:
        hit = False
      if hit:
        places.append(module)
  return places


@pytest.mark.parametrize("name, home", [
    ("SIZE_MULTIPLE", "d3tf.sizes"),
    ("srgb_to_linear", "d3tf.optics.color"),
    ("linear_to_srgb", "d3tf.optics.color"),
    ("Metadata", "d3tf.artifacts.metadata"),
    ("METADATA_FILENAME", "d3tf.artifacts.metadata"),
    ("resolve_model_path", "d3tf.artifacts.model_dir"),
    ("find_export", "d3tf.artifacts.exports"),
    ("load_predictor", "d3tf.inference.loader"),
    ("stochastic_kind", "d3tf.models.layers"),
    ("procedural_scenes", "d3tf.data.calibration"),
])
def test_each_concept_is_defined_once(name, home):
  assert _definitions(name) == [home]


def test_the_camera_as_text_is_one_method():
  assert _definitions("_camera_text") == [] and _definitions("_describe_camera") == []
  camera = _MODULES["d3tf.optics.camera"][1]
  methods = [node.name for node in ast.walk(camera) if isinstance(node, ast.FunctionDef)]
  assert "describe" in methods


def test_psf_names_come_from_the_registry():
  """No module but the registry spells out the list of PSF names."""
  spelled = []
  for module, (path, tree) in _MODULES.items():
    for node in ast.walk(tree):
      if isinstance(node, (ast.List, ast.Tuple)):
        values = {getattr(e, "value", None) for e in node.elts}
        if {"gaussian", "disk"} <= values:
          spelled.append(f"{path.relative_to(_ROOT)}:{node.lineno}")
  assert not spelled


def test_inference_takes_only_the_export_interface_from_serving():
  """Predictors of exports need the signature and output names, not the exporter or graph."""
  reached = set()
  for name, targets in _edges(module_level_only=False).items():
    if _unit(name) == "d3tf.inference":
      reached |= {target for target in targets if _unit(target) == "d3tf.serving"}
  assert reached == {"d3tf.serving.protocol"}
