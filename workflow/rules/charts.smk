# Charts (one per finding): interactive HTML, SVG, PNG and Vega-Lite JSON per chart.
# Each chart reads only its own tables, so it is redrawn only when they change.


rule bundle_vega:
    output:
        f"{RESULTS}/charts/vega.js",
    log:
        f"{RESULTS}/logs/bundle_vega.log",
    benchmark:
        f"{RESULTS}/benchmarks/bundle_vega.tsv"
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
            f"{RESULTS}/tables/mui_performance.csv",
            f"{RESULTS}/tables/mui_performance_fits.csv",
        ],
        bundle=f"{RESULTS}/charts/vega.js",
    output:
        html=report(
            f"{RESULTS}/charts/mui_performance.html",
            caption="../report/mui_performance.rst",
            category="Charts",
            labels={"chart": "MUI vs performance"},
        ),
        svg=f"{RESULTS}/charts/mui_performance.svg",
        png=f"{RESULTS}/charts/mui_performance.png",
        spec=f"{RESULTS}/charts/mui_performance.vl.json",
    log:
        f"{RESULTS}/logs/draw_chart/mui_performance.log",
    benchmark:
        f"{RESULTS}/benchmarks/draw_chart/mui_performance.tsv"
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
        tables=f"{RESULTS}/tables/trajectory.csv",
        bundle=f"{RESULTS}/charts/vega.js",
    output:
        html=report(
            f"{RESULTS}/charts/trajectory.html",
            caption="../report/trajectory.rst",
            category="Charts",
            labels={"chart": "training trajectories"},
        ),
        svg=f"{RESULTS}/charts/trajectory.svg",
        png=f"{RESULTS}/charts/trajectory.png",
        spec=f"{RESULTS}/charts/trajectory.vl.json",
    log:
        f"{RESULTS}/logs/draw_chart/trajectory.log",
    benchmark:
        f"{RESULTS}/benchmarks/draw_chart/trajectory.tsv"
    params:
        chart="trajectory",
        variant=ANALYSES["variant"],
        threshold=ANALYSES["threshold"],
        version=MOEMUI_VERSION,


use rule draw_mui_performance as draw_key_experts with:
    input:
        tables=f"{RESULTS}/tables/key_experts.csv",
        bundle=f"{RESULTS}/charts/vega.js",
    output:
        html=report(
            f"{RESULTS}/charts/key_experts.html",
            caption="../report/key_experts.rst",
            category="Charts",
            labels={"chart": "key-expert proportions"},
        ),
        svg=f"{RESULTS}/charts/key_experts.svg",
        png=f"{RESULTS}/charts/key_experts.png",
        spec=f"{RESULTS}/charts/key_experts.vl.json",
    log:
        f"{RESULTS}/logs/draw_chart/key_experts.log",
    benchmark:
        f"{RESULTS}/benchmarks/draw_chart/key_experts.tsv"
    params:
        chart="key_experts",
        variant=ANALYSES["variant"],
        threshold=ANALYSES["threshold"],
        version=MOEMUI_VERSION,


use rule draw_mui_performance as draw_top_experts with:
    input:
        tables=f"{RESULTS}/tables/top_experts.csv",
        bundle=f"{RESULTS}/charts/vega.js",
    output:
        html=report(
            f"{RESULTS}/charts/top_experts.html",
            caption="../report/top_experts.rst",
            category="Charts",
            labels={"chart": "top-10 experts by activation rate"},
        ),
        svg=f"{RESULTS}/charts/top_experts.svg",
        png=f"{RESULTS}/charts/top_experts.png",
        spec=f"{RESULTS}/charts/top_experts.vl.json",
    log:
        f"{RESULTS}/logs/draw_chart/top_experts.log",
    benchmark:
        f"{RESULTS}/benchmarks/draw_chart/top_experts.tsv"
    params:
        chart="top_experts",
        # this chart shows no focus method: a change of focus leaves it alone
        variant="any",
        threshold=0.5,
        version=MOEMUI_VERSION,


