"""Configuration checks: the JSON schema plus the rules a schema cannot express.

The Snakefile validates the config with ``snakemake.utils.validate`` against
:data:`SCHEMA_PATH` and then calls :func:`check_config`; both run before any job, so a typo
or an impossible value stops the run with a message that names the key.
"""

from __future__ import annotations

import difflib
import math
import numbers
import re
from importlib import resources
from pathlib import Path

import yaml

from .inference.data import CHANNELS, SIZES, SPLITS, split_size
from .synthetic.experiments import GRID_KEYS, NEURAL_ESTIMATORS, NEURAL_GRID_KEYS, NN_OPTIONS, parse_p
from .synthetic.scalable import SCALABLE_ESTIMATORS

SCHEMA_PATH = Path(str(resources.files("mipipe") / "schemas" / "config.schema.yaml"))
FAMILY_PARAMS = {"linear": "alpha", "gaussian_beta": "beta"}
# Output names the pipeline uses itself; an experiment may not take them.
RESERVED_EXPERIMENT_NAMES = ("eps_sensitivity", "failures")  # tables/<name>.* of the pipeline
INT_KEYS = ("n", "d", "noise_dims", "cov_seed")
# neural keys an experiment may set for its neural estimators (ema is MINE's own)
NEURAL_EXPERIMENT_KEYS = (*NEURAL_GRID_KEYS, "shuffle", "holdout", "device")
NN_EXPERIMENT_KEYS = (*GRID_KEYS, *NN_OPTIONS)
CONVERGENCE_SUFFIX = "_convergence"  # figures/<experiment>_convergence.* of neural runs


class ConfigError(ValueError):
    """A configuration value that the pipeline cannot run with."""


def load_schema() -> dict:
    return yaml.safe_load(SCHEMA_PATH.read_text())


def _resolve(node: dict, schema: dict) -> dict:
    ref = node.get("$ref")
    if ref:
        node = schema
        for part in ref.lstrip("#/").split("/"):
            node = node[part]
    return node


def check_keys(config, schema: dict | None = None, path: str = "", node: dict | None = None) -> None:
    """Reject unknown keys with the allowed ones and the closest match, before the schema
    validation (whose message for a typo does not list the alternatives)."""
    schema = schema or load_schema()
    node = _resolve(node if node is not None else schema, schema)
    if not isinstance(config, dict) or node.get("type") != "object":
        return
    props = node.get("properties", {})
    extra = node.get("additionalProperties", True)
    for key, value in config.items():
        where = f"{path}/{key}" if path else str(key)
        if key in props:
            check_keys(value, schema, where, props[key])
        elif extra is False:
            close = difflib.get_close_matches(str(key), list(props), n=1)
            hint = f"; did you mean {close[0]!r}?" if close else "."
            raise ConfigError(
                f"config key {where}: unknown key {key!r}{hint} Allowed here: {sorted(props)}"
            )
        elif isinstance(extra, dict):
            check_keys(value, schema, where, extra)


def validate_schema(config: dict) -> None:
    """Validate against the JSON schema (library use; the Snakefile uses snakemake's validate).

    Raises :class:`ConfigError` naming the offending key path.
    """
    import jsonschema

    validator = jsonschema.Draft202012Validator(load_schema())
    errors = sorted(validator.iter_errors(config), key=lambda e: list(e.absolute_path))
    if errors:
        e = errors[0]
        where = "/".join(str(p) for p in e.absolute_path) or "(top level)"
        raise ConfigError(f"config key {where}: {e.message}")


