"""The fuzz suite: over a thousand seeded malformed lines, over every magic. Each must be
refused in one line, without a traceback, and change nothing: the store's experiments, runs,
logged models, registered models and versions, the session's endpoints, the files of the
working folder and the notebook's variables are counted before and after."""

from __future__ import annotations

import random
import re
import shlex

import pandas as pd
import pytest
from conftest import PRICE_CELL

from mlmagic.magics import MlMagic

SEED = 13
COUNT = 1100
CELL_BODY = "fuzz_cell_ran = True\n"
ERROR = re.compile(
    r"^(UsageError|InvalidInput|NotFound|ConnectionFailed|ConfigError|MissingExtra|"
    r"PermissionDenied|MlmagicError): \S"
)
LONG = "x" * 300
MISSING_RUN = "0" * 32

# Lines that work (never run by this test): the mutations below break them.
VALID = {
    "aml_connect": ["--experiment fuzz", "--timeout 5 -e fuzz"],
    "aml_experiment": ["fuzz"],
    "aml_status": [""],
    "aml_sync": [""],
    "aml_endpoints": [""],
    "aml_workspace": [""],
    "aml_panel": [""],
    "aml_register": ["price --run last --alias champion --tag stage=test",
                     "price --uri models:/price/1"],
    "aml_models": ["", "price"],
    "aml_deploy": ["price --name svc2 --timeout 60", "price@champion --check houses"],
    "aml_predict": ["price houses"],
    "aml_score": ["price --input houses --output scored", "price:1 --input houses"],
    "aml_undeploy": ["price"],
    "track": ["--name fit --param lr=0.1 --tag team=risk --capture acc",
              "-n fit -e fuzz --no-source --autolog --param lr=0.1"],
    "aml_runs": ['--filter "metrics.x > 0" --order-by "metrics.x DESC" --max 5', "-e fuzz"],
    "aml_submit": ['train.py --args "--lr 0.1" -n run1', "train.py --no-wait"],
    "aml_jobs": [""],
    "aml_show": ["last", "last --download cell.py --to out"],
    "aml_compare": ["last price-model --metric loss"],
    "aml_reproduce": ["last", "price-model --path again.ipynb"],
    "aml_init_script": ["--workspace w --subscription s --resource-group g --region westeurope "
                        "-o init.sh"],
}

MODEL_REFS = [
    "price:abc", ":1", "@champion", "price:", "price@", "price:1:2", "price@@x", "price@no-alias",
    "models:/", "models:/price/abc", "models:/@champion", "models:/price/0", "price:0",
    "price:-1", "price:99", "nosuch", "nosuch:1", "price@missing", f"runs:/{MISSING_RUN}/model",
    "runs:/", "'", '""', "models:/price@", "price:1@champion", "price:\u0661", "x" * 5000,
    "price:1.0", "file:///nowhere/model", "models:/nosuch/1", "price:99999999999999999999",
]
NAMES = ['""', "../evil", "a/b", "..", ".", LONG, "'a b'", "-", "x\\y", "con:sole"]
VARIABLES = ["missing", "n", "1x", '""', "print", "class", "houses.x", LONG]
ALIASES = ['"bad alias"', "v2", "V10", "latest", '""', LONG, "a/b", "champion!"]
PORTS = ["0", "-1", "65536", "70000", "abc", "1.5", "nan", '""']
TIMEOUTS = ["-1", "nan", "inf", "-inf", "0", "abc", '""']
PAIRS = ["lr", "=1", '""', f"{'k' * 300}=1", "a$b=1", "a b=1", f"k={'v' * 9000}"]

