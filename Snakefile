# moemui: the MoE Model Utilization Index, measured from the inside of MoE models.
# This file is the table of contents; the rules live in workflow/rules/.


configfile: "config/config.yaml"


report: "workflow/report/workflow.rst"


include: "workflow/rules/common.smk"
include: "workflow/rules/models.smk"
include: "workflow/rules/tasks.smk"
include: "workflow/rules/responses.smk"
include: "workflow/rules/capture.smk"
include: "workflow/rules/shards.smk"
include: "workflow/rules/metrics.smk"
include: "workflow/rules/analyses_common.smk"
include: "workflow/rules/analyses.smk"
include: "workflow/rules/charts.smk"


rule all:
    """Every table, the store's groups and index, and every chart of the config."""
    default_target: True
    input:
        f"{RESULTS}/tables/mui.csv",
        f"{RESULTS}/tables/performance.csv",
        f"{RESULTS}/activations.zarr/zarr.json",
        get_store_groups,
        get_trajectory_table,
        get_analysis_tables,
        get_chart_outputs,
