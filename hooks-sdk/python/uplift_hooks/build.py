"""Builds a Python uplift plugin into a WebAssembly component with its
manifest embedded: the ``uplift-build-plugin`` command.

    uplift-build-plugin APP.py -o OUT.wasm

1. Reads the manifest from APP.py's source, without running it: the one
   top-level ``plugin(name=..., version=..., reads=[...], writes=[...],
   owns=...)`` call and every top-level function decorated with
   ``@version_upgrade(old_version=..., new_version=..., plugin_old_version=...,
   plugin_new_version=...)``. Their arguments must
   be literals. The manifest is then checked by uplift itself, with the
   rules it applies when it loads a plugin (wit/MANIFEST.md): ``uplift hooks
   inspect`` reads it from a component that holds nothing else, before the
   slow build.
2. Runs componentize-py (a dependency of this package) on APP.py with the
   uplift_hooks package, for the world ``upgrade-hook`` of the WIT this
   package carries (``uplift_hooks/wit``, uplift's own).
3. Appends the manifest as an ``uplift:manifest`` custom section to the
   component (a custom section may end a component; no other tool needed).

Exits 0 on success; on any error prints one line naming the file (and line)
and what to do, exits 1, and writes no OUT.wasm.
"""

import argparse
import ast
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

PACKAGE = Path(__file__).resolve().parent
WIT = PACKAGE / "wit"
# What the component needs of this package (the rest runs in CPython only).
COMPONENT_MODULES = ("__init__.py", "_component.py")


class BuildError(Exception):
    pass


def literal(node, what, path):
    try:
        return ast.literal_eval(node)
    except ValueError:
        raise BuildError(f"{path}:{node.lineno}: {what} must be a literal (the build reads it without running the code)")


def called_name(func):
    if isinstance(func, ast.Name):
        return func.id
    if isinstance(func, ast.Attribute):
        return func.attr
    return None


def call_arguments(call, positional_names, path, what):
    args = {}
    for name, node in zip(positional_names, call.args):
        args[name] = literal(node, f"{what}'s {name}", path)
    if len(call.args) > len(positional_names):
        raise BuildError(f"{path}:{call.lineno}: {what} takes at most {len(positional_names)} positional arguments")
    for kw in call.keywords:
        if kw.arg is None:
            raise BuildError(f"{path}:{call.lineno}: {what} cannot take **kwargs (the build reads literal arguments)")
        if kw.arg in args:
            raise BuildError(f"{path}:{call.lineno}: {what} is given {kw.arg} twice")
        args[kw.arg] = literal(kw.value, f"{what}'s {kw.arg}", path)
    return args


RANGE_KEYS = ("old_version", "new_version", "plugin_old_version", "plugin_new_version")


def check_hook_ranges(args, path, line):
    """A hook's ranges as @version_upgrade takes them: known keys, strings,
    the application's both or neither, and then at least one plugin range."""
    unknown = set(args) - set(RANGE_KEYS)
    if unknown:
        raise BuildError(f"{path}:{line}: @version_upgrade takes {', '.join(RANGE_KEYS)}, not {', '.join(sorted(unknown))}")
    for key, value in args.items():
        if not isinstance(value, str):
            raise BuildError(f"{path}:{line}: {key} must be a string")
    plugin = "plugin_old_version" in args or "plugin_new_version" in args
    for key, other in (("old_version", "new_version"), ("new_version", "old_version")):
        if key not in args and (other in args or not plugin):
            raise BuildError(f'{path}:{line}: @version_upgrade needs {key} (use "*" for any version), '
                             'or only plugin_old_version and/or plugin_new_version')


