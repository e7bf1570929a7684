"""BUILD must name every source and test, and name nothing that does not exist (no Bazel here)."""

import ast
import glob
import os

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
BINARIES = {"tfdfc/compress.py", "tfdfc/train_teacher.py", "tfdfc/find_ticket.py",
            "tfdfc/evaluate.py"}


def _targets():
    """(rule, keyword arguments) for each rule call in BUILD, parsed as the Python it resembles."""
    with open(os.path.join(ROOT, "BUILD"), encoding="utf-8") as handle:
        tree = ast.parse(handle.read())
    targets = []
    for statement in tree.body:
        call = getattr(statement, "value", None)
        if isinstance(call, ast.Call) and call.func.id.startswith("py_"):
            arguments = {}
            for keyword in call.keywords:
                try:
                    arguments[keyword.arg] = ast.literal_eval(keyword.value)
                except ValueError:  # deps mixing labels and requirement(...) calls
                    arguments[keyword.arg] = [item.value for item in keyword.value.elts
                                              if isinstance(item, ast.Constant)]
            targets.append((call.func.id, arguments))
    return targets


def _sources():
    patterns = ("tfdfc/**/*.py", "tests/*.py", "bench/*.py")
    return {os.path.relpath(path, ROOT) for pattern in patterns
            for path in glob.glob(os.path.join(ROOT, pattern), recursive=True)}


def test_every_source_file_has_a_target_and_every_target_file_exists():
    named = {src for _, arguments in _targets() for src in arguments["srcs"]}
    assert sorted(_sources() - named) == [], "sources without a BUILD target"
    assert sorted(src for src in named if not os.path.exists(os.path.join(ROOT, src))) == []


def test_tests_and_binaries_have_the_right_rules():
    rules = {arguments["srcs"][0]: rule for rule, arguments in _targets()}
    for source in _sources():
        if os.path.basename(source).startswith("test_"):
            assert rules[source] == "py_test", source
        elif source in BINARIES:
            assert rules[source] == "py_binary", source
        else:
            assert rules[source] == "py_library", source


def test_target_names_are_unique_and_local_deps_resolve():
    names = [arguments["name"] for _, arguments in _targets()]
    assert len(names) == len(set(names))
    for _, arguments in _targets():
        for dep in arguments.get("deps", []):
            assert dep.lstrip(":") in names, f"{arguments['name']} depends on missing {dep}"


def test_the_dependency_graph_has_no_cycle():
    """Bazel refuses a cycle; a package target depends on its modules, never the reverse."""
    graph = {arguments["name"]: [dep[1:] for dep in arguments.get("deps", [])
                                 if dep.startswith(":")] for _, arguments in _targets()}
    done, on_path = set(), []

    def visit(name):
        assert name not in on_path, " -> ".join(on_path[on_path.index(name):] + [name])
        if name in done:
            return
        on_path.append(name)
        for dep in graph.get(name, []):
            visit(dep)
        on_path.pop()
        done.add(name)

    for name in graph:
        visit(name)
