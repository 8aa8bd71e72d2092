# Noisy-MNIST (the extractor's training set) and Flash-MNIST videos, per split.


rule noisy_mnist:
    input:
        **mnist_files(),
        histogram="results/data/noise_histogram.npy",
    output:
        images="results/data/noisy_{split}/images.npy",
        labels="results/data/noisy_{split}/labels.npy",
    log:
        "logs/noisy_mnist/{split}.log",
    benchmark:
        "results/benchmarks/noisy_mnist/{split}.tsv"
    wildcard_constraints:
        split="train|test",
    conda:
        "../envs/mindspore.yaml"
    threads: 1
    resources:
        mem_mb=2000,
    params:
        code=step_code("noisy_mnist"),
        upstream=digest(SETTINGS.mnist_lineage()),
        settings=lambda w: SETTINGS.noisy(w.split),
    script:
        "../scripts/noisy_mnist.py"


rule flash_mnist:
    input:
        **mnist_files(),
        histogram="results/data/noise_histogram.npy",
    output:
        videos="results/data/flash_{split}/videos.npy",
        labels="results/data/flash_{split}/labels.npy",
        frame_digits="results/data/flash_{split}/frame_digits.npy",
    log:
        "logs/flash_mnist/{split}.log",
    benchmark:
        "results/benchmarks/flash_mnist/{split}.tsv"
    # Before waiting training jobs: every evaluation needs the test split's (common.smk).
    priority: RESULT_PRIORITY
    conda:
        "../envs/mindspore.yaml"
    threads: 1
    resources:
        mem_mb=1000,
    params:
        code=step_code("flash_mnist"),
        upstream=digest(SETTINGS.mnist_lineage()),
        settings=lambda w: SETTINGS.flash(w.split),
    script:
        "../scripts/flash_mnist.py"