def read_manifest(path):
    try:
        source = path.read_text(encoding="utf-8")
    except OSError as e:
        raise BuildError(f"could not read {path}: {e.strerror}")
    try:
        tree = ast.parse(source, filename=str(path))
    except SyntaxError as e:
        raise BuildError(f"{path}:{e.lineno}: syntax error: {e.msg}")

    plugin_calls = []
    hooks = []
    for node in tree.body:
        if isinstance(node, ast.Expr) and isinstance(node.value, ast.Call) and called_name(node.value.func) == "plugin":
            plugin_calls.append(node.value)
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
            for deco in node.decorator_list:
                if isinstance(deco, ast.Call) and called_name(deco.func) == "version_upgrade":
                    if isinstance(node, ast.AsyncFunctionDef):
                        raise BuildError(f"{path}:{node.lineno}: hook {node.name} cannot be async")
                    args = call_arguments(deco, ["old_version", "new_version"], path, "@version_upgrade")
                    check_hook_ranges(args, path, deco.lineno)
                    if len(node.args.args) != 1:
                        raise BuildError(f"{path}:{node.lineno}: hook {node.name} must take exactly one argument, the context: def {node.name}(ctx)")
                    if any(h["name"] == node.name for h in hooks):
                        raise BuildError(f"{path}:{node.lineno}: two hooks are named {node.name}")
                    hooks.append({"name": node.name, **args, "order": node.lineno})
                elif called_name(deco) == "version_upgrade":
                    raise BuildError(f"{path}:{node.lineno}: write @version_upgrade(old_version=..., new_version=...) with its ranges")

    if len(plugin_calls) != 1:
        raise BuildError(f"{path}: expected exactly one top-level plugin(name=..., version=...) call, found {len(plugin_calls)}")
    call = plugin_calls[0]
    args = call_arguments(call, ["name", "version"], path, "plugin()")
    unknown = set(args) - {"name", "version", "reads", "writes", "owns"}
    if unknown:
        raise BuildError(f"{path}:{call.lineno}: plugin() takes name, version, reads, writes and owns, not {', '.join(sorted(unknown))}")
    for key in ("name", "version"):
        if not isinstance(args.get(key), str):
            raise BuildError(f'{path}:{call.lineno}: plugin() needs {key}="..."')
    capabilities = {}
    for key, field in (("reads", "read"), ("writes", "write")):
        tables = args.get(key, [])
        if isinstance(tables, str) or not isinstance(tables, (list, tuple)):
            raise BuildError(f"{path}:{call.lineno}: {key} must be a list of table names")
        capabilities[field] = list(tables)
    if args.get("owns") is not None:
        capabilities["owns"] = args["owns"]
    if not hooks:
        raise BuildError(f"{path}: no @version_upgrade hook found: a plugin needs at least one")
    manifest = {
        "uplift_manifest": 1,
        "name": args["name"],
        "version": args["version"],
        "capabilities": capabilities,
        "hooks": hooks,
    }
    return manifest, call.lineno


def beside_python(name):
    """``name`` in the folder of the Python running this (a virtual
    environment's ``bin``, where pip put this package's dependencies, active
    or not), else on PATH; None when neither has it."""
    candidate = Path(sys.executable).parent / name
    if candidate.is_file() and os.access(candidate, os.X_OK):
        return str(candidate)
    return shutil.which(name)


def find_uplift(explicit, default=None):
    if explicit:
        return explicit
    if os.environ.get("UPLIFT_BIN"):
        return os.environ["UPLIFT_BIN"]
    return default or beside_python("uplift")


COMPONENT_HEADER = b"\0asm\x0d\x00\x01\x00"


def check_manifest(manifest, plugin_line, uplift, path):
    """Checks the manifest with uplift's own rules: `uplift hooks inspect`
    reads it from a component that holds nothing but the manifest. An error
    names the line of APP.py it comes from: the plugin() call, or the hook."""
    if uplift is None:
        raise BuildError("no uplift binary to check the manifest with: pip install uplift-sqlite, or pass --uplift PATH (or set UPLIFT_BIN)")
    with tempfile.TemporaryDirectory(prefix="uplift-manifest-") as tmp:
        probe = Path(tmp) / "manifest.wasm"
        probe.write_bytes(COMPONENT_HEADER + manifest_section(manifest))
        out = subprocess.run([uplift, "hooks", "inspect", str(probe)], capture_output=True, text=True)
    if out.returncode == 0:
        return
    lines = out.stderr.strip().splitlines()
    message = lines[-1] if lines else f"uplift hooks inspect exited {out.returncode}"
    message = message.removeprefix("error: ").removeprefix(f"{probe}: ")
    line = plugin_line
    for hook in manifest["hooks"]:
        if message.startswith(f"hook {hook['name']} ") or f'"{hook["name"]}"' in message:
            line = hook["order"]
    raise BuildError(f"{path}:{line}: {message}")


