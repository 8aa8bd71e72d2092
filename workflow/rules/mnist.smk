# MNIST input: downloaded and checksummed, or rendered synthetically; then the noise model.

if config["mnist"]["source"] == "download":

    rule download_mnist:
        output:
            **mnist_files(),
        params:
            settings=download_settings(),
        log:
            "logs/download_mnist.log",
        localrule: True
        retries: 0
        conda:
            "../envs/mindspore.yaml"
        script:
            "../scripts/download_mnist.py"

else:

    rule synthesize_mnist:
        output:
            **mnist_files(),
        params:
            settings=synthetic_settings(),
        log:
            "logs/synthesize_mnist.log",
        benchmark:
            "results/benchmarks/synthesize_mnist.tsv"
        conda:
            "../envs/mindspore.yaml"
        script:
            "../scripts/synthesize_mnist.py"


rule noise_histogram:
    input:
        **mnist_files(),
    output:
        "results/data/noise_histogram.npy",
    log:
        "logs/noise_histogram.log",
    conda:
        "../envs/mindspore.yaml"
    script:
        "../scripts/noise_histogram.py"