# (option, bad values) per magic; "<1>" and "<2>" replace the first or second positional.
BAD_VALUES = {
    "aml_connect": [
        ("<1>", ["http://[::1", "http://", "http://:5000", "ftp://host/x",
                 "http://127.0.0.1:99999", "stray", "sqlite://", '""']),
        ("--timeout", TIMEOUTS), ("--auth", ["nope", '""']),
        ("--from", ["n", "houses", "missing", '""', "1x"]),
        ("--workspace", ["w", '""']), ("--config", ["no/such/config.json", '""', "."]),
        ("-e", ['""', "'  '"]),
    ],
    "aml_experiment": [("<1>", ['""', "--name", "'  '", "x" * 600])],
    "aml_register": [
        ("<1>", ['""', "a/b", "a:b", "'  '"]), ("--alias", ALIASES),
        ("--run", ["nosuchrun", '""', MISSING_RUN]), ("--path", ["nope", '""']),
        ("--uri", MODEL_REFS[:12] + [f"runs:/{MISSING_RUN}/model", "models:/nosuch/1", '""']),
        ("--tag", PAIRS),
    ],
    "aml_models": [("<1>", ["nosuch", '""', "a/b"])],
    "aml_deploy": [
        ("<1>", MODEL_REFS), ("--name", NAMES), ("--port", PORTS), ("--timeout", TIMEOUTS),
        ("--target", ["nope", "LOCAL", "online", "kubernetes", "aci", "aks"]),
        ("--check", VARIABLES + ["wrongcols"]), ("--cpu-cores", ["1", "-1"]),
        ("--instance-count", ["0", "-2", "abc"]), ("--compute", ["k8s"]),
        ("--location", ["eastus"]), ("--tag", ["x"]),
    ],
    "aml_predict": [("<1>", ["nope", '""', "../x"]),
                    ("<2>", VARIABLES + ["wrongcols", "emptyframe"])],
    "aml_score": [("<1>", MODEL_REFS), ("--input", VARIABLES + ["wrongcols"]),
                  ("--output", ["print", "1x", '""', "class", "a.b", "len", "__name__"])],
    "aml_undeploy": [("<1>", ["nope", '""', "../x", "svc2"]),
                     ("--deployment", ["blue", '""'])],
    "track": [
        ("--param", PAIRS + ["lr=0.2"]), ("--tag", PAIRS), ("--capture", ["1x", "a-b", "a.b"]),
        ("--name", ['""', "'  '"]), ("-e", ['""', "'  '"]),
        ("--register", ['""', "a/b", "a:b"]),
    ],
    "aml_runs": [
        ("--max", ["0", "-5", "abc", "1.5", '""']),
        ("--filter", ['"metrics.x >"', "bogus", '"params.a = \'x"', '"x = 1"', '""']),
        ("--order-by", ['"metrics.x SIDEWAYS"', '"a b c"', '""']),
        ("-e", ["nosuch", '""']),
    ],
    "aml_submit": [
        ("<1>", ["missing.py", '""', ".", "no/such/x.py"]),
        ("--args", ["\"'unclosed\"", '"\\"x"']), ("--environment", ["env"]), ("--pip", ["x"]),
        ("--compute", ["c", '""']), ("-e", ['""']), ("-n", ['""', "'  '"]),
    ],
    "aml_jobs": [("<1>", ["nope", '""', "'a b'"])],
    "aml_show": [("<1>", ["nosuchrun", MISSING_RUN, '""']),
                 ("--download", ["nope.txt", "../../etc/passwd", '""', "/etc/passwd"]),
                 ("--to", ['""', "train.py"])],
    "aml_compare": [("<1>", ["nosuch", '""', MISSING_RUN]), ("--metric", ["nope", '""'])],
    "aml_reproduce": [("<1>", ["nosuchrun", MISSING_RUN, '""']),
                      ("--path", ['""', "notes.txt", "no/such/dir/x.ipynb", ".", "train.py"])],
    "aml_init_script": [("-o", ['""', "no/such/dir/x.sh", "."]),
                        ("--region", ['""', "'west europe'"]), ("--workspace", ['""'])],
}

