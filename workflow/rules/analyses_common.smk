# Settings and input/output helpers of the analysis and chart rules (analyses.smk,
# charts.smk): the config's `analyses` section with its nulls resolved.

from moemui.charts import CHARTS
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
    absent = {"trajectory"} if not SERIES else set()
    absent |= {"ablation"} if not ABLATION_CELLS else set()
    return [
        f"{RESULTS}/charts/{name}.{fmt}"
        for name in CHARTS
        if name not in absent
        for fmt in ("html", "svg", "png", "vl.json")
    ]


def get_chart_tables(wildcards):
    """The tables the chart reads, in the order its builder takes them."""
    return [f"{RESULTS}/tables/{name}.csv" for name in CHARTS[wildcards.chart].tables]


def get_chart_labels(wildcards):
    """The chart's labels in the report."""
    return {"chart": CHARTS[wildcards.chart].label}


def get_chart_variant(wildcards):
    """The focus variant, where the chart shows one (else none: [])."""
    return ANALYSES["variant"] if CHARTS[wildcards.chart].variant else []


def get_chart_threshold(wildcards):
    """The focus threshold, where the chart shows one (else none: [])."""
    return ANALYSES["threshold"] if CHARTS[wildcards.chart].threshold else []


def get_chart_focus(wildcards):
    """The chart command's focus flags: --variant and --threshold where it takes them."""
    chart = CHARTS[wildcards.chart]
    flags = ["--variant", ANALYSES["variant"]] if chart.variant else []
    return flags + (["--threshold", ANALYSES["threshold"]] if chart.threshold else [])
