from attention_clusters import steps
from attention_clusters.rule_runner import run

run(snakemake, steps.flash_mnist, mnist_paths=dict(snakemake.input.items()),
    histogram=snakemake.input.histogram, split=snakemake.wildcards.split,
    repeats=snakemake.params.repeats, frames=snakemake.params.frames,
    min_appearances=snakemake.params.min_appearances, max_appearances=snakemake.params.max_appearances,
    seed=snakemake.params.seed, videos_out=snakemake.output.videos, labels_out=snakemake.output.labels)
