rule build_model:
    """Build a builtin tiny MoE from its recipe and seed, and save it."""
    output:
        directory(f"{RESULTS}/models/{{model}}"),
    log:
        f"{RESULTS}/logs/build_model/{{model}}.log",
    cache: "omit-software"
    conda:
        "../../envs/model.yaml"
    params:
        recipe=get_recipe,
        seed=lambda wc: MODELS[wc.model]["seed"],
        version=MOEMUI_VERSION,
    shell:
        r"""
        moemui build-model --recipe {params.recipe:q} --seed {params.seed:q} \
            --out {output:q} 2>{log:q}
        """


rule train_model:
    """Train a tiny MoE recipe on the built-in tasks, saving its checkpoints."""
    output:
        directory(f"{RESULTS}/training/{{recipe}}"),
    log:
        f"{RESULTS}/logs/train_model/{{recipe}}.log",
    cache: "omit-software"
    priority: 10
    conda:
        "../../envs/model.yaml"
    threads: 1
    params:
        spec=lambda wc: recipe_spec(wc.recipe),
        version=MOEMUI_VERSION,
    shell:
        r"""
        moemui --threads {threads:q} train --recipe {wildcards.recipe:q} \
            --out {output:q} 2>{log:q}
        """
