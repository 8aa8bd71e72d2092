from attention_clusters import steps
from attention_clusters.rule_runner import run

run(
    snakemake,
    steps.flash_mnist,
    mnist_paths=dict(snakemake.input.items()),
    histogram=snakemake.input.histogram,
    videos_out=snakemake.output.videos,
    labels_out=snakemake.output.labels,
    frame_digits_out=snakemake.output.frame_digits,
    **snakemake.params.settings,
)
