from attention_clusters.inference import postprocess

from runner import run

run(snakemake, postprocess)
