from attention_clusters import steps

from runner import run

run(snakemake, steps.download_mnist)