def check_config(config: dict) -> None:
    """Cross-key checks after schema validation. Raises :class:`ConfigError`.

    * each dataset has the parameter its family needs (alpha for linear, beta for
      gaussian_beta) and noise_dims < d;
    * each experiment names a defined dataset (a ``sweep: task`` experiment, known task ids
      instead, mipipe.tasks.TASKS); its n values do not exceed the dataset's n,
      its D values do not exceed d; k is below the smallest n.
    * experiment-level nearest-neighbour keys (k, p, correction, eps) need a
      nearest-neighbour estimator in the experiment, neural keys (hidden, lr, epochs,
      batch_size, shuffle, holdout, device) a neural one; an eps sweep has no neural
      estimator (eps is a nearest-neighbour parameter).
    * no experiment is named like another one's convergence figure (``<name>_convergence``).
    """
    _check_numbers(config)
    _check_seeds(config)
    if "inference" in config:
        check_inference(config["inference"])
    if "bring_your_own" in config:
        check_bring_your_own(config["bring_your_own"])
    datasets = config.get("datasets", {})
    for name, ds in datasets.items():
        fam = ds["family"]
        need = FAMILY_PARAMS.get(fam)
        if need and need not in ds:
            raise ConfigError(f"datasets/{name}: family {fam!r} needs the key {need!r}")
        for other in set(FAMILY_PARAMS.values()) - {need}:
            if other in ds:
                raise ConfigError(
                    f"datasets/{name}/{other}: not a parameter of family {fam!r}"
                    + (f" (it takes {need!r})" if need else " (it takes no shape parameter)")
                )
        if ds.get("noise_dims", 0) >= ds["d"]:
            raise ConfigError(
                f"datasets/{name}/noise_dims = {ds['noise_dims']} must be < d = {ds['d']} "
                f"(at least one signal dimension)"
            )
    for name, ex in config.get("experiments", {}).items():
        where = f"experiments/{name}"
        if name in RESERVED_EXPERIMENT_NAMES:
            raise ConfigError(
                f"{where}: the name {name!r} is reserved for a table the pipeline writes "
                f"itself; reserved: {list(RESERVED_EXPERIMENT_NAMES)}"
            )
        if name.endswith(CONVERGENCE_SUFFIX) and name[: -len(CONVERGENCE_SUFFIX)] in config["experiments"]:
            raise ConfigError(
                f"{where}: the name {name!r} is taken by the convergence figure of experiment "
                f"{name[: -len(CONVERGENCE_SUFFIX)]!r}; choose another name"
            )
        _check_families(ex, where)
        if ex["sweep"] == "task":
            _check_tasks(ex, where)
            continue
        ds_name = ex["dataset"]
        if ds_name not in datasets:
            raise ConfigError(
                f"{where}/dataset: unknown dataset {ds_name!r}; defined: {sorted(datasets)}"
            )
        ds = datasets[ds_name]
        n_values = ex.get("n", [ds["n"]])
        for n in n_values:
            if n > ds["n"]:
                raise ConfigError(f"{where}/n: {n} exceeds dataset {ds_name!r}'s n = {ds['n']}")
        for D in ex.get("D", [ds["d"]]):
            if D > ds["d"]:
                raise ConfigError(f"{where}/D: {D} exceeds dataset {ds_name!r}'s d = {ds['d']}")
        for est, spec in ex["estimators"].items():
            spec = spec or {}
            if est in SCALABLE_ESTIMATORS:
                _check_scalable(est, spec, n_values, f"{where}/estimators/{est}")
                continue
            if est in NEURAL_ESTIMATORS:
                continue
            ks = spec.get("k", ex.get("k", [1]))
            if max(ks) >= min(n_values):
                raise ConfigError(
                    f"{where}/estimators/{est}/k: k = {max(ks)} must be < the smallest n = "
                    f"{min(n_values)} (the k-th neighbour needs n > k)"
                )
            norms = [parse_p(p) for p in spec.get("p", ex.get("p", []))]
            if len(set(norms)) != len(norms):
                raise ConfigError(f"{where}/estimators/{est}/p: the same norm is listed twice: {norms}")


def select_estimators(config: dict) -> None:
    """Apply the top-level ``only_estimators`` list in place: every experiment keeps only
    those estimators, and an experiment left with none is dropped. Raises
    :class:`ConfigError` naming the key when a listed name appears in no experiment (a
    typo), so at least one experiment is always left. A config without the key is
    unchanged."""
    only = config.get("only_estimators")
    if only is None:
        return
    experiments = config.get("experiments") or {}
    used = sorted({est for ex in experiments.values() for est in ex["estimators"]})
    unknown = [est for est in only if est not in used]
    if unknown:
        raise ConfigError(
            f"only_estimators: {unknown} appear in no experiment; the experiments use {used}"
        )
    kept = {}
    for name, ex in experiments.items():
        estimators = {est: spec for est, spec in ex["estimators"].items() if est in only}
        if estimators:
            kept[name] = {**ex, "estimators": estimators}
    config["experiments"] = kept


