# Frame features of every Flash-MNIST video, in the ModelZoo's pickle format.


rule extract_features:
    input:
        videos="results/data/flash_{split}/videos.npy",
        labels="results/data/flash_{split}/labels.npy",
        checkpoint="results/extractor/extractor.ckpt",
    output:
        "results/features/feature_{split}.pkl",
    log:
        "logs/extract_features/{split}.log",
    benchmark:
        "results/benchmarks/extract_features/{split}.tsv"
    # Before waiting training jobs: every evaluation needs the test split's (common.smk).
    priority: RESULT_PRIORITY
    conda:
        "../envs/mindspore.yaml"
    threads: config["features"]["threads"]
    resources:
        **device_resources(
            config["features"]["device"],
            "extract_features",
            config["features"]["mem_mb"],
        ),
    params:
        code=step_code("extract_features"),
        upstream=lambda w: digest(
            SETTINGS.extractor_lineage() + SETTINGS.flash_lineage(w.split)
        ),
        settings=SETTINGS.features(),
    script:
        "../scripts/extract_features.py"
