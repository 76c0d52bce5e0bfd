"""The IPython magics. Each one parses its line, calls :mod:`mlmagic.core`, and shows the result.

Settings are traitlets, so ``%config MlMagic.default_experiment = "churn"`` works, as does
``c.MlMagic.log_source = False`` in an IPython profile, or ``log_source = false`` in the config
file (``[tool.mlmagic]`` in ``pyproject.toml``, or ``~/.mlmagic/config.toml``).
"""

from __future__ import annotations

import ast
import builtins
import contextvars
import functools
import keyword
import re
import threading
from typing import TYPE_CHECKING, Any

from IPython.core.error import UsageError
from IPython.core.magic import Magics, cell_magic, line_magic, magics_class
from IPython.core.magic_arguments import argument, magic_arguments, parse_argstring
from IPython.display import DisplayHandle, display
from traitlets import Bool, Float, Int, TraitError, Unicode, observe

from mlmagic.azure import AUTH_METHODS
from mlmagic.base.config import CONNECTION_KEYS, DEFAULT_MAX_RUNS, DEFAULT_TIMEOUT, TRACK_MODES
from mlmagic.base.errors import InvalidInput

if TYPE_CHECKING:
    import pandas as pd

    from mlmagic.base.display import Card
    from mlmagic.core import Connection
    from mlmagic.core.journal import SyncReport


def _with_target_arguments(function):
    """Give %aml_deploy ``--target`` and one option per field of the targets' ``Options``
    (see :mod:`mlmagic.deploy`), each option's help naming the targets that take it.

    They are added when the parser or the help is first needed: finding the targets imports
    every target module and reads the installed packages' entry points, which each
    ``%load_ext`` would otherwise pay for. IPython's ``?`` asks ``getdoc()`` first."""

    @functools.cache
    def complete() -> str:
        from mlmagic.deploy import option_specs, targets

        parser = function.parser
        known = targets()
        parser.add_argument("--target", default="local", choices=list(known), help="; ".join(
            f"{name}: {module.SUMMARY}" for name, module in known.items()) + " (default: local)")
        for spec in option_specs():
            flags = [spec.short, spec.flag] if spec.short else [spec.flag]
            if spec.kind is bool:
                how = {"action": "store_const", "const": True}
            elif spec.kind is dict:
                how = {"action": "append", "default": [], "metavar": spec.metavar}
            else:
                how = {"type": spec.kind if spec.kind is not str else None,
                       "metavar": spec.metavar}
            parser.add_argument(*flags, dest=spec.name,
                                help=f"{', '.join(spec.targets)}: {spec.help}", **how)
        function.__doc__ = parser.format_help()
        return function.__doc__

    function.complete_parser = function.getdoc = complete
    return function


