from attention_clusters import steps
from attention_clusters.rule_runner import run

run(snakemake, steps.extract_features, videos=snakemake.input.videos, labels=snakemake.input.labels,
    checkpoint=snakemake.input.checkpoint, device=snakemake.params.device, threads=snakemake.threads,
    videos_per_chunk=snakemake.params.videos_per_chunk, out=snakemake.output[0])