EXPLICIT = [
    "%aml_status --bogus", "%aml_status x", "%aml_sync --all", "%aml_endpoints price",
    "%aml_workspace -v", "%aml_panel now", "%aml_jobs a b", "%aml_models a b",
    "%aml_experiment --name x", "%aml_experiment -x y", "%aml_experiment", "%aml_register",
    "%aml_deploy", "%aml_predict price", "%aml_predict", "%aml_score", "%aml_score price",
    "%aml_undeploy", "%aml_compare last", "%aml_compare", "%aml_submit",
    "%aml_register price --uri models:/price/1 --run last",
    f"%aml_connect sqlite:///{'d' * 10}/x.db --workspace w",
    "%aml_score price --input houses --output print",
    '%aml_deploy price --name "../../escape"', "%aml_undeploy price --deployment blue",
    "%%track --param lr=0.1 --param lr=0.2\n" + CELL_BODY,
    "%%track --param lr=1 --bogus\n" + CELL_BODY,
    '%%track --name "unclosed\n' + CELL_BODY,
]


def _splits(line: str) -> list[str] | None:
    """The line's arguments as IPython splits them, None if its quotes do not balance."""
    try:
        lexer = shlex.shlex(line, posix=False)
        lexer.whitespace_split, lexer.commenters = True, ""
        return list(lexer)
    except ValueError:
        return None


def _as_cell(magic: str, arguments: str) -> str:
    if magic == "track":
        return f"%%track {arguments}\n{CELL_BODY}"
    return f"%{magic} {arguments}".rstrip()


def _unbalanced_quote(rng, magic, base):
    tokens = _splits(base) or []
    quote = rng.choice(['"', "'"])
    tokens.insert(rng.randint(0, len(tokens)), quote + rng.choice(["", "x", "a b", "--n"]))
    line = " ".join(tokens)
    return line if _splits(line) is None else None


def _unknown_option(rng, magic, base):
    tokens = _splits(base) or []
    option = rng.choice(["--zz", "--bogus", "-Z", "--nmae", "--zz-top=1", "--x"])
    tokens.insert(rng.randint(0, len(tokens)), option)
    return " ".join(tokens)


def _bad_value(rng, magic, base):
    if magic not in BAD_VALUES:
        return None
    option, values = rng.choice(BAD_VALUES[magic])
    value = rng.choice(values)
    tokens = _splits(base) or []
    if option.startswith("<"):
        position = int(option[1]) - 1
        positional = [i for i, t in enumerate(tokens) if not t.startswith("-")
                      and (i == 0 or not tokens[i - 1].startswith("-"))]
        if position < len(positional):
            tokens[positional[position]] = value
        elif position == len(positional):
            tokens.insert(0 if position == 0 else positional[-1] + 1, value)
        else:
            return None
        return " ".join(tokens)
    return " ".join([*tokens, option, value])


def _stray_argument(rng, magic, base):
    if magic in ("aml_compare", "aml_jobs", "aml_models", "aml_connect", "aml_show",
                 "aml_experiment"):
        return None  # a stray word is another run, job, model, URI or a word of the name
    return f"{base} stray{rng.randint(0, 99)}".strip()


def _missing_value(rng, magic, base):
    tokens = _splits(base) or []
    options = [i for i, t in enumerate(tokens) if t.startswith("--")
               and i + 1 < len(tokens) and not tokens[i + 1].startswith("-")]
    if not options:
        return None
    cut = rng.choice(options)
    return " ".join(tokens[:cut + 1])


MUTATIONS = (_unbalanced_quote, _unknown_option, _bad_value, _bad_value, _bad_value,
             _stray_argument, _missing_value)


def malformed_lines(count: int = COUNT, seed: int = SEED) -> list[str]:
    """``count`` distinct malformed cells, the same for the same seed."""
    rng = random.Random(seed)
    lines = dict.fromkeys(EXPLICIT)
    bases = [(magic, base) for magic, bases in sorted(VALID.items()) for base in bases]
    while len(lines) < count:
        magic, base = rng.choice(bases)
        arguments = rng.choice(MUTATIONS)(rng, magic, base)
        if arguments is not None and (arguments or magic == "aml_jobs"):
            lines[_as_cell(magic, arguments)] = None
    return list(lines)


