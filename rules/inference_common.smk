# Helpers of rules/inference.smk (dataset inference): encoder names, data caches, targets.
# Dataset inference (thesis section 5; Dziedzic et al. 2022): cached data -> SimCLR victims,
# independent, stolen (black-box), random and copy encoders -> linear evaluation and
# embeddings -> MI with permutation tests -> Tables 1-3 and the MI-score table.
#
# Raw data are never declared inputs: di_data reads inference.data.root through params and
# caches each split, so the DAG (snakemake -n) builds with no data present. Training rules
# declare resources gpu=1 when inference.gpu_resources is true (configs/paper.yaml).

import json

from mipipe.inference.stages import TAU_PATTERN, source_name, victim_name


def di_canon(obj):
    """A config value with its dict keys sorted (recursively), so that reordering keys in
    the config file does not change a rule's params (and rerun it)."""
    return json.loads(json.dumps(obj, sort_keys=True))


INF = di_canon(config["inference"])
DI = f"{RESULTS}/inference"
DI_TAU = [float(t) for t in INF["victim"]["temperatures"]]
DI_TARGET = victim_name(INF["victim"]["target"])  # repr: exact, never rounded
DI_VICTIMS = [victim_name(t) for t in DI_TAU]
DI_STOLEN = [f"stolen_{h}" for h in INF["stealing"]["heads"]]
DI_RANDOM = [f"random_seed{s}" for s in INF["random"]["seeds"]]
# encoder name -> role in the MI tables
DI_ROLES = {
    **{v: "victim" for v in DI_VICTIMS},
    **{s: "stolen" for s in DI_STOLEN},
    "independent": "independent",
    **{r: "random" for r in DI_RANDOM},
    "copy": "copy",
}
# Calibrated detection (inference.detection, optional): several encoders per role.
DET = INF.get("detection")
DI_TARGET_TAU = float(INF["victim"]["target"])
DI_EXTRA = {}  # encoder -> (role, seed): trained only for the detection stage
if DET:
    DI_EXTRA.update(
        {f"{DI_TARGET}_seed{s}": ("victim", s) for s in DET.get("victim_seeds", [])}
    )
    DI_EXTRA.update(
        {
            f"stolen_{h}_seed{s}": ("stolen", s)
            for h in DET.get("stolen_heads", INF["stealing"]["heads"])
            for s in DET.get("stolen_seeds", [])
        }
    )
    DI_EXTRA.update(
        {
            f"independent_seed{s}": ("independent", s)
            for s in DET.get("independent_seeds", [])
        }
    )


def di_detected():
    """{encoder: {role, head, seed}} of every encoder the detection stage tests."""
    out = {}
    for e, role in DI_ROLES.items():
        if role == "copy":
            continue
        seed = {
            "victim": INF["victim"].get("seed", 0),
            "stolen": INF["stealing"].get("seed", 0),
            "independent": INF["independent"].get("seed", 0),
        }.get(role, int(e[len("random_seed") :]) if role == "random" else 0)
        out[e] = {"role": role, "head": di_head_of(e), "seed": int(seed)}
    for e, (role, seed) in DI_EXTRA.items():
        out[e] = {"role": role, "head": di_head_of(e), "seed": int(seed)}
    return out


def di_head_of(encoder):
    if not encoder.startswith("stolen_"):
        return ""
    return encoder[len("stolen_") :].split("_seed")[0]


DI_EVALUATED = [
    e for e in DI_ROLES if e != "copy"
]  # the copy's accuracy is the victim's
DI_TABLES = [
    "di_table1_linear_eval",
    "di_table2_stealing",
    "di_table3_mi",
    "di_mi_scores",
]


def di_specs():
    """Every data spec of the config (cached once per dataset/split/size)."""
    specs = [
        INF["victim"]["data"],
        INF["stealing"]["queries"],
        INF["independent"]["data"],
        INF["embeddings"]["data"],
    ]
    for sets in (INF["linear_eval"]["victim"], INF["linear_eval"]["query"]):
        specs += [sets["train"], sets["test"]]
    if DET:
        specs += [DET["members"], DET["public"]]
    return specs


DI_SOURCES = {source_name(s): {k: s[k] for k in s if k != "rows"} for s in di_specs()}


wildcard_constraints:
    tau=TAU_PATTERN,
    head="none|stolen|victim|both|attacker",  # = mipipe.inference.HEAD_VARIANTS
    source="|".join(DI_SOURCES),
    encoder="|".join([*DI_ROLES, *DI_EXTRA]),
    seed=r"[0-9]+",


def di_data(spec):
    return f"{DI}/data/{source_name(spec)}.pt"


def di_ckpt(name):
    return f"{DI}/encoders/{name}.pt"


def di_eval_sets():
    """{eval set: {train|test: (cache path, rows)}} for linear evaluation."""
    return {
        name: {part: (di_data(s), s.get("rows")) for part, s in sets.items()}
        for name, sets in INF["linear_eval"].items()
        if name in ("victim", "query")
    }


def di_gpu(wildcards):
    return 1 if INF.get("gpu_resources", False) else 0


DI_DETECTION_TABLES = ["di_verdicts", "di_detection"]


def inference_targets():
    """The dataset-inference tables and figures and, last, the stage's failure check."""
    tables = DI_TABLES + (DI_DETECTION_TABLES if DET else [])
    figures = (
        expand(f"{RESULTS}/figures/di_detection.{{ext}}", ext=["png", "pdf"])
        if DET
        else []
    )
    return (
        expand(
            f"{RESULTS}/tables/{{table}}.{{ext}}",
            table=tables,
            ext=["parquet", "csv", "md"],
        )
        + figures
        + [f"{RESULTS}/checks/inference.ok"]
    )


DI_THREADS = INF.get("threads", 1)
DI_DEVICE = INF.get("device", "auto")


def di_mi_others():
    """{encoder: (embedding file, role, seed)} for every encoder compared with the target."""
    return {
        e: (
            f"{DI}/embeddings/{e}.parquet",
            role,
            int(e[len("random_seed") :]) if role == "random" else 0,
        )
        for e, role in DI_ROLES.items()
    }
