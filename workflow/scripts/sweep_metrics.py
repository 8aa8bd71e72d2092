from attention_clusters import steps
from attention_clusters.rule_runner import run

run(snakemake, steps.sweep_metrics, metrics_files=list(snakemake.input), out=snakemake.output[0])
