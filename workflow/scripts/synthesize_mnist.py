from attention_clusters import steps
from attention_clusters.rule_runner import run

run(snakemake, steps.synthesize_mnist, out_paths=dict(snakemake.output.items()), **snakemake.params.settings)
