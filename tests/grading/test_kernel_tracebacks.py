"""A grading kernel shows a failing cell's traceback exactly as IPython does, without IPython's extra work.

``kernel_boot._lighter_tracebacks`` names each cell's file to ``inspect`` as the file of no module (so that
``inspect.getmodule`` does not go through every loaded module to find none) and keeps only the error's name in
IPython's history. Each test runs a shell in a fresh interpreter, with ipykernel's compiler as in a kernel.
"""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap

from autograder.grading.sandbox import kernel_boot

SCRIPT = textwrap.dedent("""
    import importlib.util, inspect, io, json, sys
    from IPython.core.interactiveshell import InteractiveShell
    from ipykernel.compiler import XCachingCompiler
    spec = importlib.util.spec_from_file_location("kernel_boot", {boot!r})
    kernel_boot = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(kernel_boot)
    shell = InteractiveShell.instance(compiler_class=XCachingCompiler)
    shell.colors = "NoColor"
    searches = []
    copy_of_modules = type(sys.modules).copy
    class CountingModules(dict):
        def copy(self):
            searches.append(1)  # inspect.getmodule's search through every loaded module
            return copy_of_modules(self)
    def failing(code):
        shown, sys.stdout = sys.stdout, io.StringIO()
        try:
            result = shell.run_cell(code, store_history=True)
            return sys.stdout.getvalue(), result.execution_count
        finally:
            sys.stdout = shown
    def traceback_of(code):
        modules, before = sys.modules, len(searches)
        sys.modules = CountingModules(modules)
        try:
            text, count = failing(code)
        finally:
            sys.modules = modules
        return text.replace(f"In[{{count}}]", "In[N]"), len(searches) - before, shell.history_manager.exceptions.get(count)
    shell.run_cell("def student(x):\\n    assert x == 1, 'not one'\\n")
    plain = traceback_of("student(2)")
    kernel_boot._lighter_tracebacks(shell)
    shell.run_cell("def student(x):\\n    assert x == 1, 'not one'\\n")
    lighter = traceback_of("student(2)")
    print(json.dumps({{"plain": plain, "lighter": lighter,
                       "named": [name for name, module in inspect.modulesbyfile.items() if module == kernel_boot.CELL_MODULE]}}))
""")


def run_shell() -> dict:
    done = subprocess.run([sys.executable, "-c", SCRIPT.format(boot=kernel_boot.__file__)], capture_output=True, text=True,
                          timeout=300)
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout.strip().splitlines()[-1])


def test_a_failing_cells_traceback_is_shown_as_ipython_shows_it_without_searching_every_module():
    found = run_shell()
    plain_text, plain_searches, plain_kept = found["plain"]
    text, searches, kept = found["lighter"]
    assert "AssertionError" in text and "not one" in text and "----> 2     assert x == 1" in text
    assert text == plain_text
    assert plain_searches > 0  # IPython's own way: the search through sys.modules, at least once per frame
    assert searches == 0
    assert found["named"] and all(name.endswith(".py") for name in found["named"])
    assert plain_kept["traceback"] and kept == {"ename": "AssertionError", "evalue": "", "traceback": []}