@magics_class
class MlMagic(Magics):
    """Connect, track and list runs from a notebook."""

    default_experiment = Unicode(
        None, allow_none=True,
        help="Experiment to select when neither %aml_connect nor a config file names one.",
    ).tag(config=True)
    log_source = Bool(True, help="Log each tracked cell's source as the artifact cell.py.").tag(
        config=True
    )
    log_notebook = Bool(True, help="Keep the notebook, as saved, as each tracked cell's artifact "
                        "notebook.ipynb.").tag(config=True)
    log_history = Bool(True, help="Keep the cells run before each tracked cell as its artifact "
                       "history.py.").tag(config=True)
    log_git = Bool(True, help="Tag each tracked cell's run with the git commit, branch and "
                   "remote of the notebook's repository; keep its uncommitted diff as git.diff."
                   ).tag(config=True)
    log_environment = Bool(True, help="Keep the Python version and installed packages as each "
                           "tracked cell's artifact requirements.txt.").tag(config=True)
    show_summary = Bool(True, help="Show a run summary after each %%track cell.").tag(config=True)
    live_interval = Float(
        0.5, help="Seconds between refreshes of a running cell's summary in a notebook; 0: off."
    ).tag(config=True)
    max_runs = Int(
        DEFAULT_MAX_RUNS, help="How many runs %aml_runs returns when --max is not given."
    ).tag(config=True)
    connect_timeout = Float(
        DEFAULT_TIMEOUT,
        help="Seconds to wait for a tracking server to answer when connecting.",
    ).tag(config=True)

    def apply_config_file(self) -> None:
        """Take the settings the config file names (``max_runs = 50`` in ``[tool.mlmagic]``),
        as JupySQL's ``[tool.jupysql.SqlMagic]`` sets ``SqlMagic``: the project's file wins over
        the IPython profile, ``%config`` over both. A value of the wrong kind or an unknown key
        is one line; the other settings still apply."""
        import difflib

        from mlmagic.base.config import find_config
        from mlmagic.base.display import notify
        from mlmagic.base.errors import ConfigError

        try:
            found = find_config()
        except ConfigError:
            return  # said once, when the config file is read to connect
        if found is None:
            return
        path, table = found
        settings = self.trait_names(config=True)
        for key, value in table.items():
            if key in settings:
                try:
                    setattr(self, key, value)
                except TraitError:
                    notify(f"{path}: '{key} = {value!r}' is not a valid value; "
                           f"{self.traits()[key].info()} expected. Kept {getattr(self, key)!r}.")
            elif key not in CONNECTION_KEYS:
                near = difflib.get_close_matches(key, [*settings, *CONNECTION_KEYS], n=1)
                hint = f" Did you mean '{near[0]}'?" if near else ""
                notify(f"{path}: unknown setting '{key}', ignored.{hint}")

    @magic_arguments()
    @argument("uri", nargs="?", help="tracking URI (http(s)://…, sqlite:///…, databricks); "
              "default: MLMAGIC_TRACKING_URI, MLFLOW_TRACKING_URI, config file, embedded store")
    @argument("-e", "--experiment", help="experiment to use (created if missing)")
    @argument("--timeout", type=float, help="seconds to wait for the server to answer")
    @argument("-w", "--workspace", help="Azure ML workspace name")
    @argument("--subscription", help="Azure subscription id of the workspace")
    @argument("-g", "--resource-group", help="Azure resource group of the workspace")
    @argument("--config", metavar="PATH", help="the workspace's config.json")
    @argument("--auth", choices=AUTH_METHODS, help="how to sign in to Azure (default: "
              "azure-identity's default chain; interactive only when asked)")
    @argument("--track", choices=TRACK_MODES, help="both: track in the store and mirror every "
              "run into the Azure ML workspace named (the default in Databricks); azureml: "
              "track only in the workspace")
    @argument("--from", dest="source", metavar="VAR", help="an MLClient or azureml-core "
              "Workspace in the namespace")
    @line_magic
    def aml_connect(self, line: str) -> Connection:
        """Connect to a tracking backend: %aml_connect [URI] [--experiment NAME], or an Azure ML
        workspace: %aml_connect --workspace NAME --subscription ID --resource-group RG,
        %aml_connect --config config.json, %aml_connect --from ml_client."""
        args = self._parse(self.aml_connect, line, "%aml_connect")
        from mlmagic import core

        return core.connect(
            args.uri, experiment=args.experiment,
            timeout=self.connect_timeout if args.timeout is None else args.timeout,
            workspace=args.workspace, subscription=args.subscription,
            resource_group=args.resource_group, config=args.config, auth=args.auth,
            client=self._variable(args.source) if args.source else None, track=args.track,
        )

    @magic_arguments()
    @argument("name", nargs="+", help="experiment name (the rest of the line)")
    @line_magic
    def aml_experiment(self, line: str) -> Connection:
        """Select the experiment of later runs, creating it if missing: %aml_experiment NAME."""
        args = self._parse(self.aml_experiment, line, "%aml_experiment")
        from mlmagic import core

        return core.set_experiment(" ".join(args.name))

    @magic_arguments()
    @line_magic
    def aml_status(self, line: str) -> Connection | Card:
        """Show the current connection: backend, tracking URI, experiment, UI link."""
        self._parse(self.aml_status, line, "%aml_status")
        from mlmagic import core

        return core.status()

    @magic_arguments()
    @line_magic
    def aml_sync(self, line: str) -> SyncReport:
        """Send the runs kept in the offline journal (while the server was away) to it."""
        self._parse(self.aml_sync, line, "%aml_sync")
        from mlmagic import core

        return core.sync()

    @magic_arguments()
    @argument("name", help="registered model name (a new version is added); with --to, the "
              "version to copy: NAME:VERSION, NAME@ALIAS or NAME (the latest)")
    @argument("--run", help="run id, or 'last' (default: the last tracked cell)")
    @argument("--path", help="the model's name in the run (default: model)")
    @argument("--uri", help="a model URI instead of a run (runs:/…, models:/…)")
    @argument("--alias", help="set this alias on the new version, e.g. champion")
    @argument("-t", "--tag", action="append", default=[], metavar="KEY=VALUE",
              help="tag the new version (repeatable)")
    @argument("--to", choices=["azureml"], help="copy a version of this connection's "
              "registry (the Databricks workspace's, Unity Catalog) into the Azure ML "
              "workspace's: the one linked with --track both, or the connected one. A version "
              "copied before is reused")
    @line_magic
    def aml_register(self, line: str) -> Card:
        """Register a model as a new version: %aml_register NAME [--run last] [--alias A];
        or copy a registered version into the Azure ML workspace's registry:
        %aml_register main.default.churn:3 --to azureml (NAME@ALIAS, or NAME for the latest,
        work too; its name there is one Azure ML takes: main-default-churn)."""
        args = self._parse(self.aml_register, line, "%aml_register")
        for given in ("run", "path"):
            self._exclusive(args, "uri", given, "%aml_register")
        from mlmagic import core

        registered = core.register(
            args.name, run=args.run, path=args.path or "model", uri=args.uri, alias=args.alias,
            tags=_pairs(args.tag, "--tag"), to=args.to,
        )
        return registered if args.to else core.version_summary(registered)

    @magic_arguments()
    @argument("name", nargs="?", help="a registered model: list its versions")
    @line_magic
    def aml_models(self, line: str) -> pd.DataFrame:
        """Registered models as a DataFrame, or one model's versions: %aml_models [NAME]."""
        args = self._parse(self.aml_models, line, "%aml_models")
        from mlmagic import core

        return core.models(args.name)

    @_with_target_arguments
    @magic_arguments()
    @argument("model", help="NAME, NAME:VERSION, NAME@ALIAS or a model URI")
    @argument("--name", "--endpoint", dest="name",
              help="endpoint name (default: the model's name)")
    @argument("--check", metavar="VAR", help="a DataFrame to verify the endpoint with")
    @argument("--timeout", type=float, help="seconds to wait for readiness (default: 180 "
              "locally, 1800 on Azure)")
    @line_magic
    def aml_deploy(self, line: str) -> Card:
        """Serve a model as a REST endpoint and verify it: %aml_deploy churn@champion, or on
        Azure ML: %aml_deploy churn:3 --target online --endpoint churn-api."""
        args = self._parse(self.aml_deploy, line, "%aml_deploy")
        from mlmagic import core
        from mlmagic.deploy import checked_options, option_specs

        check = self._variable(args.check) if args.check else None
        specs = {spec.name: spec for spec in option_specs()}
        options = {name: _pairs(getattr(args, name), spec.flag) or None
                   if spec.kind is dict else getattr(args, name)
                   for name, spec in specs.items()}
        checked_options(args.target, options, shown=lambda name: specs[name].flag)
        endpoint = core.deploy(args.model, target_name=args.target, name=args.name, check=check,
                               timeout=args.timeout, **options)
        return core.endpoint_summary(endpoint)

    @magic_arguments()
    @line_magic
    def aml_endpoints(self, line: str) -> pd.DataFrame:
        """The endpoints this session started, with their state."""
        self._parse(self.aml_endpoints, line, "%aml_endpoints")
        from mlmagic import core

        return core.endpoints()

    @magic_arguments()
    @argument("endpoint", help="endpoint name")
    @argument("data", help="name of a pandas DataFrame variable")
    @line_magic
    def aml_predict(self, line: str):
        """Score a DataFrame through an endpoint: preds = %aml_predict churn df."""
        args = self._parse(self.aml_predict, line, "%aml_predict")
        from mlmagic import core

        return core.predict(args.endpoint, self._variable(args.data))

    @magic_arguments()
    @argument("model", help="NAME, NAME:VERSION, NAME@ALIAS or a model URI")
    @argument("--input", metavar="VAR", help="a pandas or Spark DataFrame variable")
    @argument("--table", help="a Spark table (or view) to score instead of --input, read with "
                              "the notebook's spark")
    @argument("--where", metavar="EXPR", help="score only the rows of this Spark SQL "
                                              "condition, e.g. \"region = 'west'\"")
    @argument("--output", metavar="VAR", help="store the scored DataFrame in this variable")
    @argument("--output-table", metavar="NAME", help="write the scored rows as this table "
                                                     "(saveAsTable)")
    @argument("--mode", choices=["append", "overwrite"], help="what --output-table does to a "
              "table that exists (without it, one that exists is refused)")
    @argument("--spark", action="store_true", help="score a pandas input on Spark too")
    @argument("--result-type", default="double", help="Spark result type (default: double)")
    @line_magic
    def aml_score(self, line: str):
        """Batch scoring: the input's columns plus a prediction column (pandas or Spark).

        On Spark (a table, a Spark DataFrame or --spark) it uses the notebook's own spark (else
        the active session, else a local one) and mlflow.pyfunc.spark_udf; in Databricks the
        result is shown with the notebook's display(). --output-table writes it back instead:
        %aml_score churn --table events --where "day = '2026-06-01'" --output-table scored."""
        args = self._parse(self.aml_score, line, "%aml_score")
        self._exclusive(args, "output", "output_table", "%aml_score")
        from mlmagic import core

        output = self._checked_output(args.output)
        data = self._variable(args.input) if args.input else None
        scored = core.score(
            args.model, data, table=args.table, where=args.where,
            output_table=args.output_table, mode=args.mode, spark=args.spark,
            result_type=args.result_type,
        )
        if output:
            self.shell.user_ns[output] = scored
            return None
        return self._shown(scored)

    def _shown(self, result):
        """The result for IPython to show, or None once the notebook's own display() (in
        Databricks) has shown a Spark DataFrame."""
        from mlmagic import core

        show = core.databricks_display(self.shell.user_ns)
        if show is None or not type(result).__module__.startswith("pyspark.sql"):
            return result
        show(result)
        return None

    @magic_arguments()
    @argument("name", help="endpoint name")
    @argument("--deployment", help="Azure ML: delete only this deployment of the endpoint")
    @line_magic
    def aml_undeploy(self, line: str) -> Card:
        """Stop an endpoint: %aml_undeploy NAME; on Azure ML, delete it, or one deployment of
        it: %aml_undeploy NAME --deployment blue."""
        args = self._parse(self.aml_undeploy, line, "%aml_undeploy")
        from mlmagic import core

        return core.undeploy(args.name, deployment=args.deployment)

    @magic_arguments()
    @line_magic
    def aml_panel(self, line: str):
        """One widget for the whole lifecycle: connection, runs (table, metric charts),
        models (register, aliases) and deployment; a text summary where widgets can't show
        (in a Databricks runtime before 13: an HTML summary, through displayHTML)."""
        self._parse(self.aml_panel, line, "%aml_panel")
        from mlmagic.panel import show_panel

        return show_panel(self.shell.user_ns)

    @magic_arguments()
    @argument("-n", "--name", help="run name")
    @argument("-e", "--experiment", help="experiment of this run (created if missing)")
    @argument("-p", "--param", action="append", default=[], metavar="KEY=VALUE",
              help="log a param (repeatable)")
    @argument("-t", "--tag", action="append", default=[], metavar="KEY=VALUE",
              help="set a tag (repeatable)")
    @argument("-c", "--capture", default="", metavar="VAR[,VAR]",
              help="after the cell, log these variables: numbers as metrics, scalars as params")
    @argument("--autolog", action="store_true", help="turn on mlflow.autolog() for the cell")
    @argument("--nested", action="store_true", help="track inside the active run")
    @argument("--no-source", action="store_true", help="do not log the cell's source")
    @argument("--register", metavar="MODEL", help="register the model the cell logged")
    @cell_magic
    def track(self, line: str, cell: str) -> Any:
        """Run the cell as an MLflow run; its mlflow.log_* calls write to that run."""
        __tracebackhide__ = True  # the user's traceback starts in their cell, not here
        args = self._parse(self.track, line, "%%track")
        from mlmagic import core

        options = dict(
            name=args.name,
            experiment=args.experiment,
            params=_pairs(args.param, "--param"),
            tags=_pairs(args.tag, "--tag"),
            source=cell if self.log_source and not args.no_source else None,
            capture=_variable_names(args.capture),
            namespace=self.shell.user_ns,
            autolog=args.autolog,
            nested=args.nested,
            quiet=True,  # the summary card, or silence, instead of MLflow's links
            register=args.register,
            provenance=[part for part in ("notebook", "history", "git", "environment")
                        if getattr(self, f"log_{part}")],
        )
        code, last_expression = self._compile(cell)
        live = _LiveSummary(self.live_interval) if self._shows_live_summary() else None
        started, value = False, None
        try:
            with core.track(**options):
                started = True
                if live:
                    live.start()
                exec(code, self.shell.user_global_ns, self.shell.user_ns)
                if last_expression is not None:
                    value = eval(last_expression, self.shell.user_global_ns, self.shell.user_ns)
        finally:
            if live:
                live.stop()
            if started and self.show_summary:
                self._show_last_run(live)
        if args.register:
            display(core.version_summary(core.last_registered()))
        return value

    @magic_arguments()
    @argument("run", nargs="?", default="last", help="last (default), a run id or a run name")
    @argument("--path", metavar="NOTEBOOK", help="the notebook to write (default: "
              "reproduce-RUN_NAME.ipynb); its packages go beside it, in NAME-requirements.txt")
    @line_magic
    def aml_reproduce(self, line: str) -> Card:
        """Write a notebook that makes a tracked run again: its packages, the cells run before
        it and the cell with its params: %aml_reproduce [RUN] [--path NOTEBOOK]."""
        args = self._parse(self.aml_reproduce, line, "%aml_reproduce")
        from mlmagic import core

        return core.reproduce(args.run, path=args.path)

    @magic_arguments()
    @argument("-e", "--experiment", help="experiment name (default: the current one)")
    @argument("-f", "--filter", help="MLflow filter, e.g. \"metrics.accuracy > 0.9\"")
    @argument("-o", "--order-by", action="append", help="e.g. \"metrics.accuracy DESC\" "
              "(repeatable)")
    @argument("-m", "--max", type=int, help="most runs to return")
    @line_magic
    def aml_runs(self, line: str) -> pd.DataFrame:
        """The experiment's runs as a pandas DataFrame: df = %aml_runs [--filter …]."""
        args = self._parse(self.aml_runs, line, "%aml_runs")
        from mlmagic import core

        return core.runs(
            args.experiment,
            filter_string=args.filter,
            order_by=args.order_by,
            max_results=self.max_runs if args.max is None else args.max,
        )

    @magic_arguments()
    @argument("script", help="the Python script to run")
    @argument("--args", default="", help='its arguments, quoted: --args "--lr 0.1"')
    @argument("-e", "--experiment", help="experiment of the run (default: the current one)")
    @argument("-n", "--name", help="run name (default: the script's name)")
    @argument("--compute", help="Azure ML: run as a command job on this compute cluster")
    @argument("--environment", help="Azure ML: the job's environment (NAME:VERSION or "
              "NAME@latest); default: a fresh one with mlflow and azureml-mlflow")
    @argument("--pip", action="append", default=[], metavar="PACKAGE",
              help="Azure ML: a pip package for the job's environment (repeatable)")
    @argument("--wait", dest="wait", action="store_true", default=True,
              help="wait for the end, showing the output (default)")
    @argument("--no-wait", dest="wait", action="store_false",
              help="run in the background; %%aml_jobs shows its state and log")
    @line_magic
    def aml_submit(self, line: str):
        """Run a training script whose MLflow logging lands in a run of the experiment:
        %aml_submit train.py --args "--lr 0.1" [--no-wait], or on Azure ML: --compute NAME."""
        args = self._parse(self.aml_submit, line, "%aml_submit")
        from mlmagic import core

        return core.submit(
            args.script, args=args.args, experiment=args.experiment, name=args.name,
            compute=args.compute, environment=args.environment, pip=args.pip, wait=args.wait,
        )

    @magic_arguments()
    @argument("name", nargs="?", help="one job: its state and log")
    @line_magic
    def aml_jobs(self, line: str):
        """The submitted jobs with their state and log tail: %aml_jobs; one job: %aml_jobs NAME."""
        args = self._parse(self.aml_jobs, line, "%aml_jobs")
        from mlmagic import core

        return core.job(args.name) if args.name is not None else core.jobs()

    @magic_arguments()
    @argument("run", nargs="?", default="last", help="last (default), a run id or a run name")
    @argument("--download", metavar="PATH", help="download this artifact of the run")
    @argument("--to", metavar="FOLDER", help="where --download puts it (default: .)")
    @line_magic
    def aml_show(self, line: str):
        """A run's params, latest metrics, tags, artifacts and link: %aml_show [RUN];
        %aml_show RUN --download model/MLmodel fetches an artifact."""
        args = self._parse(self.aml_show, line, "%aml_show")
        if args.to is not None and args.download is None:
            raise InvalidInput("%aml_show: --to goes with --download PATH.")
        from mlmagic import core

        if args.download:
            from mlmagic.core.inspection import Downloaded

            path = core.download_artifact(args.run, args.download, args.to or ".")
            return Downloaded(path, args.download, args.run)
        return core.show(args.run)

    @magic_arguments()
    @argument("runs", nargs="+", help="two runs or more: last, run ids or run names")
    @argument("-m", "--metric", help="chart this metric's history for each run")
    @line_magic
    def aml_compare(self, line: str):
        """Runs side by side (params, final metrics, differences highlighted) and a chart of
        one metric's history: %aml_compare last baseline --metric loss."""
        args = self._parse(self.aml_compare, line, "%aml_compare")
        from mlmagic import core

        return core.compare(args.runs, metric=args.metric)

    @magic_arguments()
    @line_magic
    def aml_workspace(self, line: str) -> Card:
        """The workspace (or store) in use: name, region, resource group, tracking URI, link."""
        self._parse(self.aml_workspace, line, "%aml_workspace")
        from mlmagic import core

        return core.workspace()

    @magic_arguments()
    @argument("-w", "--workspace", help="Azure ML workspace name (default: the connected one)")
    @argument("--subscription", help="its subscription id")
    @argument("-g", "--resource-group", help="its resource group")
    @argument("--region", help="its region, e.g. westeurope")
    @argument("-o", "--output", default="mlmagic-init.sh", help="the script's path "
              "(default: mlmagic-init.sh)")
    @line_magic
    def aml_init_script(self, line: str):
        """Write an Azure Databricks cluster init script that points the cluster's MLflow at an
        Azure ML workspace: %aml_init_script --workspace W --subscription S --resource-group G
        --region R."""
        args = self._parse(self.aml_init_script, line, "%aml_init_script")
        from mlmagic import core

        return core.init_script(args.output, workspace=args.workspace,
                                subscription=args.subscription,
                                resource_group=args.resource_group, region=args.region)

    def _variable(self, name: str):
        if not name.isidentifier():
            raise InvalidInput(f"'{name}' is not a variable name. Example: df")
        if name not in self.shell.user_ns:
            raise InvalidInput(f"there is no variable '{name}' in the notebook.")
        return self.shell.user_ns[name]

    def _checked_output(self, name: str | None) -> str | None:
        """A variable name the magic may assign: not a keyword, a builtin or a dunder."""
        if name is None:
            return None
        if (not name.isidentifier() or keyword.iskeyword(name) or hasattr(builtins, name)
                or (name.startswith("__") and name.endswith("__"))):
            raise InvalidInput(f"'{name}' cannot hold the result: give a variable name that "
                               "is not a Python keyword or builtin, e.g. scored.")
        return name

    @observe("default_experiment")
    def _share_default_experiment(self, change) -> None:
        from mlmagic.core.session import current_session

        current_session().default_experiment = change.new

    def _exclusive(self, args, first: str, second: str, shown_name: str) -> None:
        """Refuse a line that gives two options that exclude each other."""
        if getattr(args, first) is not None and getattr(args, second) is not None:
            flags = [f"--{name.replace('_', '-')}" for name in (first, second)]
            raise InvalidInput(f"{shown_name}: {flags[1]} does not go with {flags[0]}.")

    def _parse(self, magic, line: str, shown_name: str):
        """The one way a magic reads its line: IPython's splitting and argparse, every
        failure one line, quotes taken off, and no blank values."""
        if hasattr(magic, "complete_parser"):
            magic.complete_parser()
        try:
            args = parse_argstring(magic, _without_comment(line))
        except UsageError as error:
            hint = _close_option(magic.parser, str(error))
            raise UsageError(f"{error}.{hint} See {shown_name}? for the options.") from None
        except ValueError:  # shlex: an open quote
            raise InvalidInput(f"{shown_name}: a quote is not closed in: {line.strip()[:120]}"
                               ) from None
        for name, value in vars(args).items():
            if isinstance(value, str):
                setattr(args, name, _unquote(value))
            elif isinstance(value, list):
                setattr(args, name, [_unquote(v) if isinstance(v, str) else v for v in value])
            _refuse_blank(magic.parser, name, getattr(args, name), shown_name)
        return args

    def _compile(self, cell: str):
        """Compile the cell as IPython would; split off a last expression to return its value."""
        shell = self.shell
        source = shell.transform_cell(cell)
        tree = shell.transform_ast(shell.compile.ast_parse(source))
        last = None
        # `value;` at the end runs and shows nothing, as IPython decides for any cell
        if tree.body and isinstance(tree.body[-1], ast.Expr) and not _ends_quietly(cell):
            last = ast.Expression(tree.body.pop().value)
        filename = shell.compile.cache(source, shell.execution_count)
        code = shell.compile(tree, filename, "exec")
        return code, shell.compile(last, filename, "eval") if last else None

    def _shows_live_summary(self) -> bool:
        # Only a kernel's front end redraws a display in place; a terminal would print anew.
        in_kernel = getattr(self.shell, "kernel", None) is not None
        return self.show_summary and self.live_interval > 0 and in_kernel

    def _show_last_run(self, live: _LiveSummary | None) -> None:
        from mlmagic import core
        from mlmagic.base.display import notify

        try:
            summary = core.last_run_summary()
            live.finish(summary) if live else display(summary)
        except Exception as error:
            notify(f"the run is recorded, but its summary could not be shown: {error}")


