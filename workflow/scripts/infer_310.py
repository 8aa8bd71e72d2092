from attention_clusters import steps
from attention_clusters.rule_runner import run

run(
    snakemake,
    steps.infer_model,
    mindir=snakemake.input.mindir,
    features_bin=snakemake.input.features,
    threads=snakemake.threads,
    logits_out=snakemake.output.logits,
    timing_out=snakemake.output.timing,
    **snakemake.params.settings,
)
