from attention_clusters import steps
from attention_clusters.rule_runner import run

run(
    snakemake,
    steps.eval_model,
    features=snakemake.input.features,
    checkpoint=snakemake.input.checkpoint,
    summary=snakemake.input.summary,
    threads=snakemake.threads,
    metrics_out=snakemake.output.metrics,
    predictions_out=snakemake.output.predictions,
    **snakemake.params.settings,
)