class _LiveSummary:
    """The running cell's summary, shown once and redrawn in place every ``interval`` s."""

    def __init__(self, interval: float) -> None:
        self.interval = interval
        self.handle = DisplayHandle()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def start(self) -> None:
        from mlmagic import core

        self.handle.display(core.running_summary())
        # the kernel finds the cell an output belongs to in the context: give it to the thread
        context = contextvars.copy_context()
        self._thread = threading.Thread(target=context.run, args=(self._refresh,), daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join()

    def finish(self, summary) -> None:
        self.handle.update(summary)

    def _refresh(self) -> None:
        from mlmagic import core

        while not self._stop.wait(self.interval):
            summary = core.running_summary()
            if summary is not None:
                self.handle.update(summary)


def _pairs(pairs: list[str], option: str) -> dict[str, str]:
    parsed = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        key, value = key.strip(), value.strip()
        if not sep or not key:
            raise InvalidInput(
                f"{option} expects KEY=VALUE, got '{pair}'. Example: {option} lr=0.1"
            )
        if parsed.get(key, value) != value:
            raise InvalidInput(f"{option} {key} is given twice, as '{parsed[key]}' and "
                               f"'{value}'.")
        parsed[key] = value
    return parsed


def _variable_names(text: str) -> list[str]:
    return [name for name in re.split(r"[,\s]+", text) if name]  # core.track checks them


def _refuse_blank(parser, dest: str, value, shown_name: str) -> None:
    action = next(a for a in parser._actions if a.dest == dest)
    values = value if isinstance(value, list) else [value]
    if value != action.default and any(isinstance(v, str) and not v.strip() for v in values):
        flag = max(action.option_strings, key=len) if action.option_strings else dest.upper()
        raise InvalidInput(f"{shown_name}: {flag} is empty. See {shown_name}? for the options.")


def _ends_quietly(cell: str) -> bool:
    """Whether the cell's last line ends with ``;`` (before a comment)."""
    lines = [line for line in cell.splitlines() if line.strip()]
    return bool(lines) and _without_comment(lines[-1]).endswith(";")


def _without_comment(line: str) -> str:
    """The line up to a ``#`` that begins a word outside quotes, as a shell reads it: a
    comment after a magic's arguments (``%aml_sync  # send the journal``) is no argument,
    while ``'team #1'`` and ``a#b`` keep theirs."""
    quote = None
    for index, char in enumerate(line):
        if quote:
            quote = None if char == quote else quote
        elif char in "'\"":
            quote = char
        elif char == "#" and (index == 0 or line[index - 1].isspace()):
            return line[:index].rstrip()
    return line


def _close_option(parser, error: str) -> str:
    """" Did you mean --name?" for an unrecognized option close to one the magic has (as
    JupySQL suggests), else nothing."""
    import difflib

    if not error.startswith("unrecognized arguments:"):
        return ""
    options = [option for action in parser._actions for option in action.option_strings
               if option.startswith("--")]
    for word in error.split(":", 1)[1].split():
        if word.startswith("--"):
            close = difflib.get_close_matches(word.split("=", 1)[0], options, n=1)
            if close:
                return f" Did you mean {close[0]}?"
    return ""


def _unquote(value: str) -> str:
    # IPython splits magic lines without POSIX rules, so quotes stay on the values.
    if len(value) >= 2 and value[0] == value[-1] and value[0] in "'\"":
        return value[1:-1]
    return value