use rule draw_mui_performance as draw_top_key_experts with:
    input:
        tables=f"{RESULTS}/tables/top_key_experts.csv",
        bundle=f"{RESULTS}/charts/vega.js",
    output:
        html=report(
            f"{RESULTS}/charts/top_key_experts.html",
            caption="../report/top_key_experts.rst",
            category="Charts",
            labels={"chart": "top-10 experts by key rate"},
        ),
        svg=f"{RESULTS}/charts/top_key_experts.svg",
        png=f"{RESULTS}/charts/top_key_experts.png",
        spec=f"{RESULTS}/charts/top_key_experts.vl.json",
    log:
        f"{RESULTS}/logs/draw_chart/top_key_experts.log",
    benchmark:
        f"{RESULTS}/benchmarks/draw_chart/top_key_experts.tsv"
    params:
        chart="top_key_experts",
        variant=ANALYSES["variant"],
        threshold=ANALYSES["threshold"],
        version=MOEMUI_VERSION,


use rule draw_mui_performance as draw_threshold_robustness with:
    input:
        tables=[
            f"{RESULTS}/tables/mui.csv",
            f"{RESULTS}/tables/robustness.csv",
        ],
        bundle=f"{RESULTS}/charts/vega.js",
    output:
        html=report(
            f"{RESULTS}/charts/threshold_robustness.html",
            caption="../report/threshold_robustness.rst",
            category="Charts",
            labels={"chart": "threshold robustness"},
        ),
        svg=f"{RESULTS}/charts/threshold_robustness.svg",
        png=f"{RESULTS}/charts/threshold_robustness.png",
        spec=f"{RESULTS}/charts/threshold_robustness.vl.json",
    log:
        f"{RESULTS}/logs/draw_chart/threshold_robustness.log",
    benchmark:
        f"{RESULTS}/benchmarks/draw_chart/threshold_robustness.tsv"
    params:
        chart="threshold_robustness",
        variant=ANALYSES["variant"],
        threshold=ANALYSES["threshold"],
        version=MOEMUI_VERSION,


use rule draw_mui_performance as draw_diversity with:
    input:
        tables=f"{RESULTS}/tables/diversity.csv",
        bundle=f"{RESULTS}/charts/vega.js",
    output:
        html=report(
            f"{RESULTS}/charts/diversity.html",
            caption="../report/diversity.rst",
            category="Charts",
            labels={"chart": "data diversity"},
        ),
        svg=f"{RESULTS}/charts/diversity.svg",
        png=f"{RESULTS}/charts/diversity.png",
        spec=f"{RESULTS}/charts/diversity.vl.json",
    log:
        f"{RESULTS}/logs/draw_chart/diversity.log",
    benchmark:
        f"{RESULTS}/benchmarks/draw_chart/diversity.tsv"
    params:
        chart="diversity",
        variant=ANALYSES["variant"],
        threshold=ANALYSES["threshold"],
        version=MOEMUI_VERSION,


use rule draw_mui_performance as draw_ablation with:
    input:
        tables=f"{RESULTS}/tables/ablation.csv",
        bundle=f"{RESULTS}/charts/vega.js",
    output:
        html=report(
            f"{RESULTS}/charts/ablation.html",
            caption="../report/ablation.rst",
            category="Charts",
            labels={"chart": "ablation"},
        ),
        svg=f"{RESULTS}/charts/ablation.svg",
        png=f"{RESULTS}/charts/ablation.png",
        spec=f"{RESULTS}/charts/ablation.vl.json",
    log:
        f"{RESULTS}/logs/draw_chart/ablation.log",
    benchmark:
        f"{RESULTS}/benchmarks/draw_chart/ablation.tsv"
    params:
        chart="ablation",
        # this chart shows no focus method: a change of focus leaves it alone
        variant="any",
        threshold=0.5,
        version=MOEMUI_VERSION,
