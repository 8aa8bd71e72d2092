from attention_clusters import steps
from attention_clusters.rule_runner import run

run(snakemake, steps.fetch_npm_package, out=snakemake.output[0], **snakemake.params.settings)
