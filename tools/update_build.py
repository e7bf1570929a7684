"""Regenerates BUILD from the sources and their imports: python tools/update_build.py."""
import ast, os, re, glob
BINARIES = {"tfdfc/compress.py", "tfdfc/train_teacher.py", "tfdfc/find_ticket.py", "tfdfc/evaluate.py"}
PIP = {"numpy": "numpy", "absl": "absl-py", "mlxtend": "mlxtend", "sklearn": "scikit-learn",
       "tf_keras": "tf-keras", "tensorflow": "tensorflow", "tensorflow_model_optimization": "tensorflow-model-optimization",
       "ai_edge_litert": "ai-edge-litert", "pytest": "pytest", "keras": "keras"}
def target(path):
    for package in ("models", "compression", "methods"):
        if path.startswith(f"tfdfc/{package}/"):
            return (package if path.endswith("__init__.py")
                    else f"{package}_" + os.path.basename(path)[:-3])
    if path.startswith("tests/"):
        return os.path.basename(path)[:-3] if not path.endswith("conftest.py") else "test_support"
    if path.startswith("bench/"):
        return "bench_" + os.path.basename(path)[:-3]
    return "package" if path.endswith("__init__.py") else os.path.basename(path)[:-3]
def module_path(mod):
    p = mod.replace(".", "/")
    if os.path.isdir(p): return p + "/__init__.py"
    if os.path.exists(p + ".py"): return p + ".py"
    return None
def deps(path):
    tree = ast.parse(open(path).read())
    internal, external = set(), set()
    for node in ast.walk(tree):
        names = []
        if isinstance(node, ast.Import): names = [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module:
            # `from package import module` depends on the module, not on the package's
            # __init__ (which may import its modules: the package depends on them, never the
            # reverse); `from module import name` on the module.
            names = [node.module]
            if node.module.split(".")[0] == "tfdfc":
                submodules = [node.module + "." + a.name for a in node.names]
                if all(module_path(n) for n in submodules):
                    names = submodules
        for n in names:
            top = n.split(".")[0]
            if top in ("tfdfc", "conftest", "common"):
                mp = (module_path(n) if top == "tfdfc"
                      else "tests/conftest.py" if top == "conftest" else "bench/common.py")
                if mp and mp != path: internal.add(":" + target(mp))
            elif top in PIP:
                external.add(f'requirement("{PIP[top]}")')
    return sorted(internal), sorted(external)
files = sorted(glob.glob("tfdfc/**/*.py", recursive=True) + glob.glob("tests/*.py") + glob.glob("bench/*.py"))
out = ['# Bazel targets: one py_library per module, a py_binary per absl binary, a py_test per test',
       '# file. Third-party deps come from requirements.txt through rules_python\'s pip_parse (the',
       '# `pip` hub). tests/test_build.py keeps this file in step with the sources.',
       'load("@pip//:requirements.bzl", "requirement")',
       'load("@rules_python//python:defs.bzl", "py_binary", "py_library", "py_test")', '']
for f in files:
    internal, external = deps(f)
    d = internal + external
    name = target(f)
    kind = "py_binary" if f in BINARIES else "py_test" if os.path.basename(f).startswith("test_") else "py_library"
    lines = [f'{kind}(', f'    name = "{name}",', f'    srcs = ["{f}"],']
    if kind in ("py_binary", "py_test"): lines.append(f'    main = "{f}",')
    if kind == "py_test": lines.append('    size = "large",' if name in ("test_cli","test_pipeline","test_train") else '    size = "medium",')
    if d:
        lines.append('    deps = [')
        lines += [f'        {x},' if x.startswith("requirement") else f'        "{x}",' for x in d]
        lines.append('    ],')
    if kind == "py_library" and name == "test_support": lines.append('    testonly = True,')
    lines.append(')'); out += lines + ['']
open("BUILD", "w").write("\n".join(out).rstrip() + "\n")
