# Settings and input/output helpers of the analysis and chart rules (analyses.smk,
# charts.smk): the config's `analyses` section with its nulls resolved.

from moemui.config import analysis_settings

ANALYSES = analysis_settings(config)
ABLATION_CELLS = [(c["model"], c["task"]) for c in ANALYSES["ablation"]["cells"]]


def get_model_info(wildcards=None):
    """What the MUI-vs-performance table needs of each model, as JSON."""
    keys = ("family", "release", "series", "step")
    return json.dumps(
        {m: {k: spec[k] for k in keys if k in spec} for m, spec in MODELS.items()},
        sort_keys=True,
    )


def get_ablation_tables(wildcards=None):
    return [f"{RESULTS}/tables/ablation/{m}/{t}.csv" for m, t in ABLATION_CELLS]


def get_analysis_tables(wildcards=None):
    """Every analysis table (the ablation's only when cells are configured)."""
    tables = [
        f"{RESULTS}/tables/experts.csv",
        f"{RESULTS}/tables/key_experts.csv",
        f"{RESULTS}/tables/top_experts.csv",
        f"{RESULTS}/tables/top_key_experts.csv",
        f"{RESULTS}/tables/robustness.csv",
        f"{RESULTS}/tables/mui_performance.csv",
        f"{RESULTS}/tables/mui_performance_fits.csv",
        f"{RESULTS}/tables/diversity.csv",
    ]
    ablation = ["ablation.csv", "ablation_summary.csv"] if ABLATION_CELLS else []
    return tables + [f"{RESULTS}/tables/{name}" for name in ablation]


def get_chart_outputs(wildcards=None):
    """Every chart's files (trajectory: with a series; ablation: with ablation cells)."""
    names = ["mui_performance", "key_experts", "top_experts", "top_key_experts"]
    names += ["threshold_robustness"]
    names += ["diversity"] + (["trajectory"] if SERIES else [])
    names += ["ablation"] if ABLATION_CELLS else []
    return [
        f"{RESULTS}/charts/{name}.{fmt}"
        for name in names
        for fmt in ("html", "svg", "png", "vl.json")
    ]