def _check_tasks(ex: dict, where: str) -> None:
    """A task sweep: every id is one of mipipe.tasks.TASKS; k below the smallest n; the
    scalable estimators' options as in any other sweep."""
    from .synthetic.tasks import TASKS

    for i, task_id in enumerate(ex["tasks"]):
        if task_id not in TASKS:
            close = difflib.get_close_matches(task_id, list(TASKS), n=1, cutoff=0.5)
            hint = f"; did you mean {close[0]!r}?" if close else " (see mipipe.tasks.TASKS)"
            raise ConfigError(f"{where}/tasks/{i}: unknown task id {task_id!r}{hint}")
    n_min = min(ex["n"])
    for est, spec in ex["estimators"].items():
        if est in SCALABLE_ESTIMATORS:
            _check_scalable(est, spec or {}, ex["n"], f"{where}/estimators/{est}")
            continue
        if est in NEURAL_ESTIMATORS:
            continue
        ks = (spec or {}).get("k", ex.get("k", [1]))
        if max(ks) >= n_min:
            raise ConfigError(
                f"{where}/estimators/{est}/k: k = {max(ks)} must be < the smallest n = {n_min} "
                f"(the k-th neighbour needs n > k)"
            )


def _check_scalable(est: str, spec: dict, n_values, where: str) -> None:
    """Options of cca/sliced/ksliced/latent: integers where the schema says so (YAML's 3.0
    passes "integer"), KSG's k below the smallest n, latent's validation half big enough."""
    for key in ("n_slices", "k", "dim", "latent_dim", "epochs", "patience", "batch_size"):
        if key in spec and not _is_int(spec[key]):
            raise ConfigError(f"{where}/{key}: must be an integer, got {spec[key]!r}")
    if "width" in spec and spec["width"] is not None and not _is_int(spec["width"]):
        raise ConfigError(f"{where}/width: must be an integer or null, got {spec['width']!r}")
    k = spec.get("k", 3 if est in ("sliced", "ksliced", "latent") else 0)
    need = 2 * (k + 1) if est == "latent" else k + 1  # latent: KSG on the validation half
    if min(n_values) < need:
        raise ConfigError(
            f"{where}: the smallest n = {min(n_values)} is too small for {est} (needs n >= "
            f"{need}: k = {k} neighbours{' on the validation half' if est == 'latent' else ''})"
        )


def _check_families(ex: dict, where: str) -> None:
    """Experiment-level keys must be used by some estimator of their family."""
    names = list(ex["estimators"])
    neural = [e for e in names if e in NEURAL_ESTIMATORS]
    scalable = [e for e in names if e in SCALABLE_ESTIMATORS]
    nn = [e for e in names if e not in NEURAL_ESTIMATORS and e not in SCALABLE_ESTIMATORS]
    if ex["sweep"] == "eps" and (neural or scalable):
        raise ConfigError(
            f"{where}/estimators: an eps sweep varies a nearest-neighbour tolerance; the "
            f"estimator(s) {neural + scalable} have no eps (move them to an n or D sweep)"
        )
    for keys, family, have in ((NN_EXPERIMENT_KEYS, "nearest-neighbour (knn, ksg1, ksg2)", nn),
                               (NEURAL_EXPERIMENT_KEYS, "neural (mine, infonce, nwj, smile, club)", neural)):
        unused = [k for k in keys if k in ex]
        if unused and not have:
            raise ConfigError(
                f"{where}/{unused[0]}: a {family} parameter, but the experiment has no "
                f"{family} estimator (it has {names})"
            )


