from attention_clusters import steps
from attention_clusters.rule_runner import run

run(
    snakemake,
    steps.noisy_mnist,
    mnist_paths=dict(snakemake.input.items()),
    histogram=snakemake.input.histogram,
    images_out=snakemake.output.images,
    labels_out=snakemake.output.labels,
    **snakemake.params.settings,
)
