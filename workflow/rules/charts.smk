# Charts (one per finding): interactive HTML, SVG, PNG and Vega-Lite JSON per chart.
# Each chart reads only its own tables, so it is redrawn only when they change.


rule bundle_vega:
    output:
        "results/charts/vega.js",
    log:
        "results/logs/bundle_vega.log",
    benchmark:
        "results/benchmarks/bundle_vega.tsv"
    conda:
        "../../envs/charts.yaml"
    params:
        version=MOEMUI_VERSION,
    shell:
        """
        moemui vega-bundle --out {output:q} 2>{log:q}
        """


rule draw_mui_performance:
    input:
        tables=[
            "results/tables/mui_performance.csv",
            "results/tables/mui_performance_fits.csv",
        ],
        bundle="results/charts/vega.js",
    output:
        html=report(
            "results/charts/mui_performance.html",
            caption="../report/mui_performance.rst",
            category="Charts",
            labels={"chart": "MUI vs performance"},
        ),
        svg="results/charts/mui_performance.svg",
        png="results/charts/mui_performance.png",
        spec="results/charts/mui_performance.vl.json",
    log:
        "results/logs/draw_chart/mui_performance.log",
    benchmark:
        "results/benchmarks/draw_chart/mui_performance.tsv"
    conda:
        "../../envs/charts.yaml"
    params:
        chart="mui_performance",
        variant=ANALYSES["variant"],
        threshold=ANALYSES["threshold"],
        version=MOEMUI_VERSION,
    shell:
        """
        moemui chart {params.chart} {input.tables:q} --variant {params.variant:q} \
            --threshold {params.threshold} --bundle {input.bundle:q} \
            --html {output.html:q} --svg {output.svg:q} --png {output.png:q} \
            --spec {output.spec:q} 2>{log:q}
        """


use rule draw_mui_performance as draw_trajectory with:
    input:
        tables="results/tables/trajectory.csv",
        bundle="results/charts/vega.js",
    output:
        html=report(
            "results/charts/trajectory.html",
            caption="../report/trajectory.rst",
            category="Charts",
            labels={"chart": "training trajectories"},
        ),
        svg="results/charts/trajectory.svg",
        png="results/charts/trajectory.png",
        spec="results/charts/trajectory.vl.json",
    log:
        "results/logs/draw_chart/trajectory.log",
    benchmark:
        "results/benchmarks/draw_chart/trajectory.tsv"
    params:
        chart="trajectory",
        variant=ANALYSES["variant"],
        threshold=ANALYSES["threshold"],
        version=MOEMUI_VERSION,


use rule draw_mui_performance as draw_key_experts with:
    input:
        tables="results/tables/key_experts.csv",
        bundle="results/charts/vega.js",
    output:
        html=report(
            "results/charts/key_experts.html",
            caption="../report/key_experts.rst",
            category="Charts",
            labels={"chart": "key-expert proportions"},
        ),
        svg="results/charts/key_experts.svg",
        png="results/charts/key_experts.png",
        spec="results/charts/key_experts.vl.json",
    log:
        "results/logs/draw_chart/key_experts.log",
    benchmark:
        "results/benchmarks/draw_chart/key_experts.tsv"
    params:
        chart="key_experts",
        variant=ANALYSES["variant"],
        threshold=ANALYSES["threshold"],
        version=MOEMUI_VERSION,


use rule draw_mui_performance as draw_top_experts with:
    input:
        tables="results/tables/top_experts.csv",
        bundle="results/charts/vega.js",
    output:
        html=report(
            "results/charts/top_experts.html",
            caption="../report/top_experts.rst",
            category="Charts",
            labels={"chart": "top-10 experts"},
        ),
        svg="results/charts/top_experts.svg",
        png="results/charts/top_experts.png",
        spec="results/charts/top_experts.vl.json",
    log:
        "results/logs/draw_chart/top_experts.log",
    benchmark:
        "results/benchmarks/draw_chart/top_experts.tsv"
    params:
        chart="top_experts",
        # this chart shows no focus method: a change of focus leaves it alone
        variant="any",
        threshold=0.5,
        version=MOEMUI_VERSION,


use rule draw_mui_performance as draw_threshold_robustness with:
    input:
        tables=[
            "results/tables/mui.csv",
            "results/tables/robustness.csv",
        ],
        bundle="results/charts/vega.js",
    output:
        html=report(
            "results/charts/threshold_robustness.html",
            caption="../report/threshold_robustness.rst",
            category="Charts",
            labels={"chart": "threshold robustness"},
        ),
        svg="results/charts/threshold_robustness.svg",
        png="results/charts/threshold_robustness.png",
        spec="results/charts/threshold_robustness.vl.json",
    log:
        "results/logs/draw_chart/threshold_robustness.log",
    benchmark:
        "results/benchmarks/draw_chart/threshold_robustness.tsv"
    params:
        chart="threshold_robustness",
        variant=ANALYSES["variant"],
        threshold=ANALYSES["threshold"],
        version=MOEMUI_VERSION,


use rule draw_mui_performance as draw_diversity with:
    input:
        tables="results/tables/diversity.csv",
        bundle="results/charts/vega.js",
    output:
        html=report(
            "results/charts/diversity.html",
            caption="../report/diversity.rst",
            category="Charts",
            labels={"chart": "data diversity"},
        ),
        svg="results/charts/diversity.svg",
        png="results/charts/diversity.png",
        spec="results/charts/diversity.vl.json",
    log:
        "results/logs/draw_chart/diversity.log",
    benchmark:
        "results/benchmarks/draw_chart/diversity.tsv"
    params:
        chart="diversity",
        variant=ANALYSES["variant"],
        threshold=ANALYSES["threshold"],
        version=MOEMUI_VERSION,


use rule draw_mui_performance as draw_ablation with:
    input:
        tables="results/tables/ablation.csv",
        bundle="results/charts/vega.js",
    output:
        html=report(
            "results/charts/ablation.html",
            caption="../report/ablation.rst",
            category="Charts",
            labels={"chart": "ablation"},
        ),
        svg="results/charts/ablation.svg",
        png="results/charts/ablation.png",
        spec="results/charts/ablation.vl.json",
    log:
        "results/logs/draw_chart/ablation.log",
    benchmark:
        "results/benchmarks/draw_chart/ablation.tsv"
    params:
        chart="ablation",
        # this chart shows no focus method: a change of focus leaves it alone
        variant="any",
        threshold=0.5,
        version=MOEMUI_VERSION,