def _check_numbers(config: dict) -> None:
    """YAML accepts .nan, .inf and 10000.0 where the schema's "number"/"integer" do too."""
    for i, seed in enumerate(config.get("seeds", [])):
        if not _is_int(seed):
            raise ConfigError(f"seeds/{i}: a seed must be an integer, got {seed!r}")
    for name, ds in config.get("datasets", {}).items():
        for key in INT_KEYS:
            if key in ds and not _is_int(ds[key]):
                raise ConfigError(f"datasets/{name}/{key}: must be an integer, got {ds[key]!r}")
        for key in ("alpha", "beta"):
            if key in ds and not math.isfinite(ds[key]):
                raise ConfigError(f"datasets/{name}/{key}: must be a finite number, got {ds[key]!r}")
    for name, ex in config.get("experiments", {}).items():
        for i, seed in enumerate(ex.get("seeds", [])):
            if not _is_int(seed):
                raise ConfigError(f"experiments/{name}/seeds/{i}: a seed must be an integer, got {seed!r}")
        specs = [("", ex)] + [(f"/estimators/{e}", s or {}) for e, s in ex["estimators"].items()
                              if e not in SCALABLE_ESTIMATORS]  # single values: _check_scalable
        for sub, spec in specs:
            for key in ("n", "D", "k", "hidden", "epochs", "batch_size"):
                for v in spec.get(key, []):
                    if not _is_int(v):
                        raise ConfigError(f"experiments/{name}{sub}/{key}: {v!r} is not an integer")
            for key in ("eps", "lr"):
                for v in spec.get(key, []):
                    if not math.isfinite(v):
                        raise ConfigError(f"experiments/{name}{sub}/{key}: {v!r} is not a finite number")
            for v in spec.get("p", []):
                if not isinstance(v, str) and math.isnan(v):
                    raise ConfigError(f"experiments/{name}{sub}/p: NaN is not a norm (use a number >= 1 or inf)")
            for key in ("holdout", "ema", "jitter"):
                if key in spec and not math.isfinite(spec[key]):
                    raise ConfigError(f"experiments/{name}{sub}/{key}: {spec[key]!r} is not a finite number")


def _is_int(v) -> bool:
    return isinstance(v, numbers.Integral) and not isinstance(v, bool)


def _check_finite(node, where: str, skip=("inference/mi/p",)) -> None:
    """Every number under ``node`` is finite (YAML's .nan and .inf pass JSON-schema bounds),
    except at the paths in ``skip`` (a norm p may be .inf, the max norm)."""
    if where in skip:
        return
    if isinstance(node, dict):
        for key, value in node.items():
            _check_finite(value, f"{where}/{key}")
    elif isinstance(node, list):
        for i, value in enumerate(node):
            _check_finite(value, f"{where}/{i}")
    elif isinstance(node, float) and not math.isfinite(node):
        raise ConfigError(f"{where}: {node!r} is not a finite number")


def _check_members(members: dict, victim: dict, where: str) -> None:
    """detection/members must be images the victim trained on (same set, rows inside)."""
    key = f"{where}/detection/members"
    if (members.get("dataset"), members.get("split")) != (victim.get("dataset"), victim.get("split")):
        raise ConfigError(
            f"{key}: {members.get('dataset')}/{members.get('split')} is not the victim's data "
            f"({victim.get('dataset')}/{victim.get('split')}, inference/victim/data)"
        )
    m, v = members.get("rows"), victim.get("rows")
    if v is not None and (m is None or m[0] < v[0] or m[1] > v[1]):
        raise ConfigError(
            f"{key}/rows: {m} must lie inside the victim's rows {v} (inference/victim/data/rows)"
        )
    if m is not None and m[1] - m[0] < 4:
        raise ConfigError(f"{key}/rows: {m} holds fewer than 4 images (half fit the GMM)")


def _check_augmentation(aug: dict, where: str) -> None:
    """What torchvision would refuse only inside a training job: ranges given high-low, and
    a blur kernel that is even (GaussianBlur needs an odd size)."""
    ranges = [("crop_scale", aug.get("crop_scale"))]
    blur = aug.get("blur") or {}
    ranges.append(("blur/sigma", blur.get("sigma")))
    for key, pair in ranges:
        if pair is not None and not pair[0] <= pair[1]:
            raise ConfigError(f"{where}/{key}: [min, max] must have min <= max, got {pair}")
    kernel = blur.get("kernel")
    if kernel is not None and kernel % 2 == 0:
        raise ConfigError(
            f"{where}/blur/kernel: the Gaussian blur kernel must be an odd number of pixels "
            f"(1, 3, 5, ...), got {kernel}"
        )


SEED_KEYS = ("seed", "seeds", "cov_seed")
MAX_SEED = 2**64  # torch.Generator.manual_seed and numpy take seeds in [0, 2**64)


def _check_seeds(node, where: str = "") -> None:
    """Every seed of the config (seed, seeds, cov_seed at any depth) lies in [0, 2**64):
    PyTorch raises "Overflow when unpacking long long" on a larger one, inside a job."""
    if not isinstance(node, dict):
        return
    for key, value in node.items():
        at = f"{where}/{key}" if where else str(key)
        if key in SEED_KEYS:
            for i, seed in enumerate(value if isinstance(value, list) else [value]):
                if _is_int(seed) and not 0 <= seed < MAX_SEED:
                    name = f"{at}/{i}" if isinstance(value, list) else at
                    raise ConfigError(
                        f"{name}: seed {seed} is outside [0, 2**64) (PyTorch's and NumPy's "
                        f"generators take 64-bit seeds)"
                    )
        elif isinstance(value, dict):
            _check_seeds(value, at)
        elif isinstance(value, list):
            for i, item in enumerate(value):
                _check_seeds(item, f"{at}/{i}")


