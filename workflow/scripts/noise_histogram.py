from attention_clusters import steps
from attention_clusters.rule_runner import run

run(snakemake, steps.noise_histogram, mnist_paths=dict(snakemake.input.items()), out=snakemake.output[0])
