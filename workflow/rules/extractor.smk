# Pre-training the frame feature extractor on Noisy-MNIST.


rule train_extractor:
    input:
        train_images="results/data/noisy_train/images.npy",
        train_labels="results/data/noisy_train/labels.npy",
        test_images="results/data/noisy_test/images.npy",
        test_labels="results/data/noisy_test/labels.npy",
    output:
        checkpoint="results/extractor/extractor.ckpt",
        metrics="results/extractor/metrics.json",
    log:
        "logs/train_extractor.log",
    benchmark:
        "results/benchmarks/train_extractor.tsv"
    conda:
        "../envs/mindspore.yaml"
    threads: config["extractor"]["threads"]
    resources:
        **device_resources(
            config["extractor"]["device"],
            "train_extractor",
            config["extractor"]["mem_mb"],
        ),
    params:
        code=step_code("train_extractor"),
        upstream=digest(SETTINGS.noisy_lineage()),
        settings=SETTINGS.extractor(),
        # Resumable state (last epoch's weights, Adam, RNGs), as the sweep's: not an output,
        # so a killed job's state survives Snakemake's clean-up; removed when the job ends.
        state_dir="results/extractor/state",
    script:
        "../scripts/train_extractor.py"