def check_inference(inf: dict) -> None:
    """Cross-key checks of the ``inference`` section (dataset inference). Raises ConfigError.

    * victim/target is one of victim/temperatures;
    * every number is finite; every ``rows: [start, stop]`` has start < stop;
    * every data spec names a split its data set has, with as many colour channels as
      inference/encoder/in_channels;
    * stealing/n_queries fits in the query rows, embeddings/n in the embedding rows, and
      mi/k is below the smallest N; mi/p is a norm as the MI stage parses it;
    * detection/members are rows of the victim's training data;
    * the augmentation's crop_scale and blur sigma are [min, max] with min <= max, and the
      blur kernel is odd (torchvision's GaussianBlur);
    * (with every other seed of the config, in :func:`check_config`) each seed is in
      [0, 2**64).
    """
    where = "inference"
    if inf["victim"]["target"] not in inf["victim"]["temperatures"]:
        raise ConfigError(
            f"{where}/victim/target: {inf['victim']['target']} is not one of "
            f"victim/temperatures {inf['victim']['temperatures']}"
        )
    specs = {
        "victim/data": inf["victim"]["data"],
        "stealing/queries": inf["stealing"]["queries"],
        "independent/data": inf["independent"]["data"],
        "embeddings/data": inf["embeddings"]["data"],
    }
    for name in ("victim", "query"):
        for part in ("train", "test"):
            specs[f"linear_eval/{name}/{part}"] = inf["linear_eval"][name][part]
    if "detection" in inf:
        specs["detection/members"] = inf["detection"]["members"]
        specs["detection/public"] = inf["detection"]["public"]
    _check_finite(inf, where)
    _check_augmentation(inf["simclr"].get("augmentation") or {}, f"{where}/simclr/augmentation")
    channels = int(inf["encoder"].get("in_channels", 3))
    for key, spec in specs.items():
        rows = spec.get("rows")
        if rows is not None and not rows[0] < rows[1]:
            raise ConfigError(f"{where}/{key}/rows: start {rows[0]} must be < stop {rows[1]}")
        name, split = spec.get("dataset"), spec.get("split")
        if name in SPLITS and split not in SPLITS[name]:
            raise ConfigError(
                f"{where}/{key}/split: {name} has no split {split!r}; choose one of "
                f"{list(SPLITS[name])}"
            )
        if name in CHANNELS and CHANNELS[name] != channels:
            raise ConfigError(
                f"{where}/{key}: {name} images have {CHANNELS[name]} channel(s) but "
                f"inference/encoder/in_channels is {channels}"
            )
    fraction = float((inf.get("data") or {}).get("train_fraction", 0.8))
    available = {}  # images each spec gives: its rows, else its whole split
    for key, spec in specs.items():
        rows, name, split = spec.get("rows"), spec.get("dataset"), spec.get("split")
        size = split_size(name, split, fraction) if name in SIZES else None
        if rows is not None and size is not None and rows[1] > size:
            raise ConfigError(
                f"{where}/{key}/rows: stop {rows[1]} is past the end of {name}/{split}, "
                f"which has {size} images"
            )
        available[key] = rows[1] - rows[0] if rows is not None else size
    q_rows, n_q = inf["stealing"]["queries"].get("rows"), inf["stealing"]["n_queries"]
    if available["stealing/queries"] is not None and n_q > available["stealing/queries"]:
        src = (f"stealing/queries/rows {q_rows}" if q_rows is not None else
               "stealing/queries ({dataset}/{split})".format(**inf["stealing"]["queries"]))
        raise ConfigError(f"{where}/stealing/n_queries = {n_q} exceeds the "
                          f"{available['stealing/queries']} images of {src}")
    e_rows, n_e = inf["embeddings"]["data"].get("rows"), max(inf["embeddings"]["n"])
    if available["embeddings/data"] is not None and n_e > available["embeddings/data"]:
        src = (f"embeddings/data/rows {e_rows}" if e_rows is not None else
               "embeddings/data ({dataset}/{split})".format(**inf["embeddings"]["data"]))
        raise ConfigError(f"{where}/embeddings/n: {n_e} exceeds the "
                          f"{available['embeddings/data']} images of {src}")
    if "detection" in inf:
        _check_members(inf["detection"]["members"], inf["victim"]["data"], where)
        extra = sorted(set(inf["detection"].get("stolen_heads", [])) - set(inf["stealing"]["heads"]))
        if extra:
            raise ConfigError(
                f"{where}/detection/stolen_heads: {extra} are not in stealing/heads "
                f"{inf['stealing']['heads']}"
            )
    if "p" in inf.get("mi", {}):
        try:  # the parser the MI stage uses: ".inf" and "inf" are the max norm there too
            parse_p(inf["mi"]["p"], f"{where}/mi/p")
        except ValueError as exc:
            raise ConfigError(str(exc)) from None
    k = inf.get("mi", {}).get("k", 1)
    if k >= min(inf["embeddings"]["n"]):
        raise ConfigError(f"{where}/mi/k = {k} must be < the smallest embeddings/n")


