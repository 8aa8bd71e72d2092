from attention_clusters import steps

from runner import run

run(snakemake, steps.fetch_npm_package)
