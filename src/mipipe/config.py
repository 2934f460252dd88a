"""Configuration checks: the JSON schema plus the rules a schema cannot express.

The Snakefile validates the config with ``snakemake.utils.validate`` against
:data:`SCHEMA_PATH` and then calls :func:`check_config`; both run before any job, so a typo
or an impossible value stops the run with a message that names the key.
"""

from __future__ import annotations

from importlib import resources
from pathlib import Path

import yaml

from .experiments import parse_p

SCHEMA_PATH = Path(str(resources.files("mipipe") / "schemas" / "config.schema.yaml"))
FAMILY_PARAMS = {"linear": "alpha", "gaussian_beta": "beta"}


class ConfigError(ValueError):
    """A configuration value that the pipeline cannot run with."""


def load_schema() -> dict:
    return yaml.safe_load(SCHEMA_PATH.read_text())


def validate_schema(config: dict) -> None:
    """Validate against the JSON schema (library use; the Snakefile uses snakemake's validate).

    Raises :class:`ConfigError` naming the offending key path.
    """
    import jsonschema

    validator = jsonschema.Draft7Validator(load_schema())
    errors = sorted(validator.iter_errors(config), key=lambda e: list(e.absolute_path))
    if errors:
        e = errors[0]
        where = "/".join(str(p) for p in e.absolute_path) or "(top level)"
        raise ConfigError(f"config key {where}: {e.message}")


def check_config(config: dict) -> None:
    """Cross-key checks after schema validation. Raises :class:`ConfigError`.

    * each dataset has the parameter its family needs (alpha for linear, beta for
      gaussian_beta) and noise_dims < d;
    * each experiment names a defined dataset; its n values do not exceed the dataset's n,
      its D values do not exceed d; k is below the smallest n.
    """
    datasets = config["datasets"]
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
    for name, ex in config["experiments"].items():
        where = f"experiments/{name}"
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
            ks = spec.get("k", ex.get("k", [1]))
            if max(ks) >= min(n_values):
                raise ConfigError(
                    f"{where}/estimators/{est}/k: k = {max(ks)} must be < the smallest n = "
                    f"{min(n_values)} (the k-th neighbour needs n > k)"
                )
            for p in spec.get("p", ex.get("p", [])):
                parse_p(p)
