from attention_clusters.inference import preprocess

from runner import run

run(snakemake, preprocess)