def test_every_magic_is_fuzzed():
    magics = set(MlMagic.magics["line"]) | set(MlMagic.magics["cell"])
    assert magics == set(VALID), f"fuzz the new magics too: {magics ^ set(VALID)}"
    assert len(malformed_lines()) >= 1000


@pytest.fixture(scope="module")
def store(tmp_path_factory):
    return tmp_path_factory.mktemp("fuzz-store")


@pytest.fixture
def prepared(shell, store, monkeypatch):
    """A store with a run, a logged and registered model (price, alias champion), a live local
    endpoint 'price', a script, and variables of each kind in the notebook."""
    monkeypatch.chdir(store)
    shell.run_line_magic("aml_connect", "--experiment fuzz")
    assert shell.run_cell(PRICE_CELL).success
    shell.run_line_magic("aml_register", "price --run last --alias champion")
    (store / "train.py").write_text("print('trained')\n")
    shell.user_ns.update(
        houses=pd.DataFrame({"rooms": [5.0, 6.0], "age": [1.0, 2.0]}),
        wrongcols=pd.DataFrame({"colour": ["red"]}), emptyframe=pd.DataFrame(), n=3,
    )
    shell.run_line_magic("aml_deploy", "price")
    yield shell  # the session's end (conftest) stops its local endpoints


def _snapshot(shell, folder) -> dict:
    from mlflow import MlflowClient
    from mlflow.entities import ViewType

    from mlmagic.core.session import current_session

    client = MlflowClient(f"sqlite:///{folder / 'mlflow.db'}")
    connection = current_session().connection
    experiments = client.search_experiments(view_type=ViewType.ALL)
    ids = [e.experiment_id for e in experiments]
    return {
        "connection": connection and (connection.tracking_uri, connection.experiment_id),
        "experiments": len(experiments),
        "runs": len(client.search_runs(ids, run_view_type=ViewType.ALL, max_results=5000)),
        "logged models": len(client.search_logged_models(ids)),
        "registered models": len(client.search_registered_models()),
        "versions": len(client.search_model_versions()),
        "aliases": dict(client.get_registered_model("price").aliases),
        "endpoints": {name: e.details.get("pid")
                      for name, e in current_session().endpoints.items()},
        "files": sorted(str(p.relative_to(folder)) for p in folder.rglob("*")
                        if "mlruns" not in p.parts and p.name != "mlflow.db"),
        "variables": sorted(k for k in shell.user_ns if not k.startswith("_")
                            and k not in ("In", "Out", "exit", "quit", "get_ipython")),
    }


def test_malformed_lines_are_one_line_and_change_nothing(prepared, store, capsys):
    capsys.readouterr()
    before = _snapshot(prepared, store)
    failures = []
    for line in malformed_lines():
        result = prepared.run_cell(line)
        captured = capsys.readouterr()
        printed = [text for text in (captured.out + captured.err).splitlines() if text.strip()]
        after = _snapshot(prepared, store)
        problems = []
        if result.success:
            problems.append("the cell succeeded")
        if len(printed) != 1 or not ERROR.match(printed[0]):
            problems.append(f"printed {printed[:6]}")
        if after != before:
            problems.append("changed " + ", ".join(k for k in before if before[k] != after[k]))
            if after["connection"] != before["connection"]:
                prepared.run_line_magic("aml_connect", "--experiment fuzz")
                capsys.readouterr()
            before = _snapshot(prepared, store)
        if "fuzz_cell_ran" in prepared.user_ns:
            problems.append("the cell's body ran")
            del prepared.user_ns["fuzz_cell_ran"]
            before = _snapshot(prepared, store)
        if problems:
            failures.append(f"{line!r}: {'; '.join(problems)}")
    assert not failures, f"{len(failures)} of {len(malformed_lines())} lines:\n" + "\n".join(
        failures[:80])