def check_bring_your_own(byo: dict) -> None:
    """Pre-job checks of the ``bring_your_own`` section (a user's encoders and images).

    * every checkpoint and state-dict file exists; members/path and public/path exist and are
      a directory (ImageFolder layout) or an ``.npz`` file;
    * every ``arch`` is a torchvision classification model (the closest names are given),
      and ``cifar_stem``/``in_channels`` != 3 are only set on ResNets;
    * ``mean``/``std`` have one value or one per channel, ``std`` > 0; every number is
      finite.

    Paths are relative to the working directory of the run. Raises :class:`ConfigError`
    naming the key.
    """
    where = "bring_your_own"
    _check_finite(byo, where)
    for name in byo["suspects"]:
        if re.fullmatch(r"random_seed\d+", name):
            raise ConfigError(f"{where}/suspects/{name}: the name is reserved for the random "
                              f"encoders (random_seeds); choose another name")
    encoders = {"victim": byo["victim"],
                **{f"suspects/{name}": spec for name, spec in byo["suspects"].items()}}
    for key, spec in encoders.items():
        at = f"{where}/{key}"
        for file_key in ("checkpoint", "state_dict"):
            if file_key in spec and not Path(spec[file_key]).is_file():
                raise ConfigError(f"{at}/{file_key}: {spec[file_key]}: no such file")
        if "arch" in spec:
            _check_arch(spec, at)
        for stat in ("mean", "std"):
            values = spec.get(stat, [0.5])
            values = values if isinstance(values, list) else [values]
            if len(values) not in (1, int(spec.get("in_channels", 3))) and "arch" in spec:
                raise ConfigError(f"{at}/{stat}: {len(values)} values; give one, or one per "
                                  f"input channel ({spec.get('in_channels', 3)})")
            if stat == "std" and min(values) <= 0:
                raise ConfigError(f"{at}/std: must be > 0, got {spec['std']!r}")
    for key in ("members", "public"):
        path = Path(byo[key]["path"])
        if not path.exists():
            raise ConfigError(f"{where}/{key}/path: {path}: no such file or directory")
        if not (path.is_dir() or path.suffix.lower() == ".npz"):
            raise ConfigError(
                f"{where}/{key}/path: {path} is neither a directory of images (ImageFolder "
                f"layout: root/<class>/<image>) nor an .npz file"
            )
        npz_keys = [k for k in ("array", "labels", "layout") if k in byo[key]]
        if path.is_dir() and npz_keys:
            raise ConfigError(f"{where}/{key}/{npz_keys[0]}: applies to .npz files, but {path} "
                              f"is a directory")


def _check_arch(spec: dict, at: str) -> None:
    import torchvision

    names = sorted(torchvision.models.list_models(module=torchvision.models))
    arch = spec["arch"]
    if arch not in names:
        close = difflib.get_close_matches(arch, names, n=3)
        raise ConfigError(f"{at}/arch: {arch!r} is not a torchvision classification model"
                          + (f"; did you mean {close}?" if close else f"; known: {names}"))
    resnet = arch.startswith(("resnet", "resnext", "wide_resnet"))
    for key, off in (("cifar_stem", False), ("in_channels", 3)):
        if spec.get(key, off) != off and not resnet:
            raise ConfigError(f"{at}/{key}: applies to torchvision ResNets, not {arch!r}")
