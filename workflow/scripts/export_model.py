from attention_clusters import steps
from attention_clusters.rule_runner import run

run(
    snakemake,
    steps.export_model,
    checkpoint=snakemake.input.checkpoint,
    threads=snakemake.threads,
    out=snakemake.output[0],
    **snakemake.params.settings,
)
