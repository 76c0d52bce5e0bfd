"""Adding a deploy target is one file: a module that keeps the contract of
:class:`mlmagic.deploy.DeployTarget`, found through the ``mlmagic.targets`` entry-point group,
gets a ``--target`` choice, its own flags and help, a place in ``%aml_endpoints``, predictions
and the panel's list, in a real kernel started with it installed."""

from __future__ import annotations

import textwrap

from conftest import PRICE_CELL
from kernels import Kernel
from servers import clean_environment

ECHO_TARGET = '''\
"""A deploy target that serves the model from the kernel itself."""

from dataclasses import dataclass, field

from mlmagic.deploy import Endpoint, option

NAME = "echo"
SUMMARY = "the model served by the kernel itself"
REQUIRES = None
LEGACY = False
DEFAULT_TIMEOUT = 30.0
_SERVED = {}


@dataclass
class Options:
    greeting: str | None = field(default=None, metadata=option("what it says first"))


def deploy(model, name, *, timeout, connection, options, owner):
    import mlflow

    _SERVED[name] = mlflow.pyfunc.load_model(model.uri)
    return Endpoint(name, NAME, str(model), f"echo://{name}", {"greeting": options.greeting})


def status(endpoint):
    return "alive" if endpoint.name in _SERVED else "gone"


def predict(endpoint, frame):
    return [float(p) for p in _SERVED[endpoint.name].predict(frame)]


def delete(endpoint):
    _SERVED.pop(endpoint.name, None)
'''


def test_a_target_in_one_file_is_a_full_deploy_target(tmp_path, workdir):
    plugins = tmp_path / "plugins"
    (plugins / "echo_target-1.0.dist-info").mkdir(parents=True)
    (plugins / "echo_target.py").write_text(ECHO_TARGET)
    (plugins / "echo_target-1.0.dist-info" / "METADATA").write_text(
        "Metadata-Version: 2.1\nName: echo-target\nVersion: 1.0\n")
    (plugins / "echo_target-1.0.dist-info" / "entry_points.txt").write_text(
        "[mlmagic.targets]\necho = echo_target\n")
    env = {**clean_environment(), "HOME": str(workdir.parent / "home"),
           "PYTHONPATH": str(plugins)}
    kernel = Kernel(workdir, env).start()
    try:
        kernel.run("%load_ext mlmagic")
        kernel.run("%aml_connect --experiment plugins")
        assert kernel.run(PRICE_CELL).status == "ok"
        helped = kernel.run("%aml_deploy?").text
        assert "--greeting GREETING" in helped and "echo: what it says first" in helped
        deployed = kernel.run("%aml_deploy price --target echo --name e1 --greeting hi")
        assert deployed.status == "ok" and "endpoint e1: ready" in deployed.text, deployed.text
        assert "echo://e1" in deployed.text
        refused = kernel.run("%aml_deploy price --target local --greeting hi")
        assert refused.text.strip() == (
            "InvalidInput: --greeting does not apply to the local target."), refused.text
        listed = kernel.run("listed = %aml_endpoints\nprint(listed.to_string())").text
        assert "e1" in listed and "echo" in listed and "alive" in listed
        predicted = kernel.run(textwrap.dedent("""\
            import pandas as pd
            houses = pd.DataFrame({'rooms': [1.0, 2.0], 'age': [30.0, 20.0]})
            predicted = %aml_predict e1 houses
            print([round(float(value), 6) for value in predicted])"""))
        assert predicted.text.strip() in ("[-20.0, 0.0]", "[-20.0, -0.0]"), predicted.text
        assert kernel.value("list(__import__('mlmagic.deploy').deploy.targets())") == (
            "['local', 'echo', 'kubernetes', 'online', 'aci', 'aks']")
        assert kernel.run("%aml_undeploy e1").status == "ok"
        assert "e1" not in kernel.run("listed = %aml_endpoints\nprint(listed.to_string())").text
    finally:
        kernel.stop()
