# Charts (one per finding, moemui.charts.CHARTS): interactive HTML, SVG, PNG and
# Vega-Lite JSON per chart. Each chart reads only its own tables, and takes the focus
# variant and threshold only where it shows them, so it is redrawn only when they change.


rule bundle_vega:
    """Write the Vega, Vega-Lite and Vega-Embed script that every chart page inlines."""
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
        r"""
        moemui vega-bundle --out {output:q} 2>{log:q}
        """


rule draw_chart:
    """Draw one chart from its tables (get_chart_tables), at the focus variant and
    threshold where it shows them: an interactive page, SVG, PNG, Vega-Lite JSON."""
    input:
        tables=get_chart_tables,
        bundle=f"{RESULTS}/charts/vega.js",
    output:
        html=report(
            f"{RESULTS}/charts/{{chart}}.html",
            caption="../report/chart.rst",
            category="Charts",
            labels=get_chart_labels,
        ),
        svg=f"{RESULTS}/charts/{{chart}}.svg",
        png=f"{RESULTS}/charts/{{chart}}.png",
        spec=f"{RESULTS}/charts/{{chart}}.vl.json",
    log:
        f"{RESULTS}/logs/draw_chart/{{chart}}.log",
    benchmark:
        f"{RESULTS}/benchmarks/draw_chart/{{chart}}.tsv"
    wildcard_constraints:
        chart=one_of(CHARTS),
    conda:
        "../../envs/charts.yaml"
    params:
        # the focus method where the chart shows it, else none (a change leaves it alone)
        variant=get_chart_variant,
        threshold=get_chart_threshold,
        focus=get_chart_focus,
        version=MOEMUI_VERSION,
    shell:
        r"""
        moemui chart {wildcards.chart:q} {input.tables:q} {params.focus:q} \
            --bundle {input.bundle:q} --html {output.html:q} --svg {output.svg:q} \
            --png {output.png:q} --spec {output.spec:q} 2>{log:q}
        """