def leb128(n):
    out = bytearray()
    while True:
        byte = n & 0x7F
        n >>= 7
        if n:
            out.append(byte | 0x80)
        else:
            out.append(byte)
            return bytes(out)


def custom_section(name, payload):
    body = leb128(len(name.encode())) + name.encode() + payload
    return b"\x00" + leb128(len(body)) + body


def manifest_section(manifest):
    return custom_section("uplift:manifest", json.dumps(manifest, separators=(",", ":")).encode())


def componentize(app, out, componentize_py):
    with tempfile.TemporaryDirectory(prefix="uplift-build-") as tmp:
        # The component's Python path holds the plugin's folder and this
        # package's component modules, copied: never the folder this package
        # is installed in, whose every module componentize-py would bundle.
        helper = Path(tmp) / "uplift_hooks"
        helper.mkdir()
        for module in COMPONENT_MODULES:
            shutil.copyfile(PACKAGE / module, helper / module)
        main = Path(tmp) / "uplift_plugin_main.py"
        main.write_text(
            "# Generated by uplift-build-plugin: the plugin's module, then the export.\n"
            f"import {app.stem}  # noqa: F401\n"
            "from uplift_hooks import Hooks  # noqa: F401\n"
        )
        cmd = [
            componentize_py, "-d", str(WIT), "-w", "upgrade-hook", "componentize",
            "-p", tmp, "-p", str(app.parent),
            "-o", str(out), "uplift_plugin_main",
        ]
        try:
            result = subprocess.run(cmd, capture_output=True, text=True)
        except OSError as e:
            raise BuildError(f"could not run {componentize_py}: {e.strerror}")
        if result.returncode != 0:
            detail = (result.stderr or result.stdout).strip()
            raise BuildError(f"componentize-py failed for {app}:\n{detail}")


def main(argv=None, prog="uplift-build-plugin", uplift_default=None, componentize_py_default=None):
    """The command. ``uplift_default`` and ``componentize_py_default`` are
    the tools to use when none is given (nor ``UPLIFT_BIN``), before looking
    beside this Python and on PATH: a checkout's shim passes its own."""
    parser = argparse.ArgumentParser(prog=prog, description="Build a Python uplift plugin into a component with its manifest.")
    parser.add_argument("app", type=Path, help="the plugin's Python file")
    parser.add_argument("-o", "--output", type=Path, required=True, help="the component to write")
    parser.add_argument("--uplift", help="the uplift binary whose rules the manifest is checked with "
                        "(default: $UPLIFT_BIN, else the uplift beside this Python or on PATH)")
    parser.add_argument("--componentize-py", help="componentize-py to use "
                        "(default: the one beside this Python or on PATH)")
    args = parser.parse_args(argv)
    try:
        if not re.match(r"^[A-Za-z_][A-Za-z0-9_]*$", args.app.stem) or args.app.suffix != ".py":
            raise BuildError(f"{args.app}: the plugin file must be a Python module name ending in .py, e.g. app.py")
        manifest, plugin_line = read_manifest(args.app)
        check_manifest(manifest, plugin_line, find_uplift(args.uplift, uplift_default), args.app)
        componentize_py = args.componentize_py or componentize_py_default or beside_python("componentize-py")
        if componentize_py is None or not Path(componentize_py).exists():
            raise BuildError(f"componentize-py is missing{f' ({componentize_py})' if componentize_py else ''}: "
                             "pip install uplift-hooks installs it, or pass --componentize-py PATH")
        args.output.parent.mkdir(parents=True, exist_ok=True)
        partial = args.output.with_name(args.output.name + ".partial")
        try:
            componentize(args.app.resolve(), partial, componentize_py)
            with open(partial, "ab") as f:
                f.write(manifest_section(manifest))
            os.replace(partial, args.output)
        finally:
            partial.unlink(missing_ok=True)
    except BuildError as e:
        print(f"{prog}: {e}", file=sys.stderr)
        return 1
    hooks = ", ".join(h["name"] for h in manifest["hooks"])
    print(f"built {args.output} ({manifest['name']} {manifest['version']}; hooks: {hooks})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
